#!/usr/bin/env bash
# Upload a small image in the request body (POST /images, at most 4 MiB).
# Usage: examples/upload.sh FILE [CONTENT_TYPE]  -> prints the new image's id
source "$(dirname "$0")/lib.sh"
file=${1:?usage: examples/upload.sh FILE [CONTENT_TYPE]}
type=${2:-image/jpeg}
# --data-binary sends the bytes as they are (-d would strip newlines).
api POST "/images?filename=$(basename "$file")" -H "Content-Type: $type" --data-binary "@$file" | json_get 'd["id"]'
