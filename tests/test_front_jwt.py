"""JWT authorizers in the local front, checked as API Gateway checks them.

AWS, "Control access to HTTP APIs with JWT authorizers", Authorizing API
requests with a JWT authorizer: (1) the token from the identity source, alone or
prefixed with ``Bearer``; (2) decode it; (3) algorithm and signature against the
public key from the issuer's ``jwks_uri`` (RSA only; the key may be cached two
hours); (4) claims: ``kid`` names the signing key in the ``jwks_uri``, ``iss``
matches the issuer, ``aud`` (or ``client_id`` when there is no ``aud``) matches
one audience entry, ``exp`` after now, ``nbf`` and ``iat`` before now,
``scope``/``scp`` holds one of the route's scopes. Any failure denies the
request: ``401 {"message":"Unauthorized"}`` with a ``www-authenticate`` header
(AWS, "Troubleshooting issues with HTTP API JWT authorizers").

A tiny issuer runs on 127.0.0.1: its ``/.well-known/openid-configuration``
names its ``jwks_uri``, which serves the public half of an RSA key made here.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from local.front import Api, Front, Route
from local.functions import InvokeResult
from local.jwt_authorizer import JwtAuthorizer

pytestmark = pytest.mark.slow

AUDIENCE = "imgpipe-client"


class Issuer:
    """An OpenID provider on loopback: discovery document and JWKS, requests counted."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "key-1"
        self.hits: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/keys"}
                elif self.path == "/keys":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer.key.public_key()))
                    body = {"keys": [{**jwk, "kid": issuer.kid, "use": "sig", "alg": "RS256"}]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # an https:// issuer, as Terraform's api_jwt_issuer requires
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, key=None, headers: dict | None = None, **overrides) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or self.key, "RS256", headers={"kid": self.kid, **(headers or {})})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def issuer():
    running = Issuer()
    yield running
    running.stop()


def echo_claims(name: str, event: dict) -> InvokeResult:
    jwt_context = event["requestContext"]["authorizer"]["jwt"]
    return InvokeResult("r", payload={"statusCode": 200, "body": json.dumps(jwt_context)})


def front_for(issuer: Issuer, audience: tuple[str, ...] = (AUDIENCE,), scopes: tuple[str, ...] = ()) -> Front:
    authorizer = JwtAuthorizer(issuer=issuer.url, audience=audience)
    routes = (Route("GET /images/{id}", "fake", authorization="JWT", authorizer=authorizer, scopes=scopes),)
    return Front(Api("abc123", "fake", "123456789012", routes), echo_claims, port=0).start()


@pytest.fixture(scope="module")
def front(issuer):
    server = front_for(issuer)
    yield server
    server.stop()


def call(front: Front, token: str | None, prefix: str = "Bearer ") -> requests.Response:
    headers = {} if token is None else {"Authorization": prefix + token}
    return requests.get(f"{front.url}/images/abc", headers=headers, timeout=10)


def assert_unauthorized(response: requests.Response, why: str) -> None:
    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}
    assert why in response.headers["www-authenticate"]


def test_a_valid_token_passes_with_its_claims_in_the_event(front, issuer):
    response = call(front, issuer.token())
    assert response.status_code == 200, response.text
    claims = response.json()["claims"]
    assert claims["sub"] == "user-1" and claims["iss"] == issuer.url and claims["aud"] == AUDIENCE
    # Step 1: the identity source may hold the token alone, without "Bearer ".
    assert call(front, issuer.token(), prefix="").status_code == 200


def test_a_token_signed_by_another_key_is_refused(front, issuer):
    forged = issuer.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert_unauthorized(call(front, forged), 'error="invalid_token"')


def test_a_token_from_another_issuer_is_refused(front, issuer):
    assert_unauthorized(call(front, issuer.token(iss="https://elsewhere.example")), "valid issuer")


