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
- refuses bodies over 10 MB with 413 like API Gateway, and events over Lambda's
  6 MB payload limit with 413 too;
- turns the function's response back into HTTP: ``statusCode``, ``headers``,
  ``cookies`` (one ``Set-Cookie`` each), base64 bodies decoded; a response
  without ``statusCode`` is JSON with 200; a function error is
  ``500 {"message":"Internal Server Error"}``; an integration that takes longer
  than its ``TimeoutInMillis`` is ``503 {"message":"Service Unavailable"}``;
- answers CORS preflights and adds CORS headers from the API's
  ``CorsConfiguration``;
- throttles with the ``$default`` stage's burst and rate limits:
  ``429 {"message":"Too Many Requests"}``.

JWT authorizers are enforced only as far as a token must be present and carry
the configured audience; signatures are not verified locally.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.functions import InvokeResult

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
DRAIN_LIMIT = 64 * 1024 * 1024  # larger refused bodies are not even read
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
    audience: tuple[str, ...] = ()

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
    integrations = {
        i["IntegrationId"]: i for i in apigw.get_integrations(ApiId=api["ApiId"]).get("Items", [])
    }
    routes = []
    for item in apigw.get_routes(ApiId=api["ApiId"]).get("Items", []):
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
        audience: tuple[str, ...] = ()
        authorizer = None
        if item.get("AuthorizerId"):  # the emulator has GetAuthorizer but not GetAuthorizers
            authorizer = apigw.get_authorizer(ApiId=api["ApiId"], AuthorizerId=item["AuthorizerId"])
        if authorizer and authorizer.get("JwtConfiguration"):
            audience = tuple(authorizer["JwtConfiguration"].get("Audience") or ())
        routes.append(
            Route(
                key=item["RouteKey"],
                function=found.group(1),
                payload_version=integration.get("PayloadFormatVersion") or "1.0",
                timeout_ms=int(integration.get("TimeoutInMillis") or DEFAULT_INTEGRATION_TIMEOUT_MS),
                authorization=item.get("AuthorizationType") or "NONE",
                audience=audience,
            )
        )
    cors = None
    if api.get("CorsConfiguration"):
        c = api["CorsConfiguration"]
        cors = Cors(
            allow_origins=tuple(c.get("AllowOrigins") or ()),
            allow_methods=tuple(m.upper() for m in c.get("AllowMethods") or ()),
            allow_headers=tuple(h.lower() for h in c.get("AllowHeaders") or ()),
            expose_headers=tuple(h.lower() for h in c.get("ExposeHeaders") or ()),
            max_age=c.get("MaxAge"),
            allow_credentials=bool(c.get("AllowCredentials")),
        )
    throttle = None
    stages = {st["StageName"]: st for st in apigw.get_stages(ApiId=api["ApiId"]).get("Items", [])}
    settings = (stages.get("$default") or {}).get("DefaultRouteSettings") or {}
    if settings.get("ThrottlingRateLimit") is not None and settings.get("ThrottlingBurstLimit") is not None:
        throttle = Throttle(float(settings["ThrottlingRateLimit"]), int(settings["ThrottlingBurstLimit"]))
    return Api(api["ApiId"], api.get("Name", ""), account_id, tuple(routes), cors, throttle=throttle)


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body with this type as text (else base64)."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return bool(TEXT_TYPES.match(mime))


def request_id() -> str:
    """An API Gateway style request id (apigw-requestid)."""
    return base64.b64encode(os.urandom(10)).decode("ascii").replace("/", "A").replace("+", "B")


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
) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event."""
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
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": api.account_id,
            "apiId": api.api_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": req_id,
            "routeKey": route.key,
            "stage": api.stage,
            "time": formatdate(now, usegmt=True)[5:].replace(" GMT", " +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if body:
        if is_text(merged.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
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
            return _message(413, "Request Entity Too Large")
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


def _jwt_claims(authorization: str | None, audience: tuple[str, ...]) -> dict[str, Any] | None:
    """The token's claims when present and meant for ``audience`` (signature not checked)."""
    if not authorization:
        return None
    token = authorization.removeprefix("Bearer ").strip()
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    aud = claims.get("aud")
    auds = set(aud) if isinstance(aud, list) else {aud, claims.get("client_id")}
    if audience and not auds & set(audience):
        return None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < time.time():
        return None
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in claims.items()}


