"""Reconcile: move on the records that nothing else will move (docs/reconcile.md).

A pass reads one bounded page per unfinished status from the sparse index
``unfinished`` (hash: the status; range: ``unfinished_since``, oldest first),
only records older than that status's threshold (a ``KeyConditionExpression``
on both keys: never a Scan). It reads each listed record consistently (the
index holds keys only), decides with ``action`` (pure), and writes
conditionally on the status and the ``unfinished_since`` it read, so a record
that moved on meanwhile is left alone:

- ``pending`` older than ``RECONCILE_PENDING_AFTER_S`` whose original exists:
  its S3 event never came (a notification created minutes before, a message
  past retention); a created event is planned for it, and it moves to the back
  of the index;
- ``processing`` older than ``RECONCILE_STUCK_AFTER_S`` (the resize queue's
  visibility timeout x maxReceiveCount: every delivery is over): re-enqueued
  once (``records.STUCK_FLAG``), and when a later pass finds it stuck again,
  ``failed`` with code ``stuck_processing``; the pass whose conditional write
  made it ``failed`` publishes its ``Image Failed`` event (docs/events.md,
  built by ``imgpipe.events`` as the resize function builds it), once: a pass
  whose write found the record moved on (``Conflict``) publishes nothing;
- ``awaiting_upload`` past its form's expiry: ``expired`` (code
  ``upload_expired``), out of the index, the table's TTL deletes it later.

The answer's ``batches`` go to the resize queue through the state machine's
SQS integration; ``next`` (JSON) holds, for each status with more to read,
where its next page starts: the state machine passes it back until it is null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from imgpipe import events, records, reprocess
from imgpipe.aws import classified_call
from imgpipe.errors import BadRequest, PermanentError, SourceNotFound, StuckProcessing, UploadExpired
from imgpipe.maintenance_config import MaintenanceConfig

STATUSES = ("pending", "processing", "awaiting_upload")
REENQUEUE_PENDING, REENQUEUE_STUCK, FAIL_STUCK, EXPIRE, LEAVE = (
    "reenqueue_pending",
    "reenqueue_stuck",
    "fail_stuck",
    "expire",
    "leave",
)
STUCK_MESSAGE = "processing never finished, even when retried"
EXPIRED_MESSAGE = "the upload form expired before a file arrived"


def parse_token(value: object) -> dict[str, dict[str, str] | None]:
    """Where each status's next page starts (``None``: its first); null: every status, from the start."""
    if value is None:
        return dict.fromkeys(STATUSES)
    if not isinstance(value, Mapping) or not value or set(value) - set(STATUSES):
        raise BadRequest(f"next is not a reconcile token: {value!r:.120}")
    for start in value.values():
        if start is not None and not (
            isinstance(start, Mapping) and all(isinstance(v, str) for v in start.values())
        ):
            raise BadRequest(f"next is not a reconcile token: {value!r:.120}")
    return {status: value[status] for status in STATUSES if status in value}


def stamp(moment: datetime) -> str:
    """``moment`` as records write times (``records.now``): comparable as strings."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cutoffs(now: datetime, config: MaintenanceConfig) -> dict[str, str]:
    """Per status: records whose ``unfinished_since`` is older than this are due."""
    after = {
        "pending": config.pending_after_s,
        "processing": config.stuck_after_s,
        "awaiting_upload": config.presign_expiry_s,
    }
    return {status: stamp(now - timedelta(seconds=seconds)) for status, seconds in after.items()}


def action(status: str, seen_since: str, record: Mapping[str, Any] | None, now_epoch: float) -> str:
    """What a pass does to a record the index listed under ``status`` at ``seen_since`` (pure)."""
    if not record or record.get("status") != status or record.get("unfinished_since") != seen_since:
        return LEAVE  # it moved on since the index was read
    if status == "pending":
        return REENQUEUE_PENDING
    if status == "processing":
        return FAIL_STUCK if record.get(records.STUCK_FLAG) else REENQUEUE_STUCK
    expires_at = record.get(records.TTL_ATTRIBUTE)
    if expires_at is None or expires_at - records.UNUSED_UPLOAD_GRACE_SECONDS <= now_epoch:
        return EXPIRE
    return LEAVE  # the form it was given lives longer than PRESIGN_POST_EXPIRY_SECONDS says


@dataclass
class Pass:
    """What one reconcile invocation did."""

    reenqueued_pending: int = 0
    reenqueued_stuck: int = 0
    failed_stuck: int = 0
    expired: int = 0
    left_alone: int = 0
    events_not_published: int = 0
    bodies: list[str] = field(default_factory=list)
    next: dict[str, dict[str, str]] | None = None

    def answer(self) -> dict[str, Any]:
        return {
            "reenqueued_pending": self.reenqueued_pending,
            "reenqueued_stuck": self.reenqueued_stuck,
            "failed_stuck": self.failed_stuck,
            "expired": self.expired,
            "left_alone": self.left_alone,
            "events_not_published": self.events_not_published,
            "batches": reprocess.batches(self.bodies),
            "next": self.next,
        }


def due(
    table: Any, status: str, cutoff: str, limit: int, start: Mapping[str, str] | None
) -> tuple[list[tuple[str, str]], dict[str, str] | None]:
    """One page of ``(id, unfinished_since)`` listed under ``status`` before ``cutoff``, and where the
    next page starts (``None``: no more)."""
    params: dict[str, Any] = {
        "IndexName": records.UNFINISHED_INDEX,
        "KeyConditionExpression": "#status = :status AND #since < :cutoff",
        "ExpressionAttributeNames": {"#status": "unfinished", "#since": "unfinished_since"},
        "ExpressionAttributeValues": {":status": status, ":cutoff": cutoff},
        "Limit": limit,
    }
    if start:
        params["ExclusiveStartKey"] = dict(start)
    response = classified_call(f"query the {status} records", table.query, **params)
    listed = [(item["id"], item["unfinished_since"]) for item in response.get("Items", [])]
    return listed, response.get("LastEvaluatedKey")


def run(
    token: Mapping[str, Mapping[str, str] | None],
    config: MaintenanceConfig,
    *,
    table: Any,
    s3: Any,
    now: datetime | None = None,
    publish: Callable[[dict[str, Any]], None] | None = None,
) -> Pass:
    """One page per status in ``token``; the pass's counts, messages and next token.

    ``publish`` sends one ``PutEvents`` entry (``events.publish``); events are off without it
    or without the resize function's bus (``EVENT_BUS_NAME`` empty)."""
    now = now or datetime.now(UTC)
    limits, done, after = cutoffs(now, config), Pass(), {}
    for status, start in token.items():
        listed, more = due(table, status, limits[status], config.page_size, start)
        if more:
            after[status] = more
        found = reprocess.read_records(table, [image_id for image_id, _ in listed])
        for image_id, since in listed:
            record = found.get(image_id)
            decided = action(status, since, record, now.timestamp())
            _apply(
                done, decided, image_id, since, record, config, table=table, s3=s3, now=now, publish=publish
            )
    done.next = after or None
    return done


