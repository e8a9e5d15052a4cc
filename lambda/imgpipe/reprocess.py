"""Reprocess planning: which listed originals go back on the resize queue, and as which messages.

The reprocess state machine (docs/config-version.md, "Reprocess") lists the
uploads bucket and hands each batch of keys to the maintenance function's
``plan_reprocess``; the state machine then sends the planned message batches
to the resize queue with SQS ``SendMessageBatch``. The ordinary resize path,
with its retries, DLQ and records, does the work: nothing here renders.

For each key: its image id (``keys.id_for_key``), its record (one consistent
BatchGetItem per batch, ``records.get_many``), then ``decide``: an image whose
record is ``done`` under the current rendition-config version with every
output is ``current`` and skipped (unless ``all`` or ``force``); one whose
record is ``failed`` with a content failure (``errors.CONTENT_FAILURES``: not an
image, unsupported, corrupt) for the version it holds under the current config
version is a *poison*: counted ``failed`` with its recorded code, not sent
again (unless ``all`` or ``force``); every other one is enqueued. The message
is S3-event-shaped, as the resize function parses it (``imgpipe.s3_events``):

- a record that holds the key's version: a *reprocess* message for that
  version, carrying the record's sequencer (docs/ordering.md, "Reprocess
  messages": it renders only while the record still holds that version);
- no record, or one that holds no version yet (a ``pending`` upload whose
  event was lost): an ordinary created event for the version ``HeadObject``
  names, without a sequencer, since the resize function renders nothing for a
  reprocess of a version no record holds. A key that no longer exists is a
  failure ``source_not_found``, counted, not raised.

Entries go in batches of at most ``SEND_BATCH_ENTRIES``, whose bodies together
stay within ``SEND_BATCH_BYTES``, with Ids unique across the whole answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from imgpipe import config_version, records
from imgpipe.aws import classified_call
from imgpipe.errors import CONTENT_FAILURES, BadRequest, PermanentError

CURRENT, ENQUEUE, FAILED = "current", "enqueue", "failed"
# SQS SendMessageBatch: "up to 10 messages"; the bodies together at most 256 KiB (SQS API
# Reference; since 2025 AWS allows 1 MiB, 256 KiB holds on every queue and emulator).
SEND_BATCH_ENTRIES = 10
SEND_BATCH_BYTES = 256 * 1024
# Step Functions: a state's input or output is at most 256 KiB (Step Functions quotas,
# "Maximum input or output size for a task, state, or execution"); the plan is a task's output.
STATE_PAYLOAD_BYTES = 256 * 1024
HEAD_THREADS = 8


@dataclass(frozen=True)
class Deployment:
    """What the plan compares records with: the current rendition-config version and its outputs."""

    config_version: str
    outputs: frozenset[tuple[str, str]]
    id_for_key: Callable[[str], str]


@dataclass(frozen=True)
class Options:
    """A reprocess's ``BatchInput``: enqueue current images too (``all``), render them again (``force``)."""

    all: bool = False
    force: bool = False

    @classmethod
    def parse(cls, value: object) -> Options:
        """``{"all": bool, "force": bool}`` (either may be absent or null); ``BadRequest`` otherwise."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise BadRequest(f"BatchInput is not an object: {value!r:.80}")
        unknown = sorted(set(value) - {"all", "force"})
        if unknown:
            raise BadRequest(f"unknown BatchInput field {unknown[0]!r:.40}; known: all, force")
        flags = {name: value.get(name) for name in ("all", "force")}
        for name, flag in flags.items():
            if flag is not None and not isinstance(flag, bool):
                raise BadRequest(f"BatchInput.{name} is not true or false: {flag!r:.40}")
        return cls(**{name: bool(flag) for name, flag in flags.items()})


def listed_keys(items: object) -> list[str]:
    """The keys of a Distributed Map batch (``[{"key": "..."}]``), each once, in order."""
    if not isinstance(items, list):
        raise BadRequest(f"Items is not a list: {items!r:.80}")
    found: dict[str, None] = {}
    for item in items:
        key = item.get("key") if isinstance(item, Mapping) else None
        if not isinstance(key, str) or not key:
            raise BadRequest(f"an item is not {{'key': '<object key>'}}: {item!r:.80}")
        found[key] = None
    return list(found)


def held_version(record: Mapping[str, Any] | None, key: str) -> str | None:
    """The version id of ``key`` that ``record`` holds, or ``None`` (no record, another key, none yet)."""
    if not record or record.get("status") == "deleted":
        return None
    original = record.get("original") or {}
    version = record.get("version")
    if original.get("key") != key or not version or version != original.get("version_id"):
        return None
    return str(version)


def poisoned(record: Mapping[str, Any] | None, key: str, deployment: Deployment) -> str | None:
    """The code of the content failure ``record`` shows for the version of ``key`` it holds under the
    current config version (``errors.CONTENT_FAILURES``), or ``None``."""
    if record is None or held_version(record, key) is None or record.get("status") != "failed":
        return None
    code = (record.get("error") or {}).get("code")
    if code in CONTENT_FAILURES and record.get("config_version") == deployment.config_version:
        return str(code)
    return None


def decide(record: Mapping[str, Any] | None, key: str, deployment: Deployment, options: Options) -> str:
    """``current`` (skip), ``failed`` (a poison: reported, not sent again) or ``enqueue``: the plan's
    rule for one listed key (pure). ``all`` and ``force`` enqueue every key."""
    if options.all or options.force or held_version(record, key) is None:
        return ENQUEUE
    if config_version.shows_current(record, deployment.config_version, deployment.outputs):
        return CURRENT
    if poisoned(record, key, deployment):
        return FAILED
    return ENQUEUE


def s3_record(
    bucket: str, key: str, version_id: str | None, *, size: int | None = None, sequencer: str | None = None
) -> dict[str, Any]:
    """One ``ObjectCreated:Put`` record as S3 writes it in a notification (the key URL-encoded;
    no ``versionId`` in an unversioned bucket, as S3 sends none)."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if version_id:
        obj["versionId"] = version_id
    if size is not None:
        obj["size"] = size
    if sequencer:
        obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": os.environ.get("AWS_REGION", ""),
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def message_body(record: dict[str, Any], *, reprocess: bool, force: bool) -> str:
    """The resize queue message: the S3 record plus the pipeline's options (``s3_events.Options``)."""
    doc = {"Records": [record], "imgpipe": {"reprocess": reprocess, "force": force}}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def batches(bodies: Iterable[str]) -> list[list[dict[str, str]]]:
    """``SendMessageBatch`` entries: at most 10 a batch, within 256 KiB, Ids unique across all batches."""
    out: list[list[dict[str, str]]] = []
    size = 0
    for number, body in enumerate(bodies):
        length = len(body.encode())
        if length > SEND_BATCH_BYTES:
            raise ValueError(f"a message of {length} bytes is over SQS's {SEND_BATCH_BYTES}")
        if not out or len(out[-1]) == SEND_BATCH_ENTRIES or size + length > SEND_BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append({"Id": str(number), "MessageBody": body})
        size += length
    return out


