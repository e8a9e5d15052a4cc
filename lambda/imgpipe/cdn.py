"""Where clients fetch a rendition: the CDN when there is one, else a presigned S3 GET.

With ``CDN_BASE_URL`` set (Terraform sets it from the CloudFront distribution,
docs/cdn.md), a rendition's URL is ``{CDN_BASE_URL}/{key}``: permanent, because
the bytes under a key never change (a new source version or rendition config
gets new keys, docs/ordering.md), so CloudFront and browsers cache it as
immutable. Without it, the URL is a GET presigned with the function's role,
valid for ``RENDITION_URL_EXPIRY_SECONDS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from imgpipe.errors import ConfigError
from imgpipe.settings import Integer

# Presigned URLs and POST forms are signed with the function's role
# credentials, and S3 refuses them once those credentials expire, whatever
# expiry was asked for. Lambda follows neither the role's maximum session
# duration nor any published lifetime for its credentials, and an execution
# environment can be hours old when it signs. One hour (the default IAM role
# session) is the longest lifetime this service promises.
MAX_EXPIRY_SECONDS = 3600
# How long a presigned rendition URL is valid, in both functions (GET /images/{id}, the events).
RENDITION_URL_EXPIRY_SECONDS = Integer("RENDITION_URL_EXPIRY_SECONDS", 3600, 1, MAX_EXPIRY_SECONDS)

# CDN_BASE_URL: https://host (Terraform) or http://127.0.0.1:port/cdn (the local stack).
_BASE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")


def base_url(env: Mapping[str, str], name: str = "CDN_BASE_URL") -> str:
    """Empty, or an http(s) URL with a host and no query or fragment; without its trailing slash."""
    raw = env.get(name, "").strip()
    if raw and not _BASE_URL.match(raw):
        raise ConfigError(f"{name}: {raw!r} is not an http(s):// URL without query or fragment")
    return raw.rstrip("/")


def rendition_urls(s3: Any, bucket: str, cdn_base_url: str, expires_in: int) -> Callable[[str], str]:
    """The URL a client downloads a rendition key from, for both functions (GET /images/{id} and
    the completion events): the CDN's when there is one, else a GET presigned with the function's
    role. S3: a URL signed with temporary credentials stops working when they expire, even before
    ``expires_in`` ("Sharing objects with presigned URLs", Amazon S3 User Guide)."""

    def url(key: str) -> str:
        if cdn_base_url:
            return f"{cdn_base_url}/{quote(key, safe='/')}"
        params = {"Bucket": bucket, "Key": key}
        return s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    return url
