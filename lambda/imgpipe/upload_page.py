"""The browser upload page: its files, their headers, and what the page reads from the API.

The page is static (``lambda/static``: HTML, CSS, JS, no build step, no
third-party code) and served by the upload function on open routes (``GET /``,
``GET /assets/{name}``, ``GET /limits``), so it needs no bucket, CDN or
toolchain of its own. Everything it checks in the browser (sizes, accepted
types, whether a token is needed) comes from ``GET /limits``, built here from
the function's own settings, so the page never disagrees with the API.

Its Content-Security-Policy allows the page's own scripts and styles only
(no inline code), images from the renditions' origin (the CDN, or presigned URLs on the resized bucket),
and connections to the API and the uploads bucket (the presigned POST).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from imgpipe import cdn
from imgpipe.api import ALLOWED_TYPES
from imgpipe.detect import MIME_TYPES
from imgpipe.upload_config import UploadConfig

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE = "index.html"
HTML = "text/html; charset=utf-8"
# The only files /assets/{name} serves: a name is looked up here, never joined to a path.
ASSETS = {
    "icon.svg": "image/svg+xml",
    "upload.css": "text/css; charset=utf-8",
    "upload.js": "text/javascript; charset=utf-8",
}


@functools.cache
def read_static(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def asset(name: str) -> tuple[str, str] | None:
    """``(body, content type)`` of a page asset, or None for any other name."""
    content_type = ASSETS.get(name)
    return None if content_type is None else (read_static(name), content_type)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as a CSP source."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def bucket_origins(s3: Any, cfg: UploadConfig) -> tuple[str, str]:
    """Where the browser fetches renditions and posts uploads: ``(renditions, uploads)`` origins.

    Read from URLs the client presigns (locally, no request is made), so they
    follow the client's endpoint and addressing style wherever it runs.
    """
    resized = cdn.rendition_urls(s3, cfg.resized_bucket, cfg.cdn_base_url, 60)("x")  # the CDN's, if on
    uploads = s3.generate_presigned_post(Bucket=cfg.uploads_bucket, Key="x", ExpiresIn=60)["url"]
    return origin(resized), origin(uploads)


def content_security_policy(image_origins: Iterable[str], connect_origins: Iterable[str]) -> str:
    """No inline code, nothing from elsewhere but the buckets' images and upload form."""
    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "blob:", *sorted(set(image_origins))],
        "connect-src": ["'self'", *sorted(set(connect_origins))],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def security_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",  # rendition links carry presigned queries
        "Cache-Control": "no-cache",
    }


def limits_view(cfg: UploadConfig) -> dict[str, Any]:
    """The ``GET /limits`` body: what an upload may be, and how to send it."""
    # For files whose type the browser leaves blank (HEIC on most desktops): their name's extension.
    extensions = sorted({f".{fmt}" for fmt in MIME_TYPES} | {".jpg", ".heic", ".tif"})
    return {
        "accepted_types": list(ALLOWED_TYPES),
        "accepted_extensions": extensions,
        "max_upload_bytes": cfg.max_upload_bytes,
        "max_presigned_bytes": cfg.max_presigned_bytes,
        "auth": cfg.api_auth,
    }
