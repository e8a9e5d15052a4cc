"""The image record in the DynamoDB metadata table: one item per image id.

Shape (attribute names are the public API's names)::

    id           S   22 URL-safe characters (see keys.py), the partition key
    status       S   awaiting_upload | pending | processing | done | failed
    original     M   key, size, content_type, filename, version_id,
                     and once processed: width, height, format
    renditions   L   [{name, format, key, width, height, bytes}], when done
    error        M   {code, message}, only when failed
    created_at   S   ISO 8601 UTC, set once
    updated_at   S   ISO 8601 UTC, every write

The upload API creates the record (``pending`` or ``awaiting_upload``); the
resize Lambda moves it to ``processing`` then ``done`` or ``failed``, creating
it when a direct S3 upload never went through the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

STATUSES = ("awaiting_upload", "pending", "processing", "done", "failed")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints/floats, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def new_record(image_id: str, status: str, original: dict[str, Any]) -> dict[str, Any]:
    stamp = now()
    return {
        "id": image_id,
        "status": status,
        "original": {k: v for k, v in original.items() if v is not None},
        "created_at": stamp,
        "updated_at": stamp,
    }


def put_new(table: Any, record: dict[str, Any]) -> None:
    """Create a record; never overwrites an existing id."""
    table.put_item(Item=record, ConditionExpression="attribute_not_exists(id)")


def get(table: Any, image_id: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"id": image_id}, ConsistentRead=True).get("Item")
    return to_plain(item) if item else None


def _update(table: Any, image_id: str, sets: dict[str, Any], remove: tuple[str, ...] = ()) -> None:
    sets = {**sets, "updated_at": now()}
    names = {f"#{k}": k for k in [*sets, *remove, "created_at"]}
    values = {f":{k}": v for k, v in sets.items()}
    values[":created_at"] = sets["updated_at"]
    expr = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    expr += ", #created_at = if_not_exists(#created_at, :created_at)"
    if remove:
        expr += " REMOVE " + ", ".join(f"#{k}" for k in remove)
    table.update_item(
        Key={"id": image_id},
        UpdateExpression=expr,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def mark_processing(table: Any, image_id: str, original: dict[str, Any]) -> None:
    """Upsert: a direct S3 upload with no API record gets one here."""
    original = {k: v for k, v in original.items() if v is not None}
    _update(table, image_id, {"status": "processing", "original": original}, ("error",))


def mark_done(table: Any, image_id: str, original: dict[str, Any], renditions: list[dict[str, Any]]) -> None:
    original = {k: v for k, v in original.items() if v is not None}
    sets = {"status": "done", "original": original, "renditions": renditions}
    _update(table, image_id, sets, ("error",))


def mark_failed(table: Any, image_id: str, original: dict[str, Any], code: str, message: str) -> None:
    original = {k: v for k, v in original.items() if v is not None}
    sets = {"status": "failed", "original": original, "error": {"code": code, "message": message[:300]}}
    _update(table, image_id, sets, ("renditions",))
