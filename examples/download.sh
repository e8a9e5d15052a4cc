#!/usr/bin/env bash
# Download one rendition of a done image.
# Usage: examples/download.sh ID NAME FORMAT OUTPUT_FILE  (e.g. examples/download.sh "$id" thumb webp thumb.webp)
source "$(dirname "$0")/lib.sh"
id=${1:?usage: examples/download.sh ID NAME FORMAT OUTPUT_FILE}
name=${2:?rendition name} format=${3:?format} out=${4:?output file}
url=$(api GET "/images/$id" | python3 -c '
import json, sys
wanted = [r["url"] for r in json.load(sys.stdin).get("renditions", []) if (r["name"], r["format"]) == (sys.argv[1], sys.argv[2])]
print(wanted[0] if wanted else "")' "$name" "$format")
if [[ -z $url ]]; then
  echo "image $id has no $name rendition in $format" >&2
  exit 1
fi
curl -sS --fail -o "$out" "$url"