def _apply(
    done: Pass,
    decided: str,
    image_id: str,
    since: str,
    record: Mapping[str, Any] | None,
    config: MaintenanceConfig,
    *,
    table: Any,
    s3: Any,
    now: datetime,
    publish: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Carry out one decision; a record that moved on (``Conflict``) or lost its original is left alone."""
    try:
        if decided == REENQUEUE_PENDING:
            body = _message(s3, config, record)
            classified_call(f"touch {image_id}", records.reenqueued_pending, table, image_id, since)
            done.bodies.append(body)
            done.reenqueued_pending += 1
        elif decided == REENQUEUE_STUCK:
            was = classified_call(f"flag {image_id}", records.reenqueued_stuck, table, image_id, since)
            done.bodies.append(_message(s3, config, was))
            done.reenqueued_stuck += 1
        elif decided == FAIL_STUCK:
            code, message = StuckProcessing.code, STUCK_MESSAGE
            was = classified_call(
                f"fail {image_id}", records.fail_stuck, table, image_id, since, code, message
            )
            done.failed_stuck += 1
            if not announce_failed(publish, config, image_id, was, {"code": code, "message": message}):
                done.events_not_published += 1
        elif decided == EXPIRE:
            code, epoch = UploadExpired.code, int(now.timestamp())
            classified_call(
                f"expire {image_id}",
                records.expire,
                table,
                image_id,
                since,
                now_epoch=epoch,
                code=code,
                message=EXPIRED_MESSAGE,
            )
            done.expired += 1
        else:
            done.left_alone += 1
    except (records.Conflict, PermanentError):
        done.left_alone += 1


def _message(s3: Any, config: MaintenanceConfig, record: Mapping[str, Any] | None) -> str:
    """The resize message for the record's original (``SourceNotFound`` when it is gone)."""
    key = str(((record or {}).get("original") or {}).get("key") or "")
    if not key:
        raise SourceNotFound("the record names no original")
    return reprocess.enqueue_message(s3, config.uploads_bucket, key, record, force=False)


def failed_entry(
    config: MaintenanceConfig, image_id: str, was: Mapping[str, Any], error: Mapping[str, str]
) -> dict[str, Any] | None:
    """The ``Image Failed`` entry of a record reconcile made ``failed`` (``was``: as it was before),
    on the resize function's bus; ``None`` when events are off."""
    bus = config.resize.event_bus_name
    if not bus:
        return None
    original = was.get("original") or {}
    detail = events.detail(
        image_id, "failed", config.uploads_bucket, original, str(was.get("config_version") or ""), (), error
    )
    return events.entry(bus, config.resize.event_source, detail)


def announce_failed(
    publish: Callable[[dict[str, Any]], None] | None,
    config: MaintenanceConfig,
    image_id: str,
    was: Mapping[str, Any],
    error: Mapping[str, str],
) -> bool:
    """Publish the failure's event; ``False`` when it could not be sent (never raises: the record is
    already ``failed``, and a retried pass would not move it again, so it would not publish either)."""
    entry = failed_entry(config, image_id, was, error)
    if entry is None or publish is None:
        return True
    try:
        publish(entry)
    except Exception:  # counted in the answer and logged by the handler
        return False
    return True
