"""Settings of the upload API function, read once from the environment.

Every value is validated when the object is built, through the one
environment reader (``imgpipe.settings``); a bad value raises ``ConfigError``
naming the variable and the value, so a misconfigured function fails its first
invocation loudly instead of misbehaving later. Each numeric setting's default
and bounds are declared once, below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe import cdn, settings
from imgpipe.settings import Integer

MIB = 1024 * 1024
# Lambda refuses a synchronous invoke whose request payload (the whole event
# JSON) is not smaller than 6 MiB ("Request must be smaller than 6291456 bytes
# for the InvokeFunction operation"; Lambda quotas: 6 MB per synchronous
# request). API Gateway (payload 2.0) hands a binary body over base64-encoded,
# 4/3 larger, beside the headers and the request context. An HTTP API takes at
# most 10240 bytes of request line and headers, which the event carries in
# more than one copy and JSON-escaped: EVENT_ENVELOPE_BYTES keeps room for that.
LAMBDA_SYNC_REQUEST_BYTES = 6 * MIB
EVENT_ENVELOPE_BYTES = 64 * 1024
# The largest request body that still reaches the function: 4,669,440 bytes.
# Above it API Gateway answers on its own, and the function never runs.
MAX_DIRECT_BODY_BYTES = (LAMBDA_SYNC_REQUEST_BYTES - EVENT_ENVELOPE_BYTES) * 3 // 4
# Room for the multipart envelope (boundaries, part headers, small extra
# fields) on top of the image itself.
MULTIPART_OVERHEAD = 64 * 1024
# MAX_UPLOAD_BYTES may be at most 4,603,904 bytes: an image of that size still
# reaches the function in a multipart body, and a body a little larger reaches
# it too, so the client gets this API's 413 payload_too_large, not API Gateway's.
MAX_DIRECT_BYTES = MAX_DIRECT_BODY_BYTES - MULTIPART_OVERHEAD
# S3 takes at most 5 GiB in one POST.
MAX_POST_OBJECT_BYTES = 5 * 1024 * MIB
# A presigned POST is bounded like every presigned URL (imgpipe.cdn).
MAX_EXPIRY_SECONDS = cdn.MAX_EXPIRY_SECONDS
# What guards the upload routes (Terraform's api_auth); the upload page asks for a token under "jwt".
API_AUTH_MODES = ("jwt", "open")
DEFAULT_API_AUTH = "open"

MAX_UPLOAD_BYTES = Integer("MAX_UPLOAD_BYTES", 4 * MIB, 1, MAX_DIRECT_BYTES)
MAX_PRESIGNED_BYTES = Integer("MAX_PRESIGNED_BYTES", 50 * MIB, 1, MAX_POST_OBJECT_BYTES)
PRESIGN_POST_EXPIRY_SECONDS = Integer("PRESIGN_POST_EXPIRY_SECONDS", 900, 1, MAX_EXPIRY_SECONDS)
RENDITION_URL_EXPIRY_SECONDS = cdn.RENDITION_URL_EXPIRY_SECONDS


@dataclass(frozen=True)
class UploadConfig:
    uploads_bucket: str
    resized_bucket: str
    table_name: str
    max_upload_bytes: int = MAX_UPLOAD_BYTES.default
    max_presigned_bytes: int = MAX_PRESIGNED_BYTES.default
    presign_post_expiry_seconds: int = PRESIGN_POST_EXPIRY_SECONDS.default
    rendition_url_expiry_seconds: int = RENDITION_URL_EXPIRY_SECONDS.default
    cdn_base_url: str = ""
    api_auth: str = DEFAULT_API_AUTH

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UploadConfig:
        env = os.environ if env is None else env
        return cls(
            uploads_bucket=settings.required(env, "UPLOADS_BUCKET"),
            resized_bucket=settings.required(env, "RESIZED_BUCKET"),
            table_name=settings.required(env, "TABLE_NAME"),
            max_upload_bytes=MAX_UPLOAD_BYTES.read(env),
            max_presigned_bytes=MAX_PRESIGNED_BYTES.read(env),
            presign_post_expiry_seconds=PRESIGN_POST_EXPIRY_SECONDS.read(env),
            rendition_url_expiry_seconds=RENDITION_URL_EXPIRY_SECONDS.read(env),
            cdn_base_url=cdn.base_url(env),
            api_auth=settings.choice(env, "API_AUTH", DEFAULT_API_AUTH, API_AUTH_MODES),
        )
