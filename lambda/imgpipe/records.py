"""The image record in the DynamoDB metadata table: one item per image id.

Shape (attribute names are the public API's names)::

    id           S   22 URL-safe characters (see keys.py), the partition key
    status       S   awaiting_upload | pending | processing | done | failed | deleted
                     | expired
    original     M   key, size, content_type, filename, version_id,
                     and once processed: width, height, format
    renditions   L   [{name, format, key, width, height, bytes}], when done
    error        M   {code, message}, only when failed
    sequencer    S   the S3 sequencer of the version it describes, right-padded
                     with zeros to 64 characters (see ordering.py)
    version      S   that version: its version id (else ETag:sequencer)
    settled      S   ``<status>:<sequencer>:<config_version>`` of the resize
                     Lambda's last done or failed write: the write that changes it is the one that
                     publishes the completion event (``already``, docs/events.md)
    created_at   S   ISO 8601 UTC, set once
    updated_at   S   ISO 8601 UTC, every write
    config_version S the rendition-config version (config_version.py) of the
                     resize Lambda's last write: the one that produced the
                     renditions, once done
    unfinished   S   the status, only while it is awaiting_upload, pending or
                     processing: the partition key of the sparse index
                     ``unfinished`` (dynamodb.tf), which therefore holds the
                     unfinished records only
    unfinished_since S  the updated_at of the write that set ``unfinished``, or
                     the time a reconcile pass re-enqueued the record: the
                     index's sort key (oldest first)
    expires_at   N   epoch seconds, only on an ``awaiting_upload`` record: the
                     table's TTL attribute (dynamodb.tf), so DynamoDB deletes
                     an announced upload that never arrived; the first write
                     of the resize Lambda removes it; an ``expired`` record
                     keeps it
    stuck_reenqueued_at S  set by the reconcile pass that re-enqueued a stuck
                     ``processing`` record (once); removed when done or failed

The upload API creates the record (``pending`` or ``awaiting_upload``); the
resize Lambda moves it to ``processing`` then ``done`` or ``failed``, creating
it when a direct S3 upload never went through the API. Given the ``Source`` it
speaks for, each of the resize Lambda's writes is conditional: it fails with
``Conflict`` (and changes nothing) when the record holds a newer sequencer, or,
for an API upload's key, another original key or, once done or failed,
another version.

``deleted`` is a tombstone: the original was deleted (``DELETE /images/{id}``
or in the bucket), the renditions are gone or going, and the record keeps its
sequencer so that an older version's event delivered late renders nothing.
The API answers 404 for it, as for an unknown id.

The maintenance function's reconcile pass (docs/reconcile.md) moves records
that nothing else will move: ``reenqueued_pending``, ``reenqueued_stuck``,
``fail_stuck`` and ``expire``. Each is conditional on the status and the
``unfinished_since`` it read from the index, so a record that moved on
meanwhile (a render started or finished) is left alone (``Conflict``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from imgpipe.errors import TransientError
from imgpipe.ordering import Source

STATUSES = ("awaiting_upload", "pending", "processing", "done", "failed", "deleted", "expired")
UNFINISHED = ("awaiting_upload", "pending", "processing")
UNFINISHED_INDEX = "unfinished"  # the table's sparse GSI (dynamodb.tf): unfinished records by status
INDEX_ATTRIBUTES = ("unfinished", "unfinished_since")
BATCH_GET_KEYS = 100  # DynamoDB: "BatchGetItem ... can contain as many as 100 items"
TTL_ATTRIBUTE = "expires_at"  # the table's TTL attribute (dynamodb.tf: local.table_ttl_attribute)
# Set by a reconcile pass that re-enqueued a stuck `processing` record; the next pass that finds
# it stuck again marks it failed (docs/reconcile.md). A done or failed write removes it.
STUCK_FLAG = "stuck_reenqueued_at"
# How long an unused upload's record outlives its form: a POST sent just before
# the form expires still lands, and its event may wait in the queue for a while.
UNUSED_UPLOAD_GRACE_SECONDS = 2 * 86400


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
        **index_sets(status, stamp),
    }


def index_sets(status: str, stamp: str) -> dict[str, str]:
    """The index attributes a write of ``status`` at ``stamp`` sets; none (remove them) once finished."""
    return {"unfinished": status, "unfinished_since": stamp} if status in UNFINISHED else {}


def get_many(
    table: Any, image_ids: list[str], *, attempts: int = 6, sleep: Callable[[float], None] = time.sleep
) -> dict[str, dict[str, Any]]:
    """The records of up to ``BATCH_GET_KEYS`` distinct ids, by id (an id without a record is absent).

    One consistent BatchGetItem; the keys it hands back unread (``UnprocessedKeys``:
    throttling, a response over 16 MB) are asked again with exponential backoff, as
    the DynamoDB API Reference (BatchGetItem) advises. Raises ``TransientError``
    when some are still unread after ``attempts`` calls.
    """
    if len(set(image_ids)) != len(image_ids) or len(image_ids) > BATCH_GET_KEYS:
        raise ValueError(f"get_many takes at most {BATCH_GET_KEYS} distinct ids, got {len(image_ids)}")
    # The resource's client: keys and items as plain values, like the table's own calls.
    client, found = table.meta.client, {}
    request = {table.name: {"Keys": [{"id": i} for i in image_ids], "ConsistentRead": True}}
    for attempt in range(attempts):
        if attempt:
            sleep(min(0.05 * 2**attempt, 2.0))
        response = client.batch_get_item(RequestItems=request)
        for item in response.get("Responses", {}).get(table.name, []):
            found[item["id"]] = to_plain(item)
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return found
    unread = len(request.get(table.name, {}).get("Keys", []))
    raise TransientError(f"BatchGetItem left {unread} keys unread after {attempts} attempts")


def put_new(table: Any, record: dict[str, Any]) -> None:
    """Create a record; never overwrites an existing id."""
    table.put_item(Item=record, ConditionExpression="attribute_not_exists(id)")


def get(table: Any, image_id: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"id": image_id}, ConsistentRead=True).get("Item")
    return to_plain(item) if item else None


class Conflict(Exception):
    """A conditional write refused: ``record`` is what the table holds (``None`` if unknown)."""

    def __init__(self, image_id: str, record: dict[str, Any] | None) -> None:
        super().__init__(f"the record of {image_id} holds a newer or another source version")
        self.record = record


def _guard(source: Source, failing: bool = False) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The condition under which a write for ``source`` may change a record.

    A failure (or a new start, ``processing``) never replaces a ``done`` record of
    the same version: a duplicate delivery that fails (a deadline, say) or that
    read the record before it was done must not undo the one that succeeded.
    (``#status``, ``#version`` and ``:version`` are set by every guarded write too.)
    """
    names = {"#id": "id", "#sequencer": "sequencer", "#status": "status"}
    values: dict[str, Any] = {":sequencer": source.sequencer}
    clauses = ["attribute_not_exists(#sequencer) OR #sequencer <= :sequencer"]
    if source.version:
        names["#version"] = "version"
        values[":version"] = source.version
    if source.bound:
        names.update({"#original": "original", "#key": "key"})
        values.update({":key": source.key, ":done": "done", ":failed": "failed", ":deleted": "deleted"})
        clauses.append("attribute_not_exists(#original.#key) OR #original.#key = :key")
        same_version = " OR #version = :version" if source.version else ""
        clauses.append(f"NOT #status IN (:done, :failed){same_version}")
        clauses.append("#status <> :deleted")
    if failing and source.version:
        values[":done"] = "done"
        clauses.append("NOT (#status = :done AND #version = :version)")
    if len(clauses) == 1:
        return f"attribute_not_exists(#id) OR {clauses[0]}", names, values
    return "attribute_not_exists(#id) OR (" + " AND ".join(f"({c})" for c in clauses) + ")", names, values


