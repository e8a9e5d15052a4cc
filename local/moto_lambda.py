"""Lambda's ``Invoke`` in the emulator runs the local stack's functions, as Lambda runs them.

moto stores functions but runs no code without Docker: its ``Invoke`` echoes
the payload, or tries a container. The local stack runs every function itself
(``local.functions``); once it has said where (``POST /_local/lambda/runtime``
with ``{"url", "token"}``, from ``local.invocations``), the emulator's
``Invoke`` hands each request for a function it holds to that runtime and
answers as Lambda's Invoke API does:

- ``RequestResponse``: HTTP 200, the function's result as ``Payload``,
  ``X-Amz-Executed-Version: $LATEST``; when the handler raises, times out or
  runs out of memory, still 200, with ``X-Amz-Function-Error: Unhandled`` and
  an ``{"errorType", "errorMessage", "requestId", "stackTrace"}`` payload;
- ``Event``: HTTP 202 at once, the function runs in the background (once: no
  retries, no destinations);
- ``DryRun``: HTTP 204, nothing runs;
- an unknown function: 404 ``ResourceNotFoundException`` (moto's own lookup);
  a body that is not JSON: 400 ``InvalidRequestContentException``; a payload
  over 6 MB: 413 ``RequestTooLargeException``; a role Lambda cannot assume:
  400 ``InvalidParameterValueException``.

The caller's ``lambda:InvokeFunction`` grant on the function's ARN is checked
before any of this (``local.moto_iam``). Step Functions' ``lambda:invoke``
Task calls this same ``Invoke``. Without a registered runtime (the emulator on
its own, as in tests of moto itself) ``Invoke`` is moto's, unchanged.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

RUNTIME_PATH = "/_local/lambda/runtime"
TOKEN_HEADER = "X-Local-Runtime-Token"  # noqa: S105  (a header name)
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # synchronous Invoke request payload (Lambda quotas)
RUNTIME_TIMEOUT = 960.0  # the longest Lambda timeout (900 s) plus a cold start and the queue for a worker

_runtime: dict[str, str] | None = None
_runtime_lock = threading.Lock()


def runtime() -> dict[str, str] | None:
    """Where the local stack runs functions (``{"url", "token"}``), if it said."""
    with _runtime_lock:
        return dict(_runtime) if _runtime else None


def _register(body: dict[str, Any] | None) -> None:
    global _runtime
    with _runtime_lock:
        _runtime = {"url": str(body["url"]), "token": str(body["token"])} if body else None


def _error(status: int, error_type: str, message: str) -> tuple[int, dict[str, str], str]:
    """A Lambda API error as the SDK reads it (rest-json: the type in a header and the body)."""
    body = json.dumps({"Type": "User", "message": message})
    headers = {"status": str(status), "x-amzn-ErrorType": error_type, "content-type": "application/json"}
    return status, headers, body


def call_runtime(where: dict[str, str], request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST one invocation to the stack's runtime; its HTTP status and JSON answer."""
    req = urllib.request.Request(  # noqa: S310  (loopback, the stack's own server)
        where["url"],
        data=json.dumps(request).encode(),
        method="POST",
        headers={"Content-Type": "application/json", TOKEN_HEADER: where["token"]},
    )
    try:
        with urllib.request.urlopen(req, timeout=RUNTIME_TIMEOUT) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _invoke(self: Any, original: Callable[[Any], Any]) -> tuple[int, dict[str, str], str | bytes]:
    where = runtime()
    if where is None:
        return original(self)
    name = unquote(self.path.rsplit("/", 2)[-2])
    qualifier = self.querystring.get("Qualifier", [None])[0]
    fn = self.backend.get_function(name, qualifier)  # ResourceNotFoundException (404) when unknown
    invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    raw = self.body.encode() if isinstance(self.body, str) else (self.body or b"")
    if len(raw) > MAX_PAYLOAD_BYTES:
        return _error(
            413,
            "RequestTooLargeException",
            f"{len(raw)} byte payload is too large for the {invocation_type} invocation type "
            f"(limit {MAX_PAYLOAD_BYTES} bytes)",
        )
    try:
        event = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
    if invocation_type == "DryRun":
        return 204, {"status": "204"}, ""
    request = {"function_arn": fn.function_arn, "function_name": fn.function_name, "event": event}
    if invocation_type == "Event":
        threading.Thread(target=_run_async, args=(where, request), name="invoke-event", daemon=True).start()
        return 202, {"status": "202"}, ""
    status, answer = call_runtime(where, request)
    if status != 200:
        code, message = answer.get("code", "ServiceException"), answer.get("message", "the runtime failed")
        return _error(status, code, message)
    headers = {
        "status": "200",
        "content-type": "application/json",
        "X-Amz-Executed-Version": "$LATEST",
        "x-amzn-RequestId": answer["request_id"],
    }
    if answer.get("error") is not None:
        headers["X-Amz-Function-Error"] = "Unhandled"
        return 200, headers, json.dumps({**answer["error"], "requestId": answer["request_id"]})
    return 200, headers, answer["payload"]


