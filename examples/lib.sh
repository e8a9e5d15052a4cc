# Shared by the example scripts: the API base URL, the optional token, JSON reading.
# Sourced, not run. Needs bash, curl and python3 (no jq).
set -euo pipefail

: "${API:?set API to the API base URL, e.g. export API=http://127.0.0.1:8080 (make run prints it)}"
API=${API%/}
auth=()
if [[ -n ${TOKEN:-} ]]; then
  auth=(-H "Authorization: Bearer $TOKEN")  # with api_auth = "jwt"
fi

# json_get EXPR: evaluate a Python expression over the JSON on stdin, bound to `d`.
json_get() {
  python3 -c 'import json, sys; d = json.load(sys.stdin); v = eval(sys.argv[1]); print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# api METHOD PATH [curl args...]: the response body on stdout; exits non-zero on an HTTP error,
# printing the API's error body on stderr.
api() {
  local method=$1 path=$2 body status
  shift 2
  body=$(curl -sS -X "$method" ${auth[@]+"${auth[@]}"} -w '\n%{http_code}' "$@" "$API$path")
  status=${body##*$'\n'}
  body=${body%$'\n'*}
  if ((status >= 400)); then
    echo "HTTP $status: $body" >&2
    return 1
  fi
  printf '%s\n' "$body"
}
