"""The HTTP front: API Gateway HTTP API behaviour for the routes Terraform declared.

The emulator stores the API, its routes and integrations but does not serve
them. ``load_api`` reads them back from the emulator; ``Front`` listens on
loopback and, for each request, does what API Gateway does with a Lambda proxy
integration (payload format 2.0):

- picks the route (``METHOD /path/{param}``, ``ANY``, greedy ``{proxy+}``,
  ``$default``) with API Gateway's priority: exact paths first, then
  parameters, greedy last; no route is ``404 {"message":"Not Found"}``;
- builds the event: ``version``, ``routeKey``, ``rawPath``, ``rawQueryString``,
  ``cookies``, lowercased ``headers`` (duplicates joined with commas),
  ``queryStringParameters``, ``pathParameters``, ``requestContext`` (with
  ``http`` and a fresh ``requestId``), ``body`` and ``isBase64Encoded`` (true for
  any body that is not text);
- refuses bodies over 10 MB (API Gateway's payload quota) with
  ``413 {"message":"Request Entity Too Large"}`` as soon as the headers say so,
  and events over Lambda's 6 MB synchronous request limit (a binary body over
  about 4.7 MB, once base64-encoded) with ``413 {"message":"Request Too Long"}``,
  the answer API Gateway gives when Lambda refuses the invocation as too large;
- turns the function's response back into HTTP: ``statusCode``, ``headers``,
  ``cookies`` (one ``Set-Cookie`` each), base64 bodies decoded; a response
  without ``statusCode`` is JSON with 200; a function error is
  ``500 {"message":"Internal Server Error"}``; an integration that takes longer
  than its ``TimeoutInMillis`` is ``503 {"message":"Service Unavailable"}``;
- answers CORS preflights and adds CORS headers from the API's
  ``CorsConfiguration``;
- throttles with the ``$default`` stage's burst and rate limits:
  ``429 {"message":"Too Many Requests"}``.

- enforces JWT authorizers as API Gateway does (``local.jwt_authorizer``):
  signature against the issuer's JWKS, ``iss``, ``aud``/``client_id``,
  ``exp``, ``nbf``, ``iat`` and the route's scopes.

HTTP itself is waitress's (a maintained WSGI server): it validates the framing
(a ``Content-Length`` that is not a number is ``400 {"message":"Bad Request"}``
at once), buffers each request whole before a thread handles it (a client that
hangs up mid-body never causes an invocation, and half-sent requests hold no
thread), and closes connections idle for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from local.cdn import Cdn
from local.functions import MAX_PAYLOAD_BYTES, InvokeResult
from local.jwt_authorizer import Denied, JwtAuthorizer, JwtVerifier

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API's request payload quota
MAX_EVENT_BYTES = MAX_PAYLOAD_BYTES  # Lambda's synchronous invocation request limit
IDLE_TIMEOUT = 30  # seconds a connection may sit idle or half-sent before it is closed
FRONT_THREADS = 16  # requests handled at once; the rest wait, fully read, in order
DEFAULT_INTEGRATION_TIMEOUT_MS = 30_000
TEXT_TYPES = re.compile(r"^(text/[^;]+|application/(json|javascript|xml|graphql|[a-z0-9.-]+\+(json|xml)))$")
_FUNCTION_IN_URI = re.compile(r"function:([A-Za-z0-9_-]+)")

Invoker = Callable[[str, dict[str, Any]], InvokeResult]


@dataclass(frozen=True)
class Route:
    """One route of the API and the function its integration invokes."""

    key: str  # "GET /images/{id}", "ANY /{proxy+}" or "$default"
    function: str
    payload_version: str = "2.0"
    timeout_ms: int = DEFAULT_INTEGRATION_TIMEOUT_MS
    authorization: str = "NONE"
    authorizer: JwtAuthorizer | None = None
    scopes: tuple[str, ...] = ()  # the route's AuthorizationScopes

    @property
    def method(self) -> str:
        return "ANY" if self.key == "$default" else self.key.split(" ", 1)[0]

    @property
    def path(self) -> str | None:
        return None if self.key == "$default" else self.key.split(" ", 1)[1]

    def rank(self) -> tuple[int, int, int]:
        """Sort key: exact paths, then parameterised, then greedy, then $default."""
        if self.path is None:
            return (3, 0, 0)
        segments = self.path.strip("/").split("/")
        greedy = segments[-1].endswith("+}")
        params = sum(s.startswith("{") for s in segments)
        kind = 2 if greedy else (1 if params else 0)
        return (kind, -len(segments), self.method == "ANY")

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters (decoded) when this route matches the raw path, else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path is None:
            return {}
        want = self.path.strip("/").split("/")
        have = [unquote(s) for s in raw_path.strip("/").split("/")]
        params: dict[str, str] = {}
        for i, segment in enumerate(want):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = have[i:]
                if not rest or rest == [""]:
                    return None
                params[segment[1:-2]] = "/".join(rest)
                return params
            if i >= len(have):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not have[i]:
                    return None
                params[segment[1:-1]] = have[i]
            elif segment != have[i]:
                return None
        return params if len(have) == len(want) else None


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allow_origins or origin in self.allow_origins


class Throttle:
    """API Gateway's token bucket: ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


