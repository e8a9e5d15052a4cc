"""The emulator's server: ``moto.server`` with three SQS fixes, so it answers as SQS does.

``local.emulator`` starts this module (``python -m local.moto_server``) instead of
``moto.server``; the arguments are moto's. moto 5.2's SQS model differs from
AWS in three ways that matter to this repository's Terraform:

1. ``RedrivePolicy`` comes back as ``json.dumps`` output, with spaces
   (``{"deadLetterTargetArn": "...", "maxReceiveCount": 3}``); SQS returns it
   compact. The provider stores the text it reads for the queue's inline
   ``redrive_policy``, so a second plan would always show a change.
2. ``SetQueueAttributes`` without ``Policy`` clears the queue's policy; SQS
   changes only the attributes it is given.
3. ``RedriveAllowPolicy`` is accepted but never returned, and asking for it by
   name is an ``InvalidAttributeName`` error; SQS stores and returns it.

The patches wrap moto's own methods (``Queue.attributes``,
``Queue._set_attributes``, ``SQSBackend.get_queue_attributes``); what SQS
requests cost no longer grows with the number of messages in the queue
(``local.moto_sqs``). IAM is checked
as AWS checks it (``local.moto_iam``, in force once the emulator enforces IAM),
S3's event records and metadata limit follow AWS (``local.moto_s3``), and
``UpdateTable`` changes a table's encryption and writes to one item are
applied one at a time, as DynamoDB does (``local.moto_dynamodb``), CloudFront
origins keep their origin access control (``local.moto_cloudfront``), Step
Functions answers the calls Terraform makes and runs the project's state
machines as AWS does (``local.moto_sfn``), its Task calls made with the state
machine's role, and
Lambda's ``Invoke`` runs the local stack's functions once the stack registers
its runtime (``local.moto_lambda``); everything else is moto's server, unchanged,
except that connections are kept open between requests (``keep_alive_handler``;
werkzeug's development server closes each one after its answer), each answer is
sent in one write (``WholeAnswers``), only refused and failed requests and calls
a client sent again are logged, and the backend of a host and a parsed JSONPath
are kept instead of found again for every request (``remember_backends``,
``remember_json_paths``).

With ``--snapshot FILE`` the server starts from that file's state when it holds
a usable snapshot (``local.snapshot``), and ``/_local/snapshot`` answers:
``GET`` says whether it did (``{"restored": true}``), ``POST`` saves the
current state to the file (call it while nothing else is being served).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from local import (
    moto_cloudfront,
    moto_dynamodb,
    moto_iam,
    moto_lambda,
    moto_s3,
    moto_sfn,
    moto_sqs,
    snapshot,
)

REDRIVE_ALLOW_POLICY = "RedriveAllowPolicy"


def _compact(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"))


def _patch_sqs() -> None:
    from moto.sqs import models

    queue_cls, backend_cls = models.Queue, models.SQSBackend
    original_attributes = queue_cls.attributes.fget
    original_set = queue_cls._set_attributes
    original_get = backend_cls.get_queue_attributes

    def attributes(self: Any) -> dict[str, Any]:
        result = original_attributes(self)
        if result.get("RedrivePolicy"):
            result["RedrivePolicy"] = _compact(result["RedrivePolicy"])
        allow = getattr(self, "redrive_allow_policy", None)
        if allow:
            result[REDRIVE_ALLOW_POLICY] = allow
        return result

    def _set_attributes(self: Any, attrs: dict[str, Any], now: float | None = None) -> None:
        kept = None if "Policy" in attrs else getattr(self, "_policy_json", None)
        original_set(self, attrs, now)
        if kept is not None:
            self._policy_json = kept
        if REDRIVE_ALLOW_POLICY in attrs:
            # An empty value removes it, as in SQS.
            self.redrive_allow_policy = (
                _compact(attrs[REDRIVE_ALLOW_POLICY]) if attrs[REDRIVE_ALLOW_POLICY] else None
            )

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        if REDRIVE_ALLOW_POLICY not in attribute_names:
            return original_get(self, queue_name, attribute_names)
        names = [n for n in attribute_names if n != REDRIVE_ALLOW_POLICY]
        result = original_get(self, queue_name, names)  # checks the queue exists, even for []
        allow = getattr(self.get_queue(queue_name), "redrive_allow_policy", None)
        if allow:
            result[REDRIVE_ALLOW_POLICY] = allow
        return result

    queue_cls.attributes = property(attributes)
    queue_cls._set_attributes = _set_attributes
    backend_cls.get_queue_attributes = get_queue_attributes


_answered = threading.local()  # .drained: this thread's request was read to its end and answered


class DrainedRequests:
    """WSGI middleware: each request's body read to its end once it is answered, so that the
    connection can serve the next request (``keep_alive_handler``).

    The body is handed to the app as a stream that ends at ``Content-Length`` (or at the last
    chunk of a chunked body), never at the socket's end, which a kept-alive connection does not
    reach; what the app left unread is read and dropped after it answers."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wsgi import LimitedStream

        _answered.drained = False
        if not environ.get("wsgi.input_terminated"):
            try:
                length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
            except ValueError:
                length = 0
            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], length)
        answer = self.app(environ, start_response)
        try:
            chunks = list(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        stream = environ["wsgi.input"]
        while stream.read(1 << 16):
            pass
        _answered.drained = True
        return chunks


class _AfterAnswerSelector:
    """What werkzeug's server reads the socket with after each answer (``selectors`` in
    ``werkzeug.serving``): it discards whatever the client sent next, which is right only when it
    closes the connection. For a drained request the next bytes are the next request: nothing to
    discard, and no 10 ms wait for them."""

    def __init__(self) -> None:
        import selectors

        self._selector = selectors.DefaultSelector()

    def register(self, *args: Any) -> Any:
        return self._selector.register(*args)

    def select(self, timeout: float | None = None) -> list[Any]:
        if getattr(_answered, "drained", False):
            return []
        return self._selector.select(timeout)

    def close(self) -> None:
        self._selector.close()


class WholeAnswers:
    """What the request handler writes its answers to (``wfile``): each answer's status line,
    headers and body held until werkzeug flushes, then sent in one write.

    Werkzeug writes the headers and the body apart. On a kept connection the body then follows
    the headers in a second TCP segment, and Go's HTTP client (the AWS provider's SDK) at times
    closes the connection between the two: the SDK reads a closed connection ("use of closed
    network connection", aws/aws-sdk-go-v2#2737) and sends the request again, which for a create
    the emulator has already done fails as a duplicate (CloudFront's DistributionAlreadyExists).
    An interim answer (``100 Continue``) goes at once: the client waits for it before sending
    the body."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._held: list[bytes] = []

    @property
    def closed(self) -> bool:
        return bool(self._raw.closed)

    def write(self, data: bytes) -> int:
        if not self._held and bytes(data[:10]) == b"HTTP/1.1 1":
            return int(self._raw.write(data))
        self._held.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        if self._held:
            data, self._held = b"".join(self._held), []
            self._raw.write(data)

    def close(self) -> None:
        self._raw.close()


def resent_call(headers: Any) -> str | None:
    """``attempt N of that call by CALLER`` when a request is an SDK's second or later attempt of a
    call (its ``amz-sdk-request: attempt=N; max=M`` header, which the AWS SDKs, botocore and
    aws-sdk-go-v2, send with every call), else ``None``. The caller is the Terraform provider's
    ``User-Agent`` token when it has one (``terraform-provider-aws/5.100.0``), else the first
    (``Boto3/1.44.5``)."""
    match = re.search(r"attempt=(\d+)", headers.get("amz-sdk-request") or "")
    if match is None or int(match.group(1)) < 2:
        return None
    agent = (headers.get("User-Agent") or "").split() or ["-"]
    caller = next((token for token in agent if token.startswith("terraform-provider-")), agent[0])
    return f"attempt {match.group(1)} of that call by {caller}"


def keep_alive_handler() -> type:
    """moto's request handler, keeping HTTP/1.1 connections open between requests.

    Werkzeug's development server closes every connection after one response (it cannot tell
    whether the app read the whole request body); moto's server inherits that, so each SDK call
    paid a new TCP connection and a new server thread. With ``DrainedRequests`` in front of the
    app the body is always read to its end, so the connection is kept, as AWS's endpoints keep
    it; a request whose app failed, or one that asked for ``Connection: close``, still closes."""
    import types

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug import serving

    serving.selectors = types.SimpleNamespace(DefaultSelector=_AfterAnswerSelector, EVENT_READ=1)

    class KeepAliveRequestHandler(MotoRequestHandler):
        def send_header(self, keyword: str, value: str) -> None:
            drained = getattr(_answered, "drained", False)
            if keyword.lower() == "connection" and value.lower() == "close" and drained:
                return  # werkzeug's "always close": the body was drained, the answer is delimited
            super().send_header(keyword, value)

        def setup(self) -> None:
            super().setup()
            self.wfile = WholeAnswers(self.wfile)
            # A chunked answer still leaves in several writes: on a kept connection Nagle's
            # algorithm would hold each until the client's delayed ACK of the last (40 ms).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle_one_request(self) -> None:
            _answered.drained = False
            try:
                super().handle_one_request()
            finally:
                self.wfile.flush()  # an answer werkzeug wrote without flushing (a refused request line)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # Werkzeug logs every request it answered: the refused and failed ones (4xx, 5xx), and
            # the ones a client sent again, are what a reader of the emulator's log looks for; a
            # line per success cost 8 % of the emulator's busy CPU in the reprocess stack test.
            headers = getattr(self, "headers", None)  # none when the request line was refused
            resent = resent_call(headers) if headers is not None else None
            if str(code)[:1] in ("4", "5") or resent:
                super().log_request(code, size)
            if resent:
                self.log("info", "%s: its earlier attempt failed or its answer was lost", resent)

    return KeepAliveRequestHandler


def remember_backends() -> None:
    """moto's server picks the backend of each request from the host it infers for it: it lists
    moto's package directory (a stat per service) and tries the URL patterns of every service, one
    request at a time under one lock: a fifth of the emulator's busy CPU in the reprocess stack test
    (py-spy). The answer depends only on the host, and the package and patterns never change while
    the server runs, so it is kept per host."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    find = DomainDispatcherApplication.get_backend_for_host
    if getattr(find, "remembers", False):
        return
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host not in known:
            known[host] = find(self, host)
        return known[host]

    get_backend_for_host.remembers = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def remember_json_paths() -> None:
    """moto parses a JSONPath afresh each time it uses one (jsonpath_ng's parser, built per call):
    EventBridge eight times per event delivered to each target (its default input paths), Step
    Functions for every path of every state it runs. A parsed path is only read when it is used, so
    each is parsed once (``functools.lru_cache``), for both. Call it before anything binds
    ``jsonpath_ng.ext.parse`` (``local.moto_sfn.patch``)."""
    import jsonpath_ng.ext
    from moto.stepfunctions.parser.asl.utils import json_path

    if getattr(jsonpath_ng.ext.parse, "cache_info", None) is None:
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=4096)(jsonpath_ng.ext.parse)
    json_path.parse = jsonpath_ng.ext.parse  # the module bound the parser when it was imported


