"""Settings of the upload API function, read once from the environment.

Every value is validated when the object is built; a bad value raises
``ConfigError`` naming the variable and the value, so a misconfigured function
fails its first invocation loudly instead of misbehaving later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe.errors import ConfigError

MIB = 1024 * 1024
# The Lambda request payload limit is 6 MB (6291456 bytes) and API Gateway
# hands binary bodies over base64-encoded (4/3 larger), so no direct upload
# above 3/4 of that can ever arrive.
MAX_DIRECT_BYTES = 6291456 * 3 // 4
# S3 takes at most 5 GiB in one POST.
MAX_POST_OBJECT_BYTES = 5 * 1024 * MIB
# SigV4 presigned URLs and POST policies live at most 7 days.
MAX_EXPIRY_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class UploadConfig:
    uploads_bucket: str
    resized_bucket: str
    table_name: str
    max_upload_bytes: int = 4 * MIB
    max_presigned_bytes: int = 50 * MIB
    presign_post_expiry_seconds: int = 900
    rendition_url_expiry_seconds: int = 3600

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