def test_a_token_for_another_audience_is_refused(front, issuer):
    # The troubleshooting page's own example of the header.
    response = call(front, issuer.token(aud="someone-else"))
    assert_unauthorized(response, 'error_description="the token does not have a valid audience"')


def test_client_id_stands_for_aud_only_when_there_is_no_aud(front, issuer):
    assert call(front, issuer.token(aud=None, client_id=AUDIENCE)).status_code == 200
    # Both present: API Gateway evaluates aud.
    assert_unauthorized(call(front, issuer.token(aud="someone-else", client_id=AUDIENCE)), "valid audience")


def test_expired_and_not_yet_valid_tokens_are_refused(front, issuer):
    now = int(time.time())
    assert_unauthorized(call(front, issuer.token(exp=now - 5)), "expired")
    assert_unauthorized(call(front, issuer.token(nbf=now + 120)), "not valid yet")
    assert_unauthorized(call(front, issuer.token(iat=now + 120)), "not valid yet")


def test_a_missing_or_malformed_token_or_unknown_kid_is_refused(front, issuer):
    missing = call(front, None)
    assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
    assert_unauthorized(call(front, "not-a-jwt"), "malformed")
    assert_unauthorized(call(front, issuer.token(headers={"kid": "key-9"})), "kid")


def test_an_empty_audience_list_lets_no_token_through(issuer):
    """11.4: with an issuer and no audience, no token can pass on AWS; the check is not skipped."""
    server = front_for(issuer, audience=())
    try:
        assert_unauthorized(call(server, issuer.token()), "valid audience")
    finally:
        server.stop()


def test_route_scopes_need_one_of_them_in_scope_or_scp(issuer):
    server = front_for(issuer, scopes=("images/read", "images/admin"))
    try:
        granted = call(server, issuer.token(scope="openid images/read"))
        assert granted.status_code == 200 and granted.json()["scopes"] == ["openid", "images/read"]
        assert call(server, issuer.token(scp=["images/admin"])).status_code == 200
        refused = call(server, issuer.token(scope="openid"))
        assert refused.status_code == 403 and refused.json() == {"message": "Forbidden"}
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    finally:
        server.stop()


def test_the_issuers_keys_are_fetched_once_and_cached(issuer):
    issuer.hits.clear()
    server = front_for(issuer)
    try:
        for _ in range(5):
            assert call(server, issuer.token()).status_code == 200
    finally:
        server.stop()
    assert issuer.hits == ["/.well-known/openid-configuration", "/keys"]


def test_load_api_reads_the_authorizer_and_route_scopes_terraform_created(aws):
    import boto3

    from local.front import load_api

    apigw = boto3.client("apigatewayv2")
    api_id = apigw.create_api(Name="imgpipe", ProtocolType="HTTP")["ApiId"]
    integration = apigw.create_integration(
        ApiId=api_id,
        IntegrationType="AWS_PROXY",
        IntegrationUri="arn:aws:lambda:us-east-1:123456789012:function:imgpipe-upload",
        PayloadFormatVersion="2.0",
    )
    authorizer = apigw.create_authorizer(
        ApiId=api_id,
        Name="jwt",
        AuthorizerType="JWT",
        IdentitySource=["$request.header.Authorization"],
        JwtConfiguration={"Issuer": "https://issuer.example", "Audience": ["a1", "a2"]},
    )
    apigw.create_route(
        ApiId=api_id,
        RouteKey="GET /images/{id}",
        Target=f"integrations/{integration['IntegrationId']}",
        AuthorizationType="JWT",
        AuthorizerId=authorizer["AuthorizerId"],
        AuthorizationScopes=["images/read"],
    )
    (route,) = load_api(apigw, "123456789012").routes
    assert route.authorization == "JWT" and route.scopes == ("images/read",)
    assert route.authorizer == JwtAuthorizer(
        "https://issuer.example", ("a1", "a2"), "$request.header.Authorization"
    )
