"""What the resize function does in AWS: fetch an original's version, store its renditions,
update its record, delete renditions nobody lists any more.

The twin of ``imgpipe.uploads``. Clients are passed in (the handler takes them
from ``imgpipe.aws``), so tests can drive these functions against moto; every
call goes through ``aws.classified_call``, so throttling and 5xx raise
``TransientError`` (SQS retries the message) and a vanished original raises
``SourceNotFound``. Record writes are conditional (``imgpipe.records``): one
that another version won raises ``records.Conflict``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from imgpipe import id_secret, keys, metadata, ordering, records, s3_events
from imgpipe.aws import classified_call
from imgpipe.detect import mime_type
from imgpipe.errors import ConfigError, SourceNotFound, SourceTooLarge
from imgpipe.renditions import EXTENSIONS

if TYPE_CHECKING:
    from imgpipe.engine import RenderResult

# Powertools: a child logger and a Metrics instance share the handler's output and metric set.
logger = Logger(child=True)
metrics = Metrics()

# Every source version, rendered with each configuration, has its own rendition
# keys ({id}/{tag}/...), so the bytes under a rendition key never change: caches
# (a browser, the CDN) may keep them for a year.
CACHE_CONTROL_IMMUTABLE = "public, max-age=31536000, immutable"
PUT_THREADS = 4


def load_id_secret(table: Any | None) -> bytes:
    """The table's id secret (docs/ids.md).

    Without a table there is no record for an id to reveal, and rendition keys
    carry the random version's tag, so the ids are keyed with an empty secret.
    """
    if table is None:
        return b""
    return classified_call("read the id secret", id_secret.load, table)


def fetch_watermark(s3: Any, bucket: str, key: str) -> bytes:
    """The watermark image's bytes; ``ConfigError`` naming WATERMARK_KEY when it does not exist."""
    where = f"s3://{bucket}/{key}"
    try:
        response = classified_call(f"get watermark {where}", s3.get_object, Bucket=bucket, Key=key)
        return classified_call(f"read watermark {where}", response["Body"].read)
    except SourceNotFound:
        raise ConfigError(f"WATERMARK_KEY: {key!r} does not exist ({where})") from None


def filename(key: str, user_metadata: dict[str, str]) -> str:
    """The client's filename (percent-encoded metadata), else the key's last part.

    Sanitised by the same rule as the API's: direct uploads choose their key and
    metadata freely.
    """
    encoded = user_metadata.get("filename")
    return keys.sanitize_filename(unquote(encoded) if encoded else key.rsplit("/", 1)[-1])


def where(obj: s3_events.S3Object) -> str:
    """The object version as an S3 URL, for logs and error details (never public messages)."""
    return f"s3://{obj.bucket}/{obj.key}" + (f"?versionId={obj.version_id}" if obj.version_id else "")


def get_version(
    s3: Any, obj: s3_events.S3Object, source: ordering.Source
) -> tuple[dict[str, Any], str | None, ordering.Source]:
    """GET the version the event names; the response, its version id, and the source it identifies."""
    params = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        params["VersionId"] = obj.version_id
    response = classified_call(f"get {where(obj)}", s3.get_object, **params)
    version = response.get("VersionId") or obj.version_id
    return response, version, source.identified(version, response.get("ETag"))


def read_version(
    obj: s3_events.S3Object,
    response: dict[str, Any],
    original: dict[str, Any],
    version: str | None,
    max_bytes: int,
) -> bytes:
    """The bytes, unless over ``max_bytes`` (MAX_SOURCE_BYTES); ``original`` learns what S3 said."""
    length = response.get("ContentLength")
    if length is not None and length > max_bytes:
        response["Body"].close()
        original.update(size=length, version_id=version)
        raise SourceTooLarge(f"the object is {length} bytes; the limit (MAX_SOURCE_BYTES) is {max_bytes}")
    data = classified_call(f"read {where(obj)}", response["Body"].read)
    original.update(
        size=len(data),
        version_id=version,
        filename=filename(obj.key, response.get("Metadata") or {}),
        content_type=mime_type(data) or response.get("ContentType"),
    )
    return data