@dataclass(frozen=True)
class Api:
    api_id: str
    name: str
    account_id: str
    routes: tuple[Route, ...]
    cors: Cors | None = None
    stage: str = "$default"
    throttle: Throttle | None = None

    def find(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        for route in sorted(self.routes, key=Route.rank):
            params = route.match(method, raw_path)
            if params is not None:
                return route, params
        return None

    def functions(self) -> set[str]:
        return {r.function for r in self.routes}


def load_api(apigw: Any, account_id: str, api_id: str | None = None) -> Api:
    """The HTTP API as Terraform created it in the emulator (the only one, or ``api_id``)."""
    apis = [a for a in apigw.get_apis().get("Items", []) if a.get("ProtocolType") == "HTTP"]
    if api_id:
        apis = [a for a in apis if a["ApiId"] == api_id]
    if len(apis) != 1:
        names = [a.get("Name") for a in apis]
        raise RuntimeError(f"expected exactly one HTTP API in the emulator, found {len(apis)}: {names}")
    api = apis[0]
    routes = _load_routes(apigw, api["ApiId"])
    cors = _cors(api["CorsConfiguration"]) if api.get("CorsConfiguration") else None
    throttle = _stage_throttle(apigw, api["ApiId"])
    return Api(api["ApiId"], api.get("Name", ""), account_id, tuple(routes), cors, throttle=throttle)


def _load_routes(apigw: Any, api_id: str) -> list[Route]:
    """The routes served locally: those with a Lambda proxy integration (others are logged and skipped)."""
    integrations = {i["IntegrationId"]: i for i in apigw.get_integrations(ApiId=api_id).get("Items", [])}
    routes = []
    for item in apigw.get_routes(ApiId=api_id).get("Items", []):
        target = item.get("Target") or ""
        integration = integrations.get(target.removeprefix("integrations/"))
        if integration is None or integration.get("IntegrationType") != "AWS_PROXY":
            log.warning(
                "route %s has no Lambda proxy integration; it is not served locally", item["RouteKey"]
            )
            continue
        found = _FUNCTION_IN_URI.search(integration.get("IntegrationUri", ""))
        if not found:
            log.warning("route %s: no function in %s", item["RouteKey"], integration.get("IntegrationUri"))
            continue
        authorizer = None
        if item.get("AuthorizerId"):  # the emulator has GetAuthorizer but not GetAuthorizers
            authorizer = _jwt_authorizer(
                apigw.get_authorizer(ApiId=api_id, AuthorizerId=item["AuthorizerId"])
            )
        routes.append(
            Route(
                key=item["RouteKey"],
                function=found.group(1),
                payload_version=integration.get("PayloadFormatVersion") or "1.0",
                timeout_ms=int(integration.get("TimeoutInMillis") or DEFAULT_INTEGRATION_TIMEOUT_MS),
                authorization=item.get("AuthorizationType") or "NONE",
                authorizer=authorizer,
                scopes=tuple(item.get("AuthorizationScopes") or ()),
            )
        )
    return routes


def _cors(config: dict[str, Any]) -> Cors:
    return Cors(
        allow_origins=tuple(config.get("AllowOrigins") or ()),
        allow_methods=tuple(m.upper() for m in config.get("AllowMethods") or ()),
        allow_headers=tuple(h.lower() for h in config.get("AllowHeaders") or ()),
        expose_headers=tuple(h.lower() for h in config.get("ExposeHeaders") or ()),
        max_age=config.get("MaxAge"),
        allow_credentials=bool(config.get("AllowCredentials")),
    )


def _stage_throttle(apigw: Any, api_id: str) -> Throttle | None:
    """The $default stage's route throttling, when both its rate and burst are set."""
    stages = {st["StageName"]: st for st in apigw.get_stages(ApiId=api_id).get("Items", [])}
    settings = (stages.get("$default") or {}).get("DefaultRouteSettings") or {}
    if settings.get("ThrottlingRateLimit") is None or settings.get("ThrottlingBurstLimit") is None:
        return None
    return Throttle(float(settings["ThrottlingRateLimit"]), int(settings["ThrottlingBurstLimit"]))


def _jwt_authorizer(authorizer: dict[str, Any]) -> JwtAuthorizer | None:
    config = authorizer.get("JwtConfiguration")
    if authorizer.get("AuthorizerType") != "JWT" or not config:
        return None
    sources = authorizer.get("IdentitySource") or ["$request.header.Authorization"]
    return JwtAuthorizer(
        issuer=config.get("Issuer") or "",
        audience=tuple(config.get("Audience") or ()),
        identity_source=sources[0],
    )


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body with this type as text (else base64)."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return bool(TEXT_TYPES.match(mime))


def request_id() -> str:
    """An API Gateway style request id (apigw-requestid)."""
    return base64.b64encode(os.urandom(10)).decode("ascii").replace("/", "A").replace("+", "B")


def forwarded_headers(headers: list[tuple[str, str]], source_ip: str) -> tuple[dict[str, str], list[str]]:
    """The event's ``headers`` (lower-case names, repeated ones joined by commas, the
    X-Forwarded-* and X-Amzn-Trace-Id headers API Gateway adds) and its ``cookies``."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    host = merged.get("host", "127.0.0.1")
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-proto", "http")
    merged.setdefault("x-forwarded-port", host.rsplit(":", 1)[1] if ":" in host else "80")
    merged.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()}")
    return merged, cookies


def query_parameters(raw_query: str) -> dict[str, str]:
    """``queryStringParameters``: repeated names joined by commas, blank values kept."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    return query


def encoded_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """The event's ``body`` and ``isBase64Encoded``: text types as UTF-8 when they decode, else base64."""
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def request_context(api: Api, route: Route, host: str, http: dict[str, str], req_id: str) -> dict[str, Any]:
    """The event's ``requestContext``: the API, the stage, the request's id and time."""
    now = time.time()
    return {
        "accountId": api.account_id,
        "apiId": api.api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": http,
        "requestId": req_id,
        "routeKey": route.key,
        "stage": api.stage,
        "time": formatdate(now, usegmt=True)[5:].replace(" GMT", " +0000"),
        "timeEpoch": int(now * 1000),
    }


def build_event(
    api: Api,
    route: Route,
    path_params: dict[str, str],
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    protocol: str,
    req_id: str,
    claims: dict[str, Any] | None = None,
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event."""
    merged, cookies = forwarded_headers(headers, source_ip)
    http = {
        "method": method,
        "path": raw_path,
        "protocol": protocol,
        "sourceIp": source_ip,
        "userAgent": merged.get("user-agent", ""),
    }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": request_context(api, route, merged.get("host", "127.0.0.1"), http, req_id),
        "isBase64Encoded": False,
    }
    optional = {
        "cookies": cookies,
        "queryStringParameters": query_parameters(raw_query),
        "pathParameters": path_params,
    }
    event.update({name: value for name, value in optional.items() if value})
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": scopes}}
    if body:
        event["body"], event["isBase64Encoded"] = encoded_body(body, merged.get("content-type"))
    return event


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _message(status: int, message: str) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode())


def to_response(result: InvokeResult) -> Response:
    """The HTTP response API Gateway makes of a payload 2.0 function result."""
    if not result.ok:
        if (result.error or {}).get("errorType") == "RequestEntityTooLargeException":
            return _message(413, "Request Too Long")
        return _message(500, "Internal Server Error")
    payload = result.payload
    if not (isinstance(payload, dict) and "statusCode" in payload):
        # No statusCode: API Gateway assumes 200 and a JSON body of the whole result.
        return Response(200, [("Content-Type", "application/json")], json.dumps(payload).encode())
    try:
        status = int(payload["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
        headers = [(str(k), str(v)) for k, v in (payload.get("headers") or {}).items()]
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            headers.extend((str(name), str(v)) for v in values)
        headers.extend(("Set-Cookie", str(c)) for c in payload.get("cookies") or ())
        body = payload.get("body")
        if body is None:
            data = b""
        elif payload.get("isBase64Encoded"):
            data = base64.b64decode(str(body), validate=True)
        else:
            data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    except (TypeError, ValueError, binascii.Error, AttributeError):
        log.error("malformed Lambda proxy response (request %s)", result.request_id)
        return _message(500, "Internal Server Error")
    return Response(status, headers, data)


@dataclass(frozen=True)
class Request:
    """One request as waitress delivered it: complete, its body read to the last byte."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        split = urlsplit(environ.get("REQUEST_URI") or "/")
        headers = [
            (key[5:].replace("_", "-").lower(), value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers.append((key.replace("_", "-").lower(), environ[key]))
        return cls(
            method=environ["REQUEST_METHOD"].upper(),
            raw_path=split.path or "/",
            raw_query=split.query,
            headers=headers,
            body=environ["wsgi.input"].read(),
            source_ip=environ.get("REMOTE_ADDR", ""),
            protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        )

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


class FrontApp:
    """The WSGI application: API Gateway's routing, authorizer, limits and Lambda proxy integration."""

    def __init__(
        self, api: Api, invoke: Invoker, verifier: JwtVerifier | None = None, cdn: Cdn | None = None
    ) -> None:
        self.api = api
        self.invoke = invoke
        self.verifier = verifier or JwtVerifier()
        self.cdn = cdn
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="invoke")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = time.monotonic()
        req_id = request_id()
        request = Request.from_environ(environ)
        if self.cdn is not None and self.cdn.handles(request.raw_path):
            # The CDN's URLs (local.cdn), not the API's: no route, no authorizer, no CORS.
            response = Response(
                *self.cdn.get(request.method, request.raw_path, request.header("if-none-match"))
            )
        else:
            response = self.serve(request, req_id)
            response.headers.append(("apigw-requestid", req_id))
            _cors_headers(self.api.cors, request, response)
        headers = [
            (name, value)
            for name, value in response.headers
            if name.lower() not in ("content-length", "connection", "transfer-encoding")
        ]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {_reason(response.status)}", headers)
        log.info(
            "%s %s %s -> %d (%d bytes, %.0f ms, request %s)",
            request.source_ip,
            request.method,
            request.raw_path,
            response.status,
            len(response.body),
            (time.monotonic() - started) * 1000,
            req_id,
        )
        return [] if request.method == "HEAD" else [response.body]

    def serve(self, request: Request, req_id: str) -> Response:
        api = self.api
        preflight = _preflight(api.cors, request)
        if preflight is not None:
            return preflight
        found = api.find(request.method, request.raw_path)
        if found is None:
            return _message(404, "Not Found")
        if api.throttle is not None and not api.throttle.allow():
            return _message(429, "Too Many Requests")
        route, params = found
        claims: dict[str, Any] | None = None
        scopes: list[str] | None = None
        if route.authorization == "JWT":
            granted = self._authorize(route, request)
            if isinstance(granted, Response):
                return granted
            claims, scopes = granted
        if route.payload_version != "2.0":
            log.error(
                "route %s uses payload format %s; the local front serves 2.0",
                route.key,
                route.payload_version,
            )
            return _message(500, "Internal Server Error")
        event = build_event(
            api,
            route,
            params,
            method=request.method,
            raw_path=request.raw_path,
            raw_query=request.raw_query,
            headers=request.headers,
            body=request.body,
            source_ip=request.source_ip,
            protocol=request.protocol,
            req_id=req_id,
            claims=claims,
            scopes=scopes,
        )
        if len(json.dumps(event).encode("utf-8")) > MAX_EVENT_BYTES:
            # Lambda refuses the Invoke (RequestEntityTooLargeException); the function never runs.
            return _message(413, "Request Too Long")
        future = self.executor.submit(self.invoke, route.function, event)
        try:
            result = future.result(timeout=route.timeout_ms / 1000)
        except concurrent.futures.TimeoutError:
            return _message(503, "Service Unavailable")
        return to_response(result)

    def _authorize(
        self, route: Route, request: Request
    ) -> tuple[dict[str, Any], list[str] | None] | Response:
        authorizer = route.authorizer or JwtAuthorizer(issuer="", audience=())
        headers = {name: value for name, value in request.headers}
        query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        outcome = self.verifier.authorize(authorizer, route.scopes, authorizer.token(headers, query))
        if isinstance(outcome, Denied):
            response = _message(outcome.status, outcome.message)
            response.headers.append(("www-authenticate", outcome.www_authenticate))
            return response
        return outcome.claims, outcome.scopes


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _preflight(cors: Cors | None, request: Request) -> Response | None:
    origin = request.header("origin")
    wanted = request.header("access-control-request-method")
    if request.method != "OPTIONS" or cors is None or not origin or not wanted:
        return None
    response = Response(204)
    if cors.origin_allowed(origin) and ("*" in cors.allow_methods or wanted.upper() in cors.allow_methods):
        response.headers += [
            ("Access-Control-Allow-Methods", ",".join(cors.allow_methods)),
            ("Access-Control-Allow-Headers", ",".join(cors.allow_headers)),
        ]
        if cors.max_age is not None:
            response.headers.append(("Access-Control-Max-Age", str(cors.max_age)))
    return response


def _cors_headers(cors: Cors | None, request: Request, response: Response) -> None:
    origin = request.header("origin")
    if cors is None or not origin or not cors.origin_allowed(origin):
        return
    allow = "*" if "*" in cors.allow_origins and not cors.allow_credentials else origin
    response.headers.append(("Access-Control-Allow-Origin", allow))
    if cors.allow_credentials:
        response.headers.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        response.headers.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    response.headers.append(("Vary", "Origin"))


class _GatewayErrorTask(ErrorTask):
    """waitress's answer to a request it refuses, in API Gateway's words: ``{"message": ...}``."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"message": error.reason}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(
            [("Content-Type", "application/json"), ("apigw-requestid", request_id())]
        )
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _GatewayChannel(HTTPChannel):
    error_task_class = _GatewayErrorTask


class Front:
    """The HTTP front on ``host:port`` (port 0 picks a free one), served by waitress from a thread."""

    def __init__(
        self,
        api: Api,
        invoke: Invoker,
        port: int,
        host: str = "127.0.0.1",
        *,
        idle_timeout: int = IDLE_TIMEOUT,
        verifier: JwtVerifier | None = None,
        cdn: Cdn | None = None,
    ) -> None:
        self.app = FrontApp(api, invoke, verifier, cdn)
        self.server = create_server(
            self.app,
            host=host,
            port=port,
            threads=FRONT_THREADS,
            # a burst of concurrent uploads (make bench sends 20 at once) waits in the backlog
            backlog=128,
            connection_limit=1000,
            channel_timeout=idle_timeout,
            cleanup_interval=1,
            # one byte over API Gateway's 10 MB is refused as soon as the headers announce it
            max_request_body_size=MAX_BODY_BYTES + 1,
            asyncore_use_poll=True,  # select() stops at 1024 descriptors
            ident="",
            expose_tracebacks=False,
        )
        self.server.channel_class = _GatewayChannel
        # "Task queue depth is N" on every burst of uploads: queuing is the point, not news.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self._stopping = threading.Event()
        self._closing = threading.Lock()  # the loop closes the trigger; stop() pulls it: never both
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="front", daemon=True)

    @property
    def api(self) -> Api:
        return self.app.api

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self.server.effective_host}:{self.port}"

    def start(self) -> Front:
        self._thread.start()
        return self

    def _serve(self) -> None:
        socket_map = self.server._map
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=0.5, map=socket_map, use_poll=True, count=1)
        finally:
            with self._closing:
                for dispatcher in list(socket_map.values()):
                    dispatcher.close()
                self._closed = True

    def stop(self) -> None:
        self._stopping.set()
        with self._closing:
            # Wake the loop from its 0.5 s wait, unless it saw _stopping first and closed the
            # trigger: its file descriptor may then be another file's (a write there was EBADF once).
            if not self._closed:
                self.server.trigger.pull_trigger()
        self._thread.join(5)
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self.app.executor.shutdown(wait=False, cancel_futures=True)
