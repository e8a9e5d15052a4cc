"""Settings of the upload API function, read once from the environment.

Every value is validated when the object is built; a bad value raises
``ConfigError`` naming the variable and the value, so a misconfigured function
fails its first invocation loudly instead of misbehaving later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe import cdn
from imgpipe.errors import ConfigError

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
# Presigned URLs and POST forms are signed with the function's role
# credentials, and S3 refuses them once those credentials expire, whatever
# expiry was asked for. Lambda follows neither the role's maximum session
# duration nor any published lifetime for its credentials, and an execution
# environment can be hours old when it signs. One hour (the default IAM role
# session) is the longest lifetime this service promises.
MAX_EXPIRY_SECONDS = 3600
# What guards the upload routes (Terraform's api_auth); the upload page asks for a token under "jwt".
API_AUTH_MODES = ("jwt", "open")


@dataclass(frozen=True)
class UploadConfig:
    uploads_bucket: str
    resized_bucket: str
    table_name: str
    max_upload_bytes: int = 4 * MIB
    max_presigned_bytes: int = 50 * MIB
    presign_post_expiry_seconds: int = 900
    rendition_url_expiry_seconds: int = 3600
    cdn_base_url: str = ""
    api_auth: str = "open"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UploadConfig:
        env = os.environ if env is None else env
        return cls(
            uploads_bucket=_required(env, "UPLOADS_BUCKET"),
            resized_bucket=_required(env, "RESIZED_BUCKET"),
            table_name=_required(env, "TABLE_NAME"),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", cls.max_upload_bytes, 1, MAX_DIRECT_BYTES),
            max_presigned_bytes=_int(
                env, "MAX_PRESIGNED_BYTES", cls.max_presigned_bytes, 1, MAX_POST_OBJECT_BYTES
            ),
            presign_post_expiry_seconds=_int(
                env, "PRESIGN_POST_EXPIRY_SECONDS", cls.presign_post_expiry_seconds, 1, MAX_EXPIRY_SECONDS
            ),
            rendition_url_expiry_seconds=_int(
                env, "RENDITION_URL_EXPIRY_SECONDS", cls.rendition_url_expiry_seconds, 1, MAX_EXPIRY_SECONDS
            ),
            cdn_base_url=cdn.base_url(env),
            api_auth=_choice(env, "API_AUTH", cls.api_auth, API_AUTH_MODES),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name}: required, got {env.get(name)!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: {value} is not in {lo}..{hi}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value
