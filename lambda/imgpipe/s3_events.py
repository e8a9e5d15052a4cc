"""S3 event notifications delivered through SQS: one message body, parsed.

S3 puts a JSON document in each SQS message: ``{"Records": [...]}`` with one
record per object event, or, once when the notification is configured, an
``s3:TestEvent`` document with no records. Keys arrive URL-encoded the way HTML
forms are (``+`` for a space, ``%2B`` for a plus, UTF-8 percent-escapes; the
emulator also escapes ``/``), so they are decoded with ``unquote_plus``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus

from imgpipe.errors import PermanentError

BAD_EVENT = "bad_event"


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


def is_test_event(doc: dict) -> bool:
    return doc.get("Event") == "s3:TestEvent"


def parse_body(body: str) -> list[S3Object]:
    """The object events in one SQS message body; ``[]`` for an ``s3:TestEvent``.

    Raises ``PermanentError`` (code ``bad_event``) for a body that is not an S3
    notification: no retry can fix it.
    """
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        raise PermanentError(f"message body is not JSON: {body!r:.80}", code=BAD_EVENT) from None
    if not isinstance(doc, dict):
        raise PermanentError(f"message body is not an S3 notification: {body!r:.80}", code=BAD_EVENT)
    if is_test_event(doc):
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        raise PermanentError(f"message body has no Records list: {body!r:.80}", code=BAD_EVENT)
    return [parse_record(record) for record in records]


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
