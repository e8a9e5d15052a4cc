"""Which version of a source an event speaks for, and whether it may still change the image.

S3 delivers event notifications at least once and in no particular order. Its
``sequencer`` orders the events of one key: "If you compare the sequencer
strings from two event notifications on the same object key, the event
notification with the greater sequencer hexadecimal value is the event that
occurred later ... The sequencers can be of different lengths. So, to compare
these values, first right pad the shorter value with zeros, and then do a
lexicographical comparison" (Amazon S3 User Guide, "Event message structure",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).

``padded`` stores a sequencer right-padded to a fixed width, so DynamoDB's
comparison of two stored strings (by their UTF-8 bytes) is exactly that rule,
and a conditional write can enforce it. ``verdict`` reads a record and says why
an event must not change it: ``superseded`` (a newer version of the key is
already recorded), ``refused`` (an API image is bound to another original) or
``duplicate`` (this version is already done). ``removal`` does the same for
an ``ObjectRemoved`` event: it deletes the image only when it removes the
version the record holds, or is a delete marker newer than it
(docs/ordering.md, "Deletes"). ``reprocessed`` gives a reprocess message,
which has no sequencer of its own, the record's: it may re-render only the
version the record holds (docs/ordering.md, "Reprocess messages").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from imgpipe import keys

SEQUENCER_WIDTH = 64
TERMINAL = ("done", "failed")
DELETED = "deleted"
SUPERSEDED, REFUSED, DUPLICATE = "superseded", "refused", "duplicate"
UNAFFECTED = "unaffected"


def padded(sequencer: str | None) -> str:
    """A sequencer right-padded with zeros to ``SEQUENCER_WIDTH``.

    An event without one (S3 gives one to every object-created event, so only
    hand-made events lack it) sorts below every real sequencer. A value longer
    than the width is kept whole: its first characters still decide the order.
    """
    return (sequencer or "").ljust(SEQUENCER_WIDTH, "0")


@dataclass(frozen=True)
class Source:
    """One version of one uploads-bucket key, as an event (then the GET) names it."""

    key: str
    sequencer: str
    version: str | None = None

    @classmethod
    def of(cls, key: str, sequencer: str | None, version_id: str | None) -> Source:
        return cls(key=key, sequencer=padded(sequencer), version=_unique(version_id))

    def identified(self, version_id: str | None, etag: str | None) -> Source:
        """The version as S3 answered the GET: its version id, else its ETag and the sequencer."""
        if _unique(version_id):
            return replace(self, version=version_id)
        if self.version:
            return self
        return replace(self, version=f"{(etag or '').strip(chr(34))}:{self.sequencer}")

    @property
    def bound(self) -> bool:
        """An API upload's key: its image accepts one original, once."""
        return keys.is_api_key(self.key)

    @property
    def tag(self) -> str:
        return keys.version_tag(self.version or self.sequencer)


def _unique(version_id: str | None) -> str | None:
    """A version id that names one version: ``null`` (unversioned or suspended buckets) does not."""
    return version_id if version_id and version_id != "null" else None


def verdict(record: Mapping[str, Any] | None, source: Source) -> str | None:
    """Why ``source`` must not change ``record``, or ``None`` when it may."""
    if not record:
        return None
    original = record.get("original") or {}
    recorded = record.get("version")
    if source.bound:
        if original.get("key") not in (None, source.key):
            return REFUSED
        if record.get("status") == DELETED:  # an API image keeps its first original, even once deleted
            return REFUSED
        if record.get("status") in TERMINAL and source.version and recorded != source.version:
            return REFUSED
    if str(record.get("sequencer") or "") > source.sequencer:
        return SUPERSEDED
    if record.get("status") == "done" and source.version and recorded == source.version:
        return DUPLICATE
    return None


def reprocessed(record: Mapping[str, Any] | None, source: Source) -> Source | None:
    """The source a reprocess message speaks for, or ``None`` when it must change nothing.

    A reprocess names a version and carries no sequencer of its own: it stands
    for the record's version with the record's sequencer, so it ranks exactly
    as that version did. Once a newer event has moved the record on (or the
    image is deleted, or was never recorded), the reprocess is ``superseded``;
    a newer event that arrives while it renders moves the sequencer on and
    its final write fails like any older version's.
    """
    if not record or record.get("status") == DELETED or not source.version:
        return None
    if record.get("version") != source.version:
        return None
    return replace(source, sequencer=str(record.get("sequencer") or source.sequencer))


def removal(record: Mapping[str, Any] | None, source: Source, marker: bool) -> str | None:
    """Why the removal ``source`` must not delete ``record``'s image, or ``None`` when it must.

    A delete marker deletes the image when it is newer than the version the
    record holds (a record it finds missing gets a tombstone, so a late
    created event of an older version is ``superseded``). A removed version
    deletes it only when it is the version the record holds.
    """
    if not record:
        return None if marker else UNAFFECTED
    if source.bound and (record.get("original") or {}).get("key") not in (None, source.key):
        return REFUSED
    recorded = str(record.get("sequencer") or "")
    if record.get("status") == DELETED and recorded == source.sequencer:
        return DUPLICATE
    if recorded > source.sequencer:
        return SUPERSEDED
    if not marker and record.get("version") != source.version:
        return UNAFFECTED
    return None
