#!/usr/bin/env bash
# Poll GET /images/{id} until the image is done or failed; print its record.
# Usage: examples/wait.sh ID [TIMEOUT_SECONDS]  (exit 1 when it failed, 2 on timeout)
source "$(dirname "$0")/lib.sh"
id=${1:?usage: examples/wait.sh ID [TIMEOUT_SECONDS]}
deadline=$((SECONDS + ${2:-120}))
while :; do
  record=$(api GET "/images/$id")
  status=$(json_get 'd["status"]' <<<"$record")
  case $status in
    done) printf '%s\n' "$record"; exit 0 ;;
    failed) printf '%s\n' "$record"; exit 1 ;;
  esac
  if ((SECONDS >= deadline)); then
    echo "still $status after ${2:-120} s" >&2
    exit 2
  fi
  sleep 1
done