SNAPSHOT_PATH = "/_local/snapshot"


class SnapshotControl:
    """WSGI middleware: ``/_local/snapshot`` here, every other request to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]], path: Path | None, restored: bool) -> None:
        self.app, self.path, self.restored = app, path, restored
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != SNAPSHOT_PATH:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        if self.path is None:
            status, body = "404 Not Found", {"error": "started without --snapshot"}
        elif method == "GET":
            status, body = "200 OK", {"restored": self.restored}
        elif method == "POST":
            try:
                with self._lock:
                    snapshot.save(self.path)
                status, body = "200 OK", {"saved": self.path.stat().st_size}
            except Exception as exc:  # reported to the caller, who goes on without one
                status, body = "500 Internal Server Error", {"error": f"{type(exc).__name__}: {exc}"}
        else:
            status, body = "405 Method Not Allowed", {"error": f"{method} is not allowed"}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def _exit(signum: int, frame: Any) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    """moto's server (as ``moto.server.main`` runs it), patched, optionally from a snapshot."""
    parser = argparse.ArgumentParser(prog="python -m local.moto_server")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port to listen on")
    parser.add_argument(
        "--snapshot", type=Path, help="start from this snapshot if usable; POST /_local/snapshot saves to it"
    )
    args = parser.parse_args(argv)
    remember_json_paths()  # JSONPaths parsed once each; before moto_sfn.patch(), which binds the parser
    moto_sqs.patch()  # SQS's counts and retention check at a cost that does not grow with the queue
    _patch_sqs()  # wraps moto_sqs's get_queue_attributes
    moto_s3.patch()  # S3's event records and metadata limit (local/moto_s3.py)
    moto_dynamodb.patch()  # UpdateTable's SSESpecification (local/moto_dynamodb.py)
    moto_cloudfront.patch()  # origins keep their OAC; cache policies, no forwarded values
    moto_sfn.patch()  # Step Functions' missing calls, ItemReader, ItemBatcher, roles (local/moto_sfn.py)
    moto_lambda.patch()  # Invoke runs the local stack's functions once it registers (local/moto_lambda.py)
    moto_lambda.patch_updates()  # updates move LastModified and RevisionId on, as on AWS
    remember_backends()  # the backend of a host found once, not per request
    from moto.moto_server import werkzeug_app
    from werkzeug.serving import run_simple

    # Task states' inner AWS calls go to http://localhost:$MOTO_PORT (moto.settings.moto_server_port):
    # this server's own port, whatever the caller's environment says.
    os.environ["MOTO_PORT"] = str(args.port)
    restored = args.snapshot is not None and snapshot.load(args.snapshot)
    signal.signal(signal.SIGINT, _exit)
    signal.signal(signal.SIGTERM, _exit)
    app = werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app)
    app.debug = True  # type: ignore[attr-defined]  # as moto.server does
    run_simple(
        args.host,
        args.port,
        DrainedRequests(
            SnapshotControl(moto_lambda.RuntimeRoutes(moto_iam.install(app)), args.snapshot, restored)
        ),
        threaded=True,
        request_handler=keep_alive_handler(),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