def _update(
    table: Any,
    image_id: str,
    sets: dict[str, Any],
    remove: tuple[str, ...] = (),
    source: Source | None = None,
    failing: bool = False,
    config_version: str | None = None,
) -> dict[str, Any]:
    """Apply the update; with ``source``, only under its guard. Returns the record as it was."""
    if config_version:
        sets = {**sets, "config_version": config_version}
    if source is not None:
        sets = {**sets, "sequencer": source.sequencer}
        if source.version:
            sets["version"] = source.version
    sets = {**sets, "updated_at": now()}
    index = index_sets(sets["status"], sets["updated_at"])
    sets, remove = {**sets, **index}, (*remove, *(a for a in INDEX_ATTRIBUTES if a not in index))
    names = {f"#{k}": k for k in [*sets, *remove, "created_at"]}
    values = {f":{k}": v for k, v in sets.items()}
    values[":created_at"] = sets["updated_at"]
    expr = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    expr += ", #created_at = if_not_exists(#created_at, :created_at)"
    if remove:
        expr += " REMOVE " + ", ".join(f"#{k}" for k in remove)
    condition = None
    if source is not None:
        condition, guard_names, guard_values = _guard(source, failing)
        names.update(guard_names)
        values.update(guard_values)
    return _conditional(table, image_id, expr, condition, names, values)


