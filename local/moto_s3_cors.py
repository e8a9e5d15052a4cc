"""S3's answer to a browser's CORS preflight, in the emulator.

``local.moto_server`` calls ``patch()`` once (through ``local.moto_s3.patch``).
A page that listens to an upload's progress makes the browser send a
preflight before its POST, and the upload page's presigned POST goes straight
to the uploads bucket (docs/browser.md). What S3 does with it:

- "A browser can send this preflight request to Amazon S3 to determine if it
  can send an actual request with the specific origin, HTTP method, and
  headers. [...] When a browser sends this preflight request, Amazon S3
  responds by evaluating the rules that are defined in the cors
  configuration. If cors is not enabled on the bucket, then Amazon S3 returns
  a 403 Forbidden response." (Amazon S3 API Reference, "Appendix: OPTIONS
  object"). A preflight carries no credentials: it is never authenticated.
- "Amazon S3 [...] uses the first CORSRule rule that matches the incoming
  browser request": the ``Origin`` must match one ``AllowedOrigin`` (which may
  hold one ``*`` wildcard), ``Access-Control-Request-Method`` one
  ``AllowedMethod``, and every header in ``Access-Control-Request-Headers`` an
  ``AllowedHeader`` (User Guide, "How does Amazon S3 evaluate the CORS
  configuration on a bucket?"). The answer then names the origin, the
  rule's methods, the requested headers, its exposed headers and max age;
  a request no rule matches is 403 ``AccessForbidden``.

moto 5.2.5 authenticates the preflight like any request (the emulator
enforces IAM, so every preflight is ``403 AccessDenied``) and, once past that,
applies every rule in turn and ignores the method and headers asked for.
The actual POST's answer still carries moto's server-wide permissive CORS
headers (flask-cors): kinder than S3, which adds them only when a rule
matches; a browser sends the preflight first, and that is what decides here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

FORBIDDEN_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessForbidden</Code>'
    "<Message>CORSResponse: This CORS request is not allowed. This is usually because the evalution "
    "of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are "
    "not whitelisted by the resource's CORS spec.</Message></Error>"
)


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _matches(value: str, patterns: Iterable[str], case: bool = True) -> bool:
    flags = 0 if case else re.IGNORECASE
    return any(re.fullmatch(".*".join(map(re.escape, p.split("*"))), value, flags) for p in patterns)


def preflight(rules: Iterable[Any], headers: Mapping[str, str]) -> dict[str, str] | None:
    """The CORS headers of S3's 200 answer, or None when no rule allows the preflight (403)."""
    origin = headers.get("Origin") or ""
    method = (headers.get("Access-Control-Request-Method") or "").upper()
    asked = [h.strip() for h in (headers.get("Access-Control-Request-Headers") or "").split(",") if h.strip()]
    if not origin or not method:
        return None
    for rule in rules:
        allowed_headers = _listed(rule.allowed_headers)
        if (
            _matches(origin, _listed(rule.allowed_origins))
            and method in {m.upper() for m in _listed(rule.allowed_methods)}
            and all(_matches(h, allowed_headers, case=False) for h in asked)
        ):
            answer = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ", ".join(_listed(rule.allowed_methods)),
                "Vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
            }
            if asked:
                answer["Access-Control-Allow-Headers"] = ", ".join(asked)
            if _listed(rule.exposed_headers):
                answer["Access-Control-Expose-Headers"] = ", ".join(_listed(rule.exposed_headers))
            if rule.max_age_seconds is not None:
                answer["Access-Control-Max-Age"] = str(rule.max_age_seconds)
            return answer
    return None


def patch() -> None:
    from moto.s3.exceptions import MissingBucket
    from moto.s3.responses import S3Response

    def faithful_options(self: Any, headers: Mapping[str, str], bucket_name: str) -> Any:
        try:
            bucket = self.backend.head_bucket(bucket_name)
        except MissingBucket:
            return 403, {}, ""
        answer = preflight(bucket.cors or (), headers)
        if answer is None:
            return 403, {"Content-Type": "application/xml"}, FORBIDDEN_BODY
        return 200, answer, ""

    S3Response._response_options = faithful_options