def _run_async(where: dict[str, str], request: dict[str, Any]) -> None:
    """An Event invocation: the stack runs it and logs its outcome; nobody waits for it."""
    try:
        call_runtime(where, {**request, "asynchronous": True})
    except (OSError, ValueError) as exc:
        print(f"asynchronous invoke of {request['function_name']} failed: {exc}", flush=True)


def patch() -> None:
    """Make moto's Lambda ``Invoke`` (server mode) run the registered runtime's functions."""
    from moto.awslambda.responses import LambdaResponse
    from moto.utilities.aws_headers import amz_crc32

    original = LambdaResponse.invoke

    @amz_crc32
    def invoke(self: Any) -> tuple[int, dict[str, str], str | bytes]:
        return _invoke(self, original)

    LambdaResponse.invoke = invoke


def patch_updates() -> None:
    """Updates move ``LastModified`` and ``RevisionId`` on, as on AWS.

    AWS Lambda's ``FunctionConfiguration``: ``LastModified`` is when the function
    was last updated, ``RevisionId`` "the latest updated revision of the
    function" (UpdateFunctionCode's ``RevisionId`` parameter: update only if it
    matches, "to avoid modifying a function that has changed since you last read
    it"). moto 5.2.5 keeps the creation time in ``LastModified`` after
    UpdateFunctionConfiguration or UpdateFunctionCode and returns no
    ``RevisionId`` at all: both are set here on every update (and a
    ``RevisionId`` is made on first read for a function that has none).
    """
    import uuid

    from moto.awslambda.models import LambdaFunction
    from moto.core.utils import iso_8601_datetime_with_nanoseconds

    def updating(method: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def update(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
            if not (args and isinstance(args[0], dict) and args[0].get("DryRun")):
                self.last_modified = iso_8601_datetime_with_nanoseconds()
                self.revision_id = str(uuid.uuid4())
            return method(self, *args, **kwargs)

        return update

    original_configuration = LambdaFunction.get_configuration

    def get_configuration(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if not getattr(self, "revision_id", None):
            self.revision_id = str(uuid.uuid4())
        return {**original_configuration(self, *args, **kwargs), "RevisionId": self.revision_id}

    LambdaFunction.update_configuration = updating(LambdaFunction.update_configuration)
    LambdaFunction.update_function_code = updating(LambdaFunction.update_function_code)
    LambdaFunction.get_configuration = get_configuration


class RuntimeRoutes:
    """WSGI middleware: ``/_local/lambda/runtime`` here (POST registers, DELETE forgets), the rest on."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != RUNTIME_PATH:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        try:
            if method == "POST":
                size = int(environ.get("CONTENT_LENGTH") or 0)
                _register(json.loads(environ["wsgi.input"].read(size) or b"{}"))
            elif method == "DELETE":
                _register(None)
            elif method != "GET":
                return _json(start_response, "405 Method Not Allowed", {"error": f"{method} is not allowed"})
        except (KeyError, ValueError, TypeError) as exc:
            return _json(start_response, "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"})
        where = runtime()
        return _json(start_response, "200 OK", {"url": where["url"] if where else None})


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
