"""Object keys and image ids: one deterministic layout.

Uploads bucket
  ``originals/{id}/{filename}``   written by the upload API (filename sanitised)
  anything else                   direct uploads with any key are processed too

Resized bucket
  ``{id}/{tag}/{rendition}.{ext}``   e.g. ``Xy3..._Q/kP0c2Lr9QdWm/thumb.webp``

``id`` is 22 URL-safe characters. API uploads get a random one
(``secrets.token_urlsafe(16)``); any other key gets one derived from the key
and the deployment's secret (``base64url(HMAC-SHA256(secret, key))[:22]``,
``imgpipe.id_secret``, docs/ids.md), so the same source key always maps to the
same id, and nobody without the secret can compute it. ``tag`` is 12 URL-safe
characters derived from the source version and the rendition-config version
(``base64url(sha256(version + "/" + config_version))[:12]``,
``imgpipe.config_version``): each version of a source, rendered with each
configuration, has its own output keys, so the bytes under a rendition key
never change (a CDN may cache them as immutable, docs/cdn.md), and an older
version's renditions can never replace a newer one's (see docs/ordering.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata

ORIGINALS_PREFIX = "originals/"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_API_KEY_RE = re.compile(r"^originals/([A-Za-z0-9_-]{22})/[^/]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_FILENAME = 128
TAG_LENGTH = 12


def new_id() -> str:
    """A random, URL-safe id (128 bits)."""
    return secrets.token_urlsafe(16)


def is_valid_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def api_id(key: str) -> str | None:
    """The id in an ``originals/{id}/{filename}`` key (the layout the upload API writes), else None."""
    match = _API_KEY_RE.match(key)
    return match.group(1) if match else None


def is_api_key(key: str) -> bool:
    return api_id(key) is not None


def id_for_key(key: str, secret: bytes) -> str:
    """The image id for an uploads-bucket key: the API layout's own id, else keyed by ``secret``."""
    own = api_id(key)
    if own is not None:
        return own
    mac = hmac.new(secret, key.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii")[:22]


def sanitize_filename(name: str | None, default: str = "image") -> str:
    """A safe single path segment: no slashes, no ``..``, no control characters."""
    if not name:
        return default
    name = unicodedata.normalize("NFKC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    while ".." in name:
        name = name.replace("..", ".")
    name = name[-MAX_FILENAME:].lstrip(" .")
    return name or default


def original_key(image_id: str, filename: str) -> str:
    return f"{ORIGINALS_PREFIX}{image_id}/{sanitize_filename(filename)}"


def _digest(text: str, length: int) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:length]


def version_tag(version: str, config_version: str) -> str:
    """The short, URL-safe name of one source version rendered with one configuration.

    Both count: a new source version or a configuration that renders different
    bytes (``config_version.version``) gives new keys, never new bytes under
    an old key. A config version never holds ``/``, so the pair is unambiguous.
    """
    return _digest(f"{version}/{config_version}", TAG_LENGTH)


def rendition_key(image_id: str, name: str, ext: str, tag: str | None = None) -> str:
    """``{id}/{tag}/{name}.{ext}``; without a tag, the layout of records written before tags."""
    return f"{image_id}/{tag}/{name}.{ext}" if tag else f"{image_id}/{name}.{ext}"
