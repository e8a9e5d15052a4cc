"""The CDN on loopback: ``/cdn/<key>`` on the HTTP front serves the resized bucket, as CloudFront would.

Terraform puts a CloudFront distribution in front of the resized bucket
(cdn.tf); the emulator stores it but serves nothing. The local stack serves the
renditions itself under ``{api_url}/cdn/<key>`` and gives the upload function
that base URL as ``CDN_BASE_URL``, so ``GET /images/{id}`` returns URLs that
work, in the same ``{base}/{key}`` shape as on AWS. What the distribution does
for a viewer, this does too:

- only ``GET`` and ``HEAD`` (the distribution's allowed methods); any other
  method is ``403``, as CloudFront answers a method a behaviour does not allow;
- the object's ``Content-Type``, ``Cache-Control`` (``immutable``), ``ETag``
  and ``Last-Modified``, and ``304`` for a matching ``If-None-Match``;
- a key that does not exist is ``403``: the bucket policy grants CloudFront
  ``s3:GetObject`` only, and S3 answers ``403 AccessDenied`` for a missing key
  to a caller without ``s3:ListBucket``; CloudFront passes that on.

What it cannot do (docs/cdn.md): no edge cache (every request reads the
bucket), no TLS (plain HTTP on loopback), no origin access control signing (it
reads with the emulator's administrator credentials; the emulator attaches no
bucket policy).
"""

from __future__ import annotations

import logging
from datetime import UTC
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

log = logging.getLogger("local.cdn")

PREFIX = "/cdn/"
ALLOWED_METHODS = ("GET", "HEAD")
_FORWARDED = (("ContentType", "Content-Type"), ("CacheControl", "Cache-Control"), ("ETag", "ETag"))


class Cdn:
    """Answers ``/cdn/<key>`` requests from ``bucket`` with ``s3`` (a boto3 client)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket

    def handles(self, raw_path: str) -> bool:
        return raw_path.startswith(PREFIX)

    def get(self, method: str, raw_path: str, if_none_match: str | None = None) -> tuple[int, list, bytes]:
        """(status, headers, body) for one viewer request."""
        if method not in ALLOWED_METHODS:
            return _error(403, "This distribution is not configured to allow the HTTP request method")
        key = unquote(raw_path.removeprefix(PREFIX))
        params = {"Bucket": self.bucket, "Key": key}
        if if_none_match:
            params["IfNoneMatch"] = if_none_match
        try:
            obj = self.s3.get_object(**params)
        except self.s3.exceptions.ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
            if status == 304:
                return 304, [("ETag", if_none_match or "")], b""
            if status in (403, 404):
                return _error(403, "Access Denied")
            log.warning("CDN origin error for %s: %s", key, exc)
            return _error(502, "Bad Gateway")
        headers = [(name, obj[field]) for field, name in _FORWARDED if obj.get(field)]
        if obj.get("LastModified"):
            modified = obj["LastModified"].astimezone(UTC)  # usegmt needs datetime.UTC, not tzutc()
            headers.append(("Last-Modified", format_datetime(modified, usegmt=True)))
        headers.append(("X-Cache", "Miss from local CDN"))
        return 200, headers, obj["Body"].read()


def _error(status: int, message: str) -> tuple[int, list, bytes]:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Message>{message}</Message></Error>'.encode()
    return status, [("Content-Type", "application/xml")], body