@dataclass
class Plan:
    """What one batch of listed keys came to."""

    listed: int = 0
    skipped_current: int = 0
    bodies: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    def answer(self) -> dict[str, Any]:
        """The task's output, as the state machine reads it."""
        answer = {
            "listed": self.listed,
            "skipped_current": self.skipped_current,
            "enqueue": len(self.bodies),
            "failed": len(self.failures),
            "failures": self.failures,
            "batches": batches(self.bodies),
        }
        size = len(json.dumps(answer).encode())
        if size > STATE_PAYLOAD_BYTES:
            message = (
                f"the plan of {self.listed} keys is {size} bytes, over Step Functions' {STATE_PAYLOAD_BYTES}"
                " per state: lower the reprocess batch size"
            )
            raise BadRequest(message)
        return answer


def head_version(s3: Any, bucket: str, key: str) -> tuple[str | None, int | None]:
    """The current version id (``None`` in an unversioned bucket) and size of ``key``;
    ``SourceNotFound`` when it no longer exists."""
    response = classified_call(f"head s3://{bucket}/{key}", s3.head_object, Bucket=bucket, Key=key)
    version = response.get("VersionId")
    return (version if version and version != "null" else None), response.get("ContentLength")


def enqueue_message(s3: Any, bucket: str, key: str, record: Mapping[str, Any] | None, force: bool) -> str:
    """The message that makes the resize function render ``key`` again (see the module's rules)."""
    version = held_version(record, key)
    if version is not None and record is not None:
        size = (record.get("original") or {}).get("size")
        event = s3_record(bucket, key, version, size=size, sequencer=record.get("sequencer"))
        return message_body(event, reprocess=True, force=force)
    version, size = head_version(s3, bucket, key)
    return message_body(s3_record(bucket, key, version, size=size), reprocess=False, force=force)


def read_records(table: Any, image_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of distinct ``image_ids``, by id: one BatchGetItem per 100."""
    found: dict[str, dict[str, Any]] = {}
    step = records.BATCH_GET_KEYS
    for start in range(0, len(image_ids), step):
        chunk = image_ids[start : start + step]
        found.update(classified_call("read the records", records.get_many, table, chunk))
    return found


def plan(
    keys: list[str], options: Options, deployment: Deployment, *, s3: Any, table: Any, bucket: str
) -> Plan:
    """Decide every key of one batch and build its messages (``failures`` for keys that are gone)."""
    result = Plan(listed=len(keys))
    ids = {key: deployment.id_for_key(key) for key in keys}
    found = read_records(table, list(dict.fromkeys(ids.values())))
    todo = []
    for key in keys:
        record = found.get(ids[key])
        decided = decide(record, key, deployment, options)
        if decided == CURRENT:
            result.skipped_current += 1
        elif decided == FAILED:
            result.failures.append({"key": key, "error_code": str(poisoned(record, key, deployment))})
        else:
            todo.append((key, record))

    def build(item: tuple[str, Mapping[str, Any] | None]) -> str | dict[str, str]:
        key, record = item
        try:
            return enqueue_message(s3, bucket, key, record, options.force)
        except PermanentError as exc:
            return {"key": key, "error_code": exc.code}

    with ThreadPoolExecutor(max_workers=HEAD_THREADS, thread_name_prefix="head") as pool:
        for built in pool.map(build, todo):
            if isinstance(built, dict):
                result.failures.append(built)
            else:
                result.bodies.append(built)
    return result
