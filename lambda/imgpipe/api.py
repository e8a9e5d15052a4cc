"""The upload API's HTTP contract: request parsing, errors and response shapes.

Pure: no AWS and no web framework. The handler passes in what the event holds
(body, headers, query) and gets back plain values or an ``ApiError`` that maps
to ``{"error": {"code", "message"}}`` with its status code.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from imgpipe import keys
from imgpipe.detect import MIME_TYPES, sniff
from imgpipe.renditions import EXTENSIONS
from imgpipe.upload_config import MULTIPART_OVERHEAD

ALLOWED_TYPES = tuple(sorted(set(MIME_TYPES.values())))
MAX_PARTS = 32
ORIGINAL_FIELDS = ("key", "size", "content_type", "filename", "width", "height", "format")
RENDITION_FIELDS = ("name", "format", "width", "height", "bytes", "frames")
# What a failed image says when its recorded message cannot be shown as is.
PUBLIC_MESSAGES = {
    "not_an_image": "the file is not an image",
    "unsupported_format": "the image format is not supported",
    "too_many_pixels": "the image has more pixels than this service decodes",
    "source_too_large": "the file is larger than this service processes",
    "corrupt_image": "the image data is corrupt or truncated",
    "source_not_found": "the uploaded file no longer exists",
    "stuck_processing": "processing the image never finished, even when retried",
    "upload_expired": "the upload form expired before a file arrived",
}
GENERIC_FAILURE = "the image could not be processed"
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MEDIA_TYPE = re.compile(r"\b(?:image|application|text|audio|video|multipart)/[a-z0-9.+*-]+", re.IGNORECASE)
# What a public message must never carry: URIs (s3://bucket/key), ARNs,
# account ids, AWS endpoints, SDK and Python error text, paths and object keys.
_INTERNALS = re.compile(
    r"[a-z][a-z0-9+.-]*://"
    r"|\barn:"
    r"|(?<!\d)\d{12}(?!\d)"
    r"|amazonaws\.com"
    r"|when calling the \w+ operation"
    r"|traceback|\bfile \""
    r"|[/\\]",
    re.IGNORECASE,
)


class ApiError(Exception):
    """An error the client sees: status code, stable code, safe message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def payload_too_large(message: str) -> ApiError:
    return ApiError(413, "payload_too_large", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "unsupported_media_type", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def self_link(image_id: str) -> str:
    return f"/images/{image_id}"


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, whatever the case of its name (HTTP API lowercases them)."""
    if not headers:
        return None
    name = name.lower()
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def decode_body(body: str | None, is_base64: bool) -> bytes:
    """The request body as bytes; 400 when empty or not valid base64."""
    if not body:
        raise bad_request("the request body is empty")
    if is_base64:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("the request body is not valid base64") from None
    else:
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request(
                "the request body is not valid text; send binary bodies base64-encoded"
            ) from None
    if not data:
        raise bad_request("the request body is empty")
    return data


def media_type(content_type: str | None) -> tuple[str, dict[bytes, bytes]]:
    """Lowercased media type without parameters, and the parameters."""
    if not content_type:
        return "", {}
    mtype, params = parse_options_header(content_type.encode("utf-8"))
    return mtype.decode("latin-1").strip(), params


@dataclass(frozen=True)
class ImageUpload:
    """A direct upload, checked: allowed image bytes, their sniffed type, a safe name."""

    data: bytes
    format: str
    content_type: str
    filename: str
    declared_type: str | None

    @property
    def corrected(self) -> bool:
        return self.declared_type is not None and self.declared_type != self.content_type


def too_large_for_direct(max_bytes: int) -> ApiError:
    return payload_too_large(
        f"a direct upload takes at most {max_bytes} bytes; "
        "for larger files request a presigned upload with POST /uploads"
    )


def parse_image_upload(
    data: bytes, content_type: str | None, filename: str | None, max_bytes: int
) -> ImageUpload:
    """Check a ``POST /images`` body: raw ``image/*`` or multipart field ``file``.

    The limit applies to the image itself: the raw body, or the ``file`` part.
    """
    mtype, params = media_type(content_type)
    if mtype.startswith("image/"):
        if len(data) > max_bytes:
            raise too_large_for_direct(max_bytes)
        declared: str | None = mtype
    elif mtype == "multipart/form-data":
        if len(data) > max_bytes + MULTIPART_OVERHEAD:
            raise too_large_for_direct(max_bytes)
        boundary = params.get(b"boundary")
        if not boundary:
            raise bad_request("multipart/form-data without a boundary parameter")
        part = _file_part(data, boundary)
        data = part.data
        if len(data) > max_bytes:
            raise too_large_for_direct(max_bytes)
        if not data:
            raise bad_request("the field 'file' is empty")
        declared = part.content_type if part.content_type.startswith("image/") else None
        filename = part.filename or filename
    else:
        raise unsupported_media_type(
            "send the image with an image/* Content-Type, or as the field 'file' of multipart/form-data"
        )
    fmt = sniff(data)
    if fmt is None:
        raise unsupported_media_type(f"the data is not a supported image ({', '.join(ALLOWED_TYPES)})")
    name = keys.sanitize_filename(filename, default=f"image.{EXTENSIONS.get(fmt, fmt)}")
    return ImageUpload(data, fmt, MIME_TYPES[fmt], name, declared)


@dataclass
class _Part:
    headers: dict[str, str]
    chunks: list[bytes]

    @property
    def disposition(self) -> tuple[str, dict[bytes, bytes]]:
        return media_type(self.headers.get("content-disposition"))

    @property
    def name(self) -> str | None:
        raw = self.disposition[1].get(b"name")
        return raw.decode("utf-8", "replace") if raw is not None else None

    @property
    def filename(self) -> str | None:
        raw = self.disposition[1].get(b"filename")
        return raw.decode("utf-8", "replace") if raw else None

    @property
    def content_type(self) -> str:
        return media_type(self.headers.get("content-type"))[0]

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def _parse_multipart(data: bytes, boundary: bytes) -> list[_Part]:
    parts: list[_Part] = []
    field: list[bytes] = []
    value: list[bytes] = []

    def on_part_begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise bad_request(f"multipart body with more than {MAX_PARTS} parts")
        parts.append(_Part({}, []))

    def on_part_data(buf: bytes, start: int, end: int) -> None:
        parts[-1].chunks.append(buf[start:end])

    def on_header_field(buf: bytes, start: int, end: int) -> None:
        field.append(buf[start:end])

    def on_header_value(buf: bytes, start: int, end: int) -> None:
        value.append(buf[start:end])

    def on_header_end() -> None:
        name = b"".join(field).decode("latin-1").strip().lower()
        parts[-1].headers[name] = b"".join(value).decode("latin-1").strip()
        field.clear()
        value.clear()

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_part_data": on_part_data,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(data)
        parser.finalize()
    except FormParserError:
        raise bad_request("malformed multipart/form-data body") from None
    if parser.state != MultipartState.END:
        raise bad_request("malformed multipart/form-data body: it ends before its closing boundary")
    return parts


def _file_part(data: bytes, boundary: bytes) -> _Part:
    files = [part for part in _parse_multipart(data, boundary) if part.name == "file"]
    if not files:
        raise bad_request("multipart/form-data without the field 'file'")
    if len(files) > 1:
        raise bad_request("multipart/form-data with more than one field 'file'")
    return files[0]


@dataclass(frozen=True)
class PresignRequest:
    filename: str
    content_type: str
    size: int


def parse_presign_request(data: bytes, max_bytes: int) -> PresignRequest:
    """Check a ``POST /uploads`` body: ``{"filename", "content_type", "size"}``."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("the body is not valid JSON") from None
    except RecursionError:
        # The decoder recurses per nesting level: a deep enough body exhausts
        # Python's stack. Nothing this route takes nests at all.
        raise bad_request("the body is not valid JSON: it nests too deeply") from None
    if not isinstance(doc, dict):
        raise bad_request('expected a JSON object {"filename", "content_type", "size"}')
    missing = [name for name in ("filename", "content_type", "size") if name not in doc]
    if missing:
        raise bad_request(f"missing field(s): {', '.join(missing)}")
    filename, content_type, size = doc["filename"], doc["content_type"], doc["size"]
    if not isinstance(filename, str) or not filename.strip():
        raise bad_request("filename must be a non-empty string")
    if not isinstance(content_type, str):
        raise bad_request("content_type must be a string")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise bad_request("size must be a positive integer (bytes)")
    if size > max_bytes:
        raise payload_too_large(f"a presigned upload takes at most {max_bytes} bytes")
    mtype = media_type(content_type)[0]
    if mtype not in ALLOWED_TYPES:
        raise unsupported_media_type(f"content_type must be one of {', '.join(ALLOWED_TYPES)}")
    return PresignRequest(keys.sanitize_filename(filename), mtype, size)


def caller_subject(request_context: Mapping[str, Any] | None) -> str | None:
    """The JWT subject of an authorized request (payload 2.0); None on an open API.

    With a JWT authorizer on the route API Gateway always passes the token's
    claims; a token without ``sub`` is refused, since images belong to it.
    """
    authorizer = (request_context or {}).get("authorizer") or {}
    jwt = authorizer.get("jwt") if isinstance(authorizer, Mapping) else None
    if not jwt:
        return None
    subject = (jwt.get("claims") or {}).get("sub")
    if not isinstance(subject, str) or not subject:
        raise forbidden("the token has no subject (sub claim); images belong to the token's subject")
    return subject


def visible_to(record: Mapping[str, Any], subject: str | None) -> bool:
    """An image is seen only by its owner: the JWT subject that uploaded it, or
    nobody's (``None``) for images without one, which only an open API shows."""
    return record.get("owner") == subject


def reveals_internals(message: str, hidden: Iterable[str] = ()) -> bool:
    """Whether ``message`` names a bucket, account, ARN, path or other internals."""
    lowered = message.lower()
    if any(name and name.lower() in lowered for name in hidden):
        return True
    return bool(_INTERNALS.search(_MEDIA_TYPE.sub("", message)))


def public_error(error: Mapping[str, Any], hidden: Iterable[str] = ()) -> dict[str, str]:
    """A recorded ``{code, message}`` as clients may see it.

    The message is shown only when it reveals nothing internal (see
    ``reveals_internals``); otherwise the code's own fixed message replaces it.
    """
    code = error.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        code = "internal"
    message = error.get("message")
    if not isinstance(message, str) or not message.strip() or reveals_internals(message, hidden):
        message = PUBLIC_MESSAGES.get(code, GENERIC_FAILURE)
    return {"code": code, "message": message}


def check_deletable(record: Mapping[str, Any]) -> None:
    """Only an API upload's original (``originals/{id}/{name}``) is deleted through the API.

    An image put straight into the bucket has its key chosen by whoever put
    it; the API's role may delete only under ``originals/``.
    """
    key = str((record.get("original") or {}).get("key") or "")
    if keys.api_id(key) != record.get("id"):
        raise ApiError(
            409,
            "not_deletable",
            "this image was not uploaded through the API; delete its original where it was put",
        )


def parse_image_id(value: str) -> str:
    if not keys.is_valid_id(value):
        raise bad_request("malformed image id: expected 22 URL-safe characters")
    return value


def original_view(original: Mapping[str, Any]) -> dict[str, Any]:
    view = {name: original[name] for name in ORIGINAL_FIELDS if name in original}
    if "filename" in view:
        # One rule for every route: records written before it get it here too.
        view["filename"] = keys.sanitize_filename(str(view["filename"]))
    return view


def image_view(
    record: Mapping[str, Any], rendition_url: Callable[[str], str], hidden: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``GET /images/{id}`` body for a record; ``rendition_url(key)`` gives each URL (``imgpipe.cdn``).

    ``hidden`` are names (buckets, table) that an error message must not show.
    """
    image_id = record["id"]
    view: dict[str, Any] = {
        "id": image_id,
        "status": record["status"],
        "original": original_view(record.get("original", {})),
        "renditions": [],
    }
    for rendition in record.get("renditions") or []:
        item = {name: rendition[name] for name in RENDITION_FIELDS if name in rendition}
        key = rendition.get("key") or keys.rendition_key(
            image_id, rendition["name"], EXTENSIONS.get(rendition["format"], rendition["format"])
        )
        item["url"] = rendition_url(key)
        view["renditions"].append(item)
    if record["status"] in ("failed", "expired") and record.get("error"):
        view["error"] = public_error(record["error"], hidden)
    if record.get("config_version"):  # the rendition config that made the renditions (docs/config-version.md)
        view["config_version"] = record["config_version"]
    view["created_at"] = record.get("created_at")
    view["updated_at"] = record.get("updated_at")
    return view