def _deserialized(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """An item in DynamoDB's wire format (as an error carries it) as plain values."""
    if not item:
        return None
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return to_plain({name: deserializer.deserialize(value) for name, value in item.items()})


def mark_processing(
    table: Any,
    image_id: str,
    original: dict[str, Any],
    *,
    source: Source | None = None,
    config_version: str | None = None,
) -> dict[str, Any]:
    """Upsert: a direct S3 upload with no API record gets one here; returns the record as it was.

    Never over a ``done`` record of the same version (``Conflict``): a duplicate
    delivery that read the record before the first one finished must not set
    it back, or the first one's completion event would be sent twice. (A
    re-render keeps its image done and does not write ``processing``.)
    """
    original = {k: v for k, v in original.items() if v is not None}
    sets = {"status": "processing", "original": original}
    return _update(table, image_id, sets, ("error", TTL_ATTRIBUTE), source, True, config_version)


def mark_done(
    table: Any,
    image_id: str,
    original: dict[str, Any],
    renditions: list[dict[str, Any]],
    *,
    source: Source | None = None,
    config_version: str | None = None,
) -> dict[str, Any]:
    """Record the renditions; returns the record as it was (its renditions are now replaced)."""
    original = {k: v for k, v in original.items() if v is not None}
    sets = {"status": "done", "original": original, "renditions": renditions}
    sets.update(_settled("done", source, config_version))
    removed = ("error", TTL_ATTRIBUTE, STUCK_FLAG)
    return _update(table, image_id, sets, removed, source, config_version=config_version)


def mark_failed(
    table: Any,
    image_id: str,
    original: dict[str, Any],
    code: str,
    message: str,
    *,
    source: Source | None = None,
    config_version: str | None = None,
) -> dict[str, Any]:
    """Record the error; returns the record as it was (its renditions are now dropped)."""
    original = {k: v for k, v in original.items() if v is not None}
    sets = {"status": "failed", "original": original, "error": {"code": code, "message": message[:300]}}
    sets.update(_settled("failed", source, config_version))
    removed = ("renditions", TTL_ATTRIBUTE, STUCK_FLAG)
    return _update(table, image_id, sets, removed, source, True, config_version)


def _settled(status: str, source: Source | None, config_version: str | None) -> dict[str, str]:
    if source is None:
        return {}
    return {"settled": f"{status}:{source.sequencer}:{config_version or ''}"}


def already(record: dict[str, Any] | None, status: str, source: Source, config_version: str | None) -> bool:
    """Whether ``record``, as a done or failed write found it, was already settled so by this event
    under this rendition config.

    Such a write moved nothing: a duplicate delivery's, however the deliveries
    interleaved (a ``processing`` write in between leaves ``settled`` alone).
    The sequencer names one S3 event of one key; a duplicate carries the same.
    A re-render under another config version moves it (new renditions).
    """
    return bool(record) and record.get("settled") == _settled(status, source, config_version)["settled"]


def mark_deleted(table: Any, image_id: str, source: Source, *, marker: bool) -> list[dict[str, Any]]:
    """Make the record a tombstone for a removal event; returns the renditions it listed.

    The write is conditional, as ``ordering.removal`` decides: never over a
    newer sequencer; for an API image, only from its own key; for a removed
    version (``marker`` false), only when it is the version the record holds.
    A delete marker with no record to find writes a tombstone with its
    sequencer, so the older version's created event, delivered late, renders
    nothing. Raises ``Conflict`` when the condition fails.
    """
    stamp = now()
    names = {"#status": "status", "#sequencer": "sequencer", "#updated_at": "updated_at"}
    names.update({"#created_at": "created_at", "#original": "original", "#renditions": "renditions"})
    names.update({"#error": "error", "#unfinished": "unfinished", "#unfinished_since": "unfinished_since"})
    values: dict[str, Any] = {":deleted": "deleted", ":sequencer": source.sequencer, ":now": stamp}
    values[":original"] = {"key": source.key}
    clauses = ["attribute_not_exists(#sequencer) OR #sequencer <= :sequencer"]
    if source.bound:
        names["#key"] = "key"
        values[":key"] = source.key
        clauses.append("attribute_not_exists(#original.#key) OR #original.#key = :key")
    condition = " AND ".join(f"({c})" for c in clauses)
    if marker:
        names["#id"] = "id"
        # DynamoDB refuses redundant parentheses: one clause goes in bare.
        either = clauses[0] if len(clauses) == 1 else f"({condition})"
        condition = f"attribute_not_exists(#id) OR {either}"
    else:
        names["#version"] = "version"
        values[":version"] = source.version
        condition = f"#version = :version AND {condition}"
    expr = (
        "SET #status = :deleted, #sequencer = :sequencer, #updated_at = :now,"
        " #created_at = if_not_exists(#created_at, :now), #original = if_not_exists(#original, :original)"
        " REMOVE #renditions, #error, #unfinished, #unfinished_since"
    )
    return _conditional(table, image_id, expr, condition, names, values).get("renditions") or []


def mark_deleted_by_owner(table: Any, image_id: str) -> None:
    """``DELETE /images/{id}``: the image is ``deleted`` at once (GET answers 404).

    The renditions stay listed: the resize function deletes them when the
    ``ObjectRemoved`` event of the version the record holds arrives. Raises
    ``Conflict`` when the record is gone or already deleted.
    """
    _conditional(
        table,
        image_id,
        "SET #status = :deleted, #updated_at = :now REMOVE #unfinished, #unfinished_since",
        "attribute_exists(#id) AND #status <> :deleted",
        {"#id": "id", "#status": "status", "#updated_at": "updated_at"}
        | {"#unfinished": "unfinished", "#unfinished_since": "unfinished_since"},
        {":deleted": "deleted", ":now": now()},
    )


def _unmoved(status: str, seen_since: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The condition of a reconcile write: the record still has the status and the index position read."""
    names = {"#status": "status", "#unfinished_since": "unfinished_since"}
    values = {":status": status, ":seen": seen_since}
    return "#status = :status AND #unfinished_since = :seen", names, values


def reenqueued_pending(table: Any, image_id: str, seen_since: str) -> dict[str, Any]:
    """A ``pending`` record re-enqueued: it moves to the back of the index (``unfinished_since`` now),
    so the next pass leaves it alone for another threshold. Returns the record as it was."""
    condition, names, values = _unmoved("pending", seen_since)
    values[":now"] = now()
    expr = "SET #unfinished_since = :now"
    return _conditional(table, image_id, expr, condition, names, values)


def reenqueued_stuck(table: Any, image_id: str, seen_since: str) -> dict[str, Any]:
    """A stuck ``processing`` record re-enqueued, once: ``STUCK_FLAG`` set, ``unfinished_since`` now.
    ``Conflict`` when it moved on or was re-enqueued before. Returns the record as it was."""
    condition, names, values = _unmoved("processing", seen_since)
    names["#flag"] = STUCK_FLAG
    values[":now"] = now()
    expr = "SET #unfinished_since = :now, #flag = :now"
    return _conditional(table, image_id, expr, f"{condition} AND attribute_not_exists(#flag)", names, values)


def fail_stuck(table: Any, image_id: str, seen_since: str, code: str, message: str) -> dict[str, Any]:
    """A ``processing`` record stuck again after its one re-enqueue becomes ``failed`` with ``code``.

    It leaves the index; its renditions (an older version's) are no longer listed.
    Returns the record as it was.
    """
    condition, names, values = _unmoved("processing", seen_since)
    names.update({"#flag": STUCK_FLAG, "#error": "error", "#updated_at": "updated_at"})
    names.update({"#unfinished": "unfinished", "#renditions": "renditions"})
    values.update({":failed": "failed", ":error": {"code": code, "message": message[:300]}, ":now": now()})
    expr = (
        "SET #status = :failed, #error = :error, #updated_at = :now"
        " REMOVE #unfinished, #unfinished_since, #flag, #renditions"
    )
    return _conditional(table, image_id, expr, f"{condition} AND attribute_exists(#flag)", names, values)


def expire(
    table: Any, image_id: str, seen_since: str, *, now_epoch: int, code: str, message: str
) -> dict[str, Any]:
    """An ``awaiting_upload`` record whose form expired becomes ``expired`` and leaves the index.

    The form expired when ``expires_at - UNUSED_UPLOAD_GRACE_SECONDS <= now_epoch`` (the upload
    API sets ``expires_at`` that far past the form's expiry); the TTL attribute stays (set to
    ``now_epoch + UNUSED_UPLOAD_GRACE_SECONDS`` when a record lacks it), so DynamoDB deletes the
    record later. Returns the record as it was.
    """
    condition, names, values = _unmoved("awaiting_upload", seen_since)
    limit = now_epoch + UNUSED_UPLOAD_GRACE_SECONDS
    names.update({"#ttl": TTL_ATTRIBUTE, "#error": "error", "#updated_at": "updated_at"})
    names["#unfinished"] = "unfinished"
    values.update({":expired": "expired", ":limit": limit, ":now": now()})
    values[":error"] = {"code": code, "message": message[:300]}
    expr = (
        "SET #status = :expired, #error = :error, #updated_at = :now, #ttl = if_not_exists(#ttl, :limit)"
        " REMOVE #unfinished, #unfinished_since"
    )
    condition = f"{condition} AND (attribute_not_exists(#ttl) OR #ttl <= :limit)"
    return _conditional(table, image_id, expr, condition, names, values)


def _conditional(
    table: Any,
    image_id: str,
    expr: str,
    condition: str | None,
    names: dict[str, str],
    values: dict[str, Any],
) -> dict[str, Any]:
    """One UpdateItem, under ``condition`` when given; the record as it was, or ``Conflict`` with
    what the table holds."""
    params: dict[str, Any] = {"ReturnValues": "ALL_OLD"}
    if condition is not None:
        params.update(ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    try:
        response = table.update_item(
            Key={"id": image_id},
            UpdateExpression=expr,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **params,
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException as exc:
        raise Conflict(image_id, _deserialized(exc.response.get("Item"))) from None
    return to_plain(response.get("Attributes") or {})
