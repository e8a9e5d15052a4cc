"""The stack's side of Lambda's ``Invoke``: the emulator hands each invocation here, the stack runs it.

moto cannot run Lambda code; the stack runs every function (``local.functions``).
``InvokeServer`` listens on a free loopback port and tells the emulator where
(``POST /_local/lambda/runtime`` with its URL and a random token; the emulator's
side is ``local.moto_lambda``). For each invocation the emulator sends
``{"function_arn", "function_name", "event"}`` (with the token in a header),
the server finds the function's ``LocalFunction`` (its role, memory and
timeout) through ``find`` and answers ``{"request_id", "payload", "error"}``:
``payload`` is the handler's result as JSON text, ``error`` Lambda's error
object when the invocation failed. ``"asynchronous": true`` (an ``Event``
invocation) answers at once and runs it after, logging a failure.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hmac
import json
import logging
import secrets
import threading
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.functions import InvokeResult, LocalFunction
from local.moto_lambda import RUNTIME_PATH, TOKEN_HEADER

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
WORKER_THREADS = 16  # invocations at once (each function still runs at most its max_workers)


class UnknownFunction(LookupError):
    """The emulator holds the function, but the stack cannot run it."""


class InvokeServer:
    """A loopback HTTP server that runs invocations the emulator hands over."""

    def __init__(self, endpoint: str, find: Callable[[str, str], LocalFunction]) -> None:
        self.endpoint = endpoint  # the emulator's
        self.find = find  # (function name, function ARN) -> the LocalFunction that runs it
        self.token = secrets.token_urlsafe(32)  # only the emulator, told at registration, may call
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Invocations run on long-lived threads: a worker process dies with the thread that
        # started it (local.processes), and the server's request threads end with each request.
        self._executor = concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="invoke")

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}/invoke"

    def start(self) -> InvokeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not hmac.compare_digest(self.headers.get(TOKEN_HEADER, ""), server.token):
                    self._answer(403, {"code": "AccessDeniedException", "message": "not the emulator"})
                    return
                size = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(size))
                    status, body = server.handle(request)
                except (ValueError, KeyError, TypeError) as exc:
                    status, body = 400, {"code": "InvalidRequestContentException", "message": str(exc)}
                self._answer(status, body)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the functions' own START/END/REPORT lines say enough

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="invocations", daemon=True)
        self._thread.start()
        self._post({"url": self.url, "token": self.token})
        return self

    def handle(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name, arn, event = str(request["function_name"]), str(request["function_arn"]), request["event"]
        try:
            fn = self.find(name, arn)
        except UnknownFunction as exc:
            return 404, {"code": "ResourceNotFoundException", "message": str(exc)}
        if request.get("asynchronous"):
            self._executor.submit(self._run_async, fn, event)
            return 202, {}
        return 200, answer(self._executor.submit(fn.invoke, event).result())

    @staticmethod
    def _run_async(fn: LocalFunction, event: Any) -> None:
        result = fn.invoke(event)
        if not result.ok:
            log.error(
                "asynchronous invocation %s of %s failed: %s: %s",
                result.request_id,
                fn.name,
                result.error.get("errorType"),
                result.error.get("errorMessage"),
            )

    def _post(self, body: dict[str, Any] | None) -> None:
        req = urllib.request.Request(  # noqa: S310  (the emulator, on loopback)
            f"{self.endpoint}{RUNTIME_PATH}",
            data=json.dumps(body).encode() if body else None,
            method="POST" if body else "DELETE",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310
            pass

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(OSError):  # else the emulator has already gone
            self._post(None)  # the emulator's Invoke is moto's again
        server.shutdown()
        server.server_close()
        if self._thread:
            self._thread.join(5)
        self._executor.shutdown(wait=False, cancel_futures=True)


def answer(result: InvokeResult) -> dict[str, Any]:
    """What the emulator needs to answer Invoke: the result as JSON text, or Lambda's error object."""
    if result.ok:
        return {"request_id": result.request_id, "payload": json.dumps(result.payload), "error": None}
    return {"request_id": result.request_id, "payload": None, "error": result.error}