class _Handler(BaseHTTPRequestHandler):
    server: FrontServer
    protocol_version = "HTTP/1.1"
    server_version = "local-apigateway"
    sys_version = ""

    def do_request(self) -> None:
        front = self.server
        req_id = request_id()
        started = time.monotonic()
        method = self.command.upper()
        split = urlsplit(self.path)
        raw_path, raw_query = split.path or "/", split.query
        response = self._serve(front, req_id, method, raw_path, raw_query)
        response.headers.append(("apigw-requestid", req_id))
        self._cors_headers(front.api, response)
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Date", formatdate(usegmt=True))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)
        log.info(
            "%s %s %s -> %d (%d bytes, %.0f ms, request %s)",
            self.client_address[0],
            method,
            raw_path,
            response.status,
            len(response.body),
            (time.monotonic() - started) * 1000,
            req_id,
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_request

    def _serve(self, front: FrontServer, req_id: str, method: str, raw_path: str, raw_query: str) -> Response:
        body = self._read_body()
        if body is None:
            self.close_connection = True
            return _message(413, "Request Entity Too Large")
        api = front.api
        preflight = self._preflight(api, method)
        if preflight is not None:
            return preflight
        found = api.find(method, raw_path)
        if found is None:
            return _message(404, "Not Found")
        if api.throttle is not None and not api.throttle.allow():
            return _message(429, "Too Many Requests")
        route, params = found
        claims = None
        if route.authorization == "JWT":
            claims = _jwt_claims(self.headers.get("Authorization"), route.audience)
            if claims is None:
                return Response(
                    401,
                    [("Content-Type", "application/json"), ("www-authenticate", "Bearer")],
                    json.dumps({"message": "Unauthorized"}).encode(),
                )
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
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            req_id=req_id,
            claims=claims,
        )
        future = front.executor.submit(front.invoke, route.function, event)
        try:
            result = future.result(timeout=route.timeout_ms / 1000)
        except concurrent.futures.TimeoutError:
            return _message(503, "Service Unavailable")
        return to_response(result)

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds API Gateway's 10 MB."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            # Read and drop what is reasonable, so the client sees the 413 rather
            # than a connection reset from unread data; the connection then closes.
            remaining = length if length <= DRAIN_LIMIT else 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _preflight(self, api: Api, method: str) -> Response | None:
        cors = api.cors
        origin = self.headers.get("Origin")
        wanted = self.headers.get("Access-Control-Request-Method")
        if method != "OPTIONS" or cors is None or not origin or not wanted:
            return None
        response = Response(204)
        if cors.origin_allowed(origin) and (
            "*" in cors.allow_methods or wanted.upper() in cors.allow_methods
        ):
            response.headers += [
                ("Access-Control-Allow-Methods", ",".join(cors.allow_methods)),
                ("Access-Control-Allow-Headers", ",".join(cors.allow_headers)),
            ]
            if cors.max_age is not None:
                response.headers.append(("Access-Control-Max-Age", str(cors.max_age)))
        return response

    def _cors_headers(self, api: Api, response: Response) -> None:
        cors = api.cors
        origin = self.headers.get("Origin")
        if cors is None or not origin or not cors.origin_allowed(origin):
            return
        allow = "*" if "*" in cors.allow_origins and not cors.allow_credentials else origin
        response.headers.append(("Access-Control-Allow-Origin", allow))
        if cors.allow_credentials:
            response.headers.append(("Access-Control-Allow-Credentials", "true"))
        if cors.expose_headers:
            response.headers.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
        response.headers.append(("Vary", "Origin"))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of concurrent uploads
    # (make bench sends 20 at once) would overflow it and see connections reset.
    request_queue_size = 128

    def __init__(self, host: str, port: int, api: Api, invoke: Invoker) -> None:
        self.api = api
        self.invoke = invoke
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="invoke")
        super().__init__((host, port), _Handler)


class Front:
    """The HTTP front on ``host:port`` (port 0 picks a free one), served from a thread."""

    def __init__(self, api: Api, invoke: Invoker, port: int, host: str = "127.0.0.1") -> None:
        self.server = FrontServer(host, port, api, invoke)
        self._thread = threading.Thread(target=self.server.serve_forever, name="front", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}"

    def start(self) -> Front:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.executor.shutdown(wait=False, cancel_futures=True)
        self._thread.join(5)
