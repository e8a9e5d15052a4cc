#!/usr/bin/env bash
# Upload an image of any size up to the API's limit through a presigned S3 POST:
# ask the API (POST /uploads), then send the form fields and the file straight to S3.
# Usage: examples/upload-presigned.sh FILE [CONTENT_TYPE]  -> prints the new image's id
source "$(dirname "$0")/lib.sh"
file=${1:?usage: examples/upload-presigned.sh FILE [CONTENT_TYPE]}
type=${2:-image/jpeg}
request=$(python3 -c 'import json, os, sys; print(json.dumps({"filename": os.path.basename(sys.argv[1]), "content_type": sys.argv[2], "size": os.path.getsize(sys.argv[1])}))' "$file" "$type")
resp=$(api POST /uploads -H 'Content-Type: application/json' --data-binary "$request")
form=()
while IFS=$'\t' read -r name value; do
  form+=(--form-string "$name=$value")  # verbatim: -F would read a value starting with @ or < as a file
done < <(json_get '"\n".join(f"{k}\t{v}" for k, v in d["upload"]["fields"].items())' <<<"$resp")
url=$(json_get 'd["upload"]["url"]' <<<"$resp")
status=$(curl -sS -o /dev/null -w '%{http_code}' "${form[@]}" -F "file=@$file" "$url")  # the file goes last, as S3 requires
if ((status >= 300)); then
  echo "S3 refused the upload: HTTP $status" >&2
  exit 1
fi
json_get 'd["id"]' <<<"$resp"
