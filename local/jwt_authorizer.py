"""API Gateway's JWT authorizer for HTTP APIs, as the local front runs it.

AWS, "Control access to HTTP APIs with JWT authorizers" (Authorizing API
requests with a JWT authorizer), step by step:

1. Check the identity source for a token; it may be the token alone or the
   token prefixed with ``Bearer``.
2. Decode the token.
3. Check the token's algorithm and signature with the public key fetched from
   the issuer's ``jwks_uri`` (only RSA-based algorithms); API Gateway can cache
   the public key for two hours.
4. Validate the claims: ``kid`` (a header claim naming the key in the
   ``jwks_uri`` that signed the token), ``iss`` (the authorizer's issuer),
   ``aud`` or ``client_id`` (one of the authorizer's audience entries;
   ``client_id`` only when there is no ``aud``), ``exp`` (after now), ``nbf``
   and ``iat`` (before now), ``scope`` or ``scp`` (at least one of the route's
   authorization scopes, when the route has any).

If any step fails, the request is denied: ``401 {"message":"Unauthorized"}``
with a ``www-authenticate`` header that says why (AWS, "Troubleshooting issues
with HTTP API JWT authorizers"), or ``403 {"message":"Forbidden"}`` when only
the scopes are missing. An empty audience list matches no token. The ``jwks_uri``
comes from the issuer's ``/.well-known/openid-configuration``.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt

log = logging.getLogger(__name__)

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
KEY_CACHE_SECONDS = 2 * 3600  # "API Gateway can cache the public key for two hours"
FETCH_TIMEOUT = 5.0


@dataclass(frozen=True)
class JwtAuthorizer:
    """A JWT authorizer as Terraform declared it (``JwtConfiguration``, ``IdentitySource``)."""

    issuer: str
    audience: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"

    def token(self, headers: dict[str, str], query: dict[str, str]) -> str | None:
        """The identity source's value, without a ``Bearer`` prefix; None when absent."""
        kind, _, name = self.identity_source.removeprefix("$request.").partition(".")
        raw = (
            headers.get(name.lower())
            if kind == "header"
            else query.get(name)
            if kind == "querystring"
            else None
        )
        if not raw or not raw.strip():
            return None
        raw = raw.strip()
        return raw[7:].strip() if raw[:7].lower() == "bearer " else raw


@dataclass(frozen=True)
class Granted:
    claims: dict[str, str]
    scopes: list[str] | None


@dataclass(frozen=True)
class Denied:
    status: int
    error: str = ""
    description: str = ""
    scope: str = ""

    @property
    def message(self) -> str:
        return "Forbidden" if self.status == 403 else "Unauthorized"

    @property
    def www_authenticate(self) -> str:
        if not self.error:
            return "Bearer"
        return f'Bearer scope="{self.scope}" error="{self.error}" error_description="{self.description}"'


def _invalid(description: str) -> Denied:
    return Denied(401, "invalid_token", description)


class JwtVerifier:
    """Verifies tokens against each issuer's keys, fetched once and cached as API Gateway does."""

    def __init__(self, cache_seconds: int = KEY_CACHE_SECONDS) -> None:
        self.cache_seconds = cache_seconds
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    def keys(self, issuer: str) -> jwt.PyJWKClient:
        """The issuer's key set client; its ``jwks_uri`` read from the OpenID configuration once."""
        with self._lock:
            client = self._clients.get(issuer)
            if client is None:
                url = issuer.rstrip("/") + "/.well-known/openid-configuration"
                with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as resp:  # noqa: S310
                    jwks_uri = json.loads(resp.read())["jwks_uri"]
                client = jwt.PyJWKClient(
                    jwks_uri, cache_keys=True, lifespan=self.cache_seconds, timeout=int(FETCH_TIMEOUT)
                )
                self._clients[issuer] = client
            return client

    def authorize(
        self, authorizer: JwtAuthorizer, route_scopes: tuple[str, ...], token: str | None
    ) -> Granted | Denied:
        if token is None:
            return Denied(401)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            return _invalid("the token is malformed")
        if header.get("alg") not in RSA_ALGORITHMS:
            return _invalid("the token's signing algorithm is not supported")
        if not header.get("kid"):
            return _invalid("the token has no kid")
        try:
            key = self.keys(authorizer.issuer).get_signing_key(header["kid"])
        except jwt.PyJWKClientError:
            return _invalid("the token's kid matches no key of the issuer")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("JWT authorizer: the keys of %s could not be fetched: %s", authorizer.issuer, exc)
            return _invalid("the issuer's keys could not be fetched")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[header["alg"]],
                issuer=authorizer.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            return _invalid("the token has expired")
        except jwt.ImmatureSignatureError:
            return _invalid("the token is not valid yet")
        except (jwt.InvalidIssuerError, jwt.MissingRequiredClaimError):
            return _invalid("the token does not have a valid issuer")
        except jwt.InvalidTokenError:
            return _invalid("the token's signature is invalid")
        if not _audience_matches(claims, authorizer.audience):
            return _invalid("the token does not have a valid audience")
        scopes = _scopes(claims)
        if route_scopes and not set(scopes) & set(route_scopes):
            return Denied(
                403,
                "insufficient_scope",
                "the token does not have the required scopes",
                " ".join(route_scopes),
            )
        return Granted(_claims_for_event(claims), scopes if route_scopes else None)


def _audience_matches(claims: dict[str, Any], audience: tuple[str, ...]) -> bool:
    """``aud`` when present, else ``client_id``, must match one configured entry (none: no match)."""
    if "aud" in claims:
        aud = claims["aud"]
        offered = set(aud) if isinstance(aud, list) else {aud}
    else:
        offered = {claims.get("client_id")}
    return bool(offered & set(audience))


def _scopes(claims: dict[str, Any]) -> list[str]:
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [str(s) for s in raw]
    return []


def _claims_for_event(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as the payload 2.0 event carries them: strings (others in JSON)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in claims.items()}
