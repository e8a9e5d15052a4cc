"""S3 event notifications delivered through SQS: one message body, parsed.

S3 puts a JSON document in each SQS message: ``{"Records": [...]}`` with one
record per object event, or, once when the notification is configured, an
``s3:TestEvent`` document with no records. Keys arrive URL-encoded the way HTML
forms are (``+`` for a space, ``%2B`` for a plus, UTF-8 percent-escapes; the
emulator also escapes ``/``), so they are decoded with ``unquote_plus``.

A message the pipeline itself sends (a reprocess) has the same shape, with
options beside ``Records``: ``{"Records": [...], "imgpipe": {"reprocess": true,
"force": true}}`` (docs/config-version.md). The options are validated strictly:
an unknown option or a value that is not a boolean makes the message a
permanent failure (code ``bad_options``), since no retry can fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from urllib.parse import unquote_plus

from imgpipe.errors import PermanentError

BAD_EVENT = "bad_event"
BAD_OPTIONS = "bad_options"
OPTIONS_FIELD = "imgpipe"


@dataclass(frozen=True)
class Options:
    """What a message asks of the resize function beyond what its S3 events say.

    ``reprocess``: sent by the pipeline, not by S3, for the version the record
    holds; it renders only while the record still holds that version
    (docs/ordering.md, "Reprocess messages"). ``force``: render even when the
    record already shows the current rendition-config version.
    """

    reprocess: bool = False
    force: bool = False

    def logged(self) -> dict[str, bool]:
        """The options that are set, for a log line."""
        return {field.name: True for field in fields(self) if getattr(self, field.name)}


NO_OPTIONS = Options()


@dataclass(frozen=True)
class S3Object:
    """One object event: which object (and version) and what happened to it."""

    bucket: str
    key: str
    event_name: str
    version_id: str | None = None
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None

    @property
    def created(self) -> bool:
        """True for ``ObjectCreated:*`` (Put, Post, Copy, CompleteMultipartUpload)."""
        return self.event_name.removeprefix("s3:").startswith("ObjectCreated:")

    @property
    def removed(self) -> bool:
        """True for ``ObjectRemoved:*``: a version deleted, or a delete marker created."""
        return self.event_name.removeprefix("s3:").startswith("ObjectRemoved:")

    @property
    def delete_marker(self) -> bool:
        """``ObjectRemoved:DeleteMarkerCreated``: a DELETE without a version id in a versioned bucket.

        Its ``versionId`` is the marker's own; every other version is kept. An
        ``ObjectRemoved:Delete`` names the version that was removed for good.
        """
        return self.event_name.removeprefix("s3:") == "ObjectRemoved:DeleteMarkerCreated"

    @property
    def folder_marker(self) -> bool:
        """The empty ``photos/`` object the S3 console's "Create folder" writes: not an image."""
        return self.key.endswith("/") and self.size == 0


@dataclass(frozen=True)
class Message:
    """One SQS message body: its object events and the options they share."""

    objects: list[S3Object]
    options: Options = NO_OPTIONS


def is_test_event(doc: dict) -> bool:
    return doc.get("Event") == "s3:TestEvent"


def parse_body(body: str) -> list[S3Object]:
    """The object events in one SQS message body; ``[]`` for an ``s3:TestEvent``."""
    return parse_message(body).objects


def parse_message(body: str) -> Message:
    """One SQS message body: its object events (none for an ``s3:TestEvent``) and options.

    Raises ``PermanentError`` (code ``bad_event``) for a body that is not an S3
    notification, or (code ``bad_options``) for options that are not valid: no
    retry can fix either.
    """
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        raise PermanentError(f"message body is not JSON: {body!r:.80}", code=BAD_EVENT) from None
    if not isinstance(doc, dict):
        raise PermanentError(f"message body is not an S3 notification: {body!r:.80}", code=BAD_EVENT)
    if is_test_event(doc):
        return Message([])
    records = doc.get("Records")
    if not isinstance(records, list):
        raise PermanentError(f"message body has no Records list: {body!r:.80}", code=BAD_EVENT)
    objects = [parse_record(record) for record in records]
    options = parse_options(doc[OPTIONS_FIELD]) if OPTIONS_FIELD in doc else NO_OPTIONS
    if options.reprocess and not all(obj.created and obj.version_id for obj in objects):
        message = "a reprocess message names object-created events with a versionId only"
        raise PermanentError(message, code=BAD_OPTIONS)
    return Message(objects, options)


def parse_options(value: object) -> Options:
    """The ``imgpipe`` options of a message: an object of known names with boolean values."""
    if not isinstance(value, dict):
        raise PermanentError(f"{OPTIONS_FIELD} is not an object: {value!r:.80}", code=BAD_OPTIONS)
    known = {field.name for field in fields(Options)}
    unknown = sorted(set(value) - known)
    if unknown:
        message = f"unknown {OPTIONS_FIELD} option {unknown[0]!r:.40}; known: {', '.join(sorted(known))}"
        raise PermanentError(message, code=BAD_OPTIONS)
    for name, flag in value.items():
        if not isinstance(flag, bool):
            message = f"{OPTIONS_FIELD}.{name} is not true or false: {flag!r:.40}"
            raise PermanentError(message, code=BAD_OPTIONS)
    return Options(**value)


def parse_record(record: dict) -> S3Object:
    try:
        s3 = record["s3"]
        obj = s3["object"]
        size = obj.get("size")
        return S3Object(
            bucket=s3["bucket"]["name"],
            key=unquote_plus(obj["key"]),
            event_name=str(record.get("eventName", "")),
            version_id=obj.get("versionId") or None,
            size=int(size) if size is not None else None,
            etag=obj.get("eTag") or None,
            sequencer=obj.get("sequencer") or None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(
            f"S3 record is missing {exc}: {json.dumps(record)[:120]}", code=BAD_EVENT
        ) from None
