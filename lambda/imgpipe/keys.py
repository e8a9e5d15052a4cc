"""Object keys and image ids: one deterministic layout.

Uploads bucket
  ``originals/{id}/{filename}``   written by the upload API (filename sanitised)
  anything else                   direct uploads with any key are processed too

Resized bucket
  ``{id}/{rendition}.{ext}``      e.g. ``Xy3..._Q/thumb.webp``

``id`` is 22 URL-safe characters. API uploads get a random one
(``secrets.token_urlsafe(16)``); any other key gets one derived from the key
(``base64url(sha256(key))[:22]``), so the same source object always maps to the
same id and the same output keys: a duplicate delivery rewrites them and never
adds objects.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata

ORIGINALS_PREFIX = "originals/"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_API_KEY_RE = re.compile(r"^originals/([A-Za-z0-9_-]{22})/[^/]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_FILENAME = 128


def new_id() -> str:
    """A random, URL-safe id (128 bits)."""
    return secrets.token_urlsafe(16)


def is_valid_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def id_for_key(key: str) -> str:
    """The image id for an uploads-bucket key (API layout or any other key)."""
    match = _API_KEY_RE.match(key)
    if match:
        return match.group(1)
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:22]


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


def rendition_key(image_id: str, name: str, ext: str) -> str:
    return f"{image_id}/{name}.{ext}"
