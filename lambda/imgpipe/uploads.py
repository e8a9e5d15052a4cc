"""What the upload API does in AWS: store an original, presign an upload, delete an original.

Rendition URLs (CDN or presigned) come from ``imgpipe.cdn``.

Clients are passed in (the handler takes them from ``imgpipe.aws``), so tests
drive these functions against moto. Records are written before objects: the
S3 notification may reach the resize Lambda at once, and it must find the
API's record (``put_new`` never overwrites one the resize Lambda created).
Behind a JWT authorizer a record carries ``owner``, the token's subject; the
resize Lambda's updates leave that attribute alone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from typing import Any
from urllib.parse import quote

from imgpipe import keys, records
from imgpipe.api import ImageUpload, PresignRequest
from imgpipe.upload_config import UploadConfig


def object_metadata(image_id: str, filename: str) -> dict[str, str]:
    """User metadata of an original. S3 metadata must be ASCII: the filename is percent-encoded."""
    return {"image-id": image_id, "filename": quote(filename, safe="")}


def owned(record: dict[str, Any], owner: str | None) -> dict[str, Any]:
    """The record with its owner (the JWT subject), or unowned on an open API."""
    return {**record, "owner": owner} if owner else record


def store_original(
    s3: Any, table: Any, cfg: UploadConfig, upload: ImageUpload, owner: str | None = None
) -> dict[str, Any]:
    """Record a direct upload as ``pending`` and write its bytes; returns the record."""
    image_id = keys.new_id()
    key = keys.original_key(image_id, upload.filename)
    original = {
        "key": key,
        "size": len(upload.data),
        "content_type": upload.content_type,
        "filename": upload.filename,
    }
    record = owned(records.new_record(image_id, "pending", original), owner)
    records.put_new(table, record)
    try:
        s3.put_object(
            Bucket=cfg.uploads_bucket,
            Key=key,
            Body=upload.data,
            ContentType=upload.content_type,
            Metadata=object_metadata(image_id, upload.filename),
        )
    except Exception:
        # No object, no pipeline run: do not leave a record that stays pending forever.
        with contextlib.suppress(Exception):
            table.delete_item(Key={"id": image_id})
        raise
    return record


def create_presigned_upload(
    s3: Any, table: Any, cfg: UploadConfig, request: PresignRequest, owner: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record an ``awaiting_upload`` image and presign the S3 POST that uploads it.

    The policy pins the exact key, the Content-Type, the metadata and the size
    range, so the form can only create this one object. Returns the record and
    ``{"url", "fields", "expires_at"}``.
    """
    image_id = keys.new_id()
    key = keys.original_key(image_id, request.filename)
    fields = {"Content-Type": request.content_type}
    fields.update(
        {f"x-amz-meta-{name}": value for name, value in object_metadata(image_id, request.filename).items()}
    )
    conditions: list[Any] = [{name: value} for name, value in fields.items()]
    conditions.append(["content-length-range", 1, cfg.max_presigned_bytes])
    post = s3.generate_presigned_post(
        Bucket=cfg.uploads_bucket,
        Key=key,
        Fields=fields,
        Conditions=conditions,
        ExpiresIn=cfg.presign_post_expiry_seconds,
    )
    original = {
        "key": key,
        "size": request.size,
        "content_type": request.content_type,
        "filename": request.filename,
    }
    record = owned(records.new_record(image_id, "awaiting_upload", original), owner)
    # Never used, the record can never complete: the table's TTL removes it.
    expires = time.time() + cfg.presign_post_expiry_seconds + records.UNUSED_UPLOAD_GRACE_SECONDS
    record[records.TTL_ATTRIBUTE] = int(expires)
    records.put_new(table, record)
    upload = {"url": post["url"], "fields": post["fields"], "expires_at": policy_expiration(post["fields"])}
    return record, upload


def policy_expiration(fields: dict[str, str]) -> str:
    """The expiry S3 enforces: the one written in the signed policy (ISO 8601 UTC)."""
    policy = json.loads(base64.b64decode(fields["policy"]))
    return policy["expiration"]


def delete_original(s3: Any, table: Any, cfg: UploadConfig, record: dict[str, Any]) -> int:
    """``DELETE /images/{id}``: remove every version of the original, mark the image deleted.

    Each version goes with a versioned DeleteObject, so nothing is left to
    restore (a plain DELETE would only add a delete marker). S3 then sends one
    ``ObjectRemoved:Delete`` event per version, and the resize function deletes
    the renditions of the version the record holds (docs/ordering.md,
    "Deletes"). The record is marked ``deleted`` at once, so ``GET`` answers 404
    from now on. Returns how many versions were deleted.
    """
    key = record["original"]["key"]
    paginator = s3.get_paginator("list_object_versions")
    deleted = 0
    for page in paginator.paginate(Bucket=cfg.uploads_bucket, Prefix=key):
        for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if version["Key"] == key:  # the prefix also matches longer keys
                s3.delete_object(Bucket=cfg.uploads_bucket, Key=key, VersionId=version["VersionId"])
                deleted += 1
    # Conflict: the resize function got there first (the record is already a tombstone).
    with contextlib.suppress(records.Conflict):
        records.mark_deleted_by_owner(table, record["id"])
    return deleted
