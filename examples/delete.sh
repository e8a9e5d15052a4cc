#!/usr/bin/env bash
# Delete an image: its original, then its renditions (204; GET answers 404 from then on).
# Usage: examples/delete.sh ID
source "$(dirname "$0")/lib.sh"
id=${1:?usage: examples/delete.sh ID}
api DELETE "/images/$id" >/dev/null
