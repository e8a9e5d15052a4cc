"""Where clients fetch a rendition: the CDN when there is one, else a presigned S3 GET.

With ``CDN_BASE_URL`` set (Terraform sets it from the CloudFront distribution,
docs/cdn.md), a rendition's URL is ``{CDN_BASE_URL}/{key}``: permanent, because
the bytes under a key never change (a new source version or rendition config
gets new keys, docs/ordering.md), so CloudFront and browsers cache it as
immutable. Without it, the URL is a GET presigned with the function's role,
valid for ``RENDITION_URL_EXPIRY_SECONDS``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from imgpipe.upload_config import UploadConfig


def rendition_url(s3: Any, cfg: UploadConfig, key: str) -> str:
    """The URL a client downloads the rendition at ``key`` from."""
    if cfg.cdn_base_url:
        return f"{cfg.cdn_base_url}/{quote(key, safe='/')}"
    return s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": cfg.resized_bucket, "Key": key},
        ExpiresIn=cfg.rendition_url_expiry_seconds,
    )
