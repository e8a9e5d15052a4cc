#!/usr/bin/env bash
# Upload a small image as a browser's <input type="file" name="file"> sends it (multipart form).
# Usage: examples/upload-form.sh FILE  -> prints the new image's id
source "$(dirname "$0")/lib.sh"
file=${1:?usage: examples/upload-form.sh FILE}
api POST /images -F "file=@$file" | json_get 'd["id"]'