def store_renditions(
    s3: Any,
    bucket: str,
    image_id: str,
    obj: s3_events.S3Object,
    result: RenderResult,
    version: str | None,
    source: ordering.Source,
    made_by: str,
) -> list[dict[str, Any]]:
    """PUT every output under its rendition key, in parallel; the record's list of renditions."""
    user_metadata = metadata.rendition_metadata(obj.key, image_id, version, made_by)
    tag = source.tag(made_by)  # the config version: a new configuration writes new keys

    def put(output) -> dict[str, Any]:
        key = keys.rendition_key(image_id, output.name, EXTENSIONS[output.format], tag)
        classified_call(
            f"put s3://{bucket}/{key}",
            s3.put_object,
            Bucket=bucket,
            Key=key,
            Body=output.data,
            ContentType=output.content_type,
            CacheControl=CACHE_CONTROL_IMMUTABLE,
            Metadata=user_metadata,
        )
        return {
            "name": output.name,
            "format": output.format,
            "key": key,
            "width": output.width,
            "height": output.height,
            "bytes": output.size,
            **({"frames": output.frames} if output.frames > 1 else {}),  # animated (docs/formats.md)
        }

    with ThreadPoolExecutor(max_workers=PUT_THREADS, thread_name_prefix="put") as pool:
        return list(pool.map(put, result.outputs))


def delete_renditions(s3: Any, bucket: str, rendition_keys: list[str], reason: str) -> None:
    """Best effort: an object left behind costs storage, never correctness (no record lists it)."""
    if not rendition_keys:
        return

    def delete(key: str) -> str | None:
        try:
            s3.delete_object(Bucket=bucket, Key=key)
        except Exception:
            return key
        return None

    with ThreadPoolExecutor(max_workers=PUT_THREADS, thread_name_prefix="delete") as pool:
        left = [key for key in pool.map(delete, rendition_keys) if key]
    if left:
        metrics.add_metric(name="RenditionsNotDeleted", unit=MetricUnit.Count, value=len(left))
        logger.warning("renditions left behind", extra={"keys": left, "reason": reason})


def delete_replaced(s3: Any, bucket: str, replaced: list[dict[str, Any]], kept: list[dict[str, Any]]) -> None:
    """The renditions of the older version the record listed before this write."""
    keep = {r["key"] for r in kept}
    stale = [r["key"] for r in replaced if r.get("key") and r["key"] not in keep]
    delete_renditions(s3, bucket, stale, "replaced by a newer version")


def record_processing(
    table: Any, image_id: str, original: dict[str, Any], source: ordering.Source, made_by: str
) -> None:
    """Mark the image ``processing`` while this version renders."""
    classified_call(
        f"mark {image_id} processing",
        records.mark_processing,
        table,
        image_id,
        original,
        source=source,
        config_version=made_by,
    )


def record_done(
    s3: Any,
    bucket: str,
    table: Any,
    image_id: str,
    original: dict[str, Any],
    renditions: list[dict[str, Any]],
    source: ordering.Source,
    made_by: str,
) -> dict[str, Any]:
    """Record the renditions, unless another version won meanwhile: then delete them again.

    Returns the record as it was; the renditions it listed and this write replaced are deleted.
    """
    try:
        was = classified_call(
            f"mark {image_id} done",
            records.mark_done,
            table,
            image_id,
            original,
            renditions,
            source=source,
            config_version=made_by,
        )
    except records.Conflict:
        delete_renditions(s3, bucket, [r["key"] for r in renditions], "another version won while rendering")
        raise
    delete_replaced(s3, bucket, was.get("renditions") or [], renditions)
    return was


def record_failed(
    s3: Any,
    bucket: str,
    table: Any,
    image_id: str,
    original: dict[str, Any],
    code: str,
    message: str,
    source: ordering.Source,
    made_by: str,
) -> dict[str, Any]:
    """Record a permanent failure; returns the record as it was, whose renditions are deleted."""
    was = classified_call(
        f"mark {image_id} failed",
        records.mark_failed,
        table,
        image_id,
        original,
        code,
        message,
        source=source,
        config_version=made_by,
    )
    delete_replaced(s3, bucket, was.get("renditions") or [], [])
    return was


def known_original(table: Any, image_id: str, original: dict[str, Any]) -> dict[str, Any]:
    """The record's original merged under what this event says (keeps an API upload's filename)."""
    try:
        existing = records.get(table, image_id) or {}
    except Exception:  # best effort: the failure itself is what must be recorded
        logger.warning("could not read the existing record", extra={"image_id": image_id})
        existing = {}
    return {**existing.get("original", {}), **{k: v for k, v in original.items() if v is not None}}


def read_record(table: Any, image_id: str) -> dict[str, Any] | None:
    """The image's record, or ``None``."""
    return classified_call(f"read {image_id}", records.get, table, image_id)


def record_deleted(table: Any, image_id: str, source: ordering.Source, marker: bool) -> list[dict[str, Any]]:
    """Make the record a ``deleted`` tombstone; the renditions it listed (delete them next)."""
    return classified_call(
        f"mark {image_id} deleted", records.mark_deleted, table, image_id, source, marker=marker
    )
