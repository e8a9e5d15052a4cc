"""S3 in the emulator made to answer as AWS does where this repository depends on it.

``local.moto_server`` calls ``patch()`` once, before moto serves anything.
moto 5.2.5 differs from S3 in three ways the pipeline depends on:

1. **Event records.** moto's ``_get_s3_event`` (moto/s3/notifications.py)
   gives ``s3.object`` only ``key``, ``size`` and ``eTag``. S3 also sends
   ``versionId`` ("object version if bucket is versioning-enabled, otherwise
   null": the uploads bucket is versioned) and ``sequencer``: "The sequencer
   key provides a way to determine the sequence of events. Event notifications
   aren't guaranteed to arrive in the same order that the events occurred.
   However, notifications from events that create objects (PUTs) and delete
   objects contain a sequencer. It can be used to determine the order of events
   for a given object key." and "The sequencers can be of different lengths.
   So, to compare these values, first right pad the shorter value with zeros,
   and then do a lexicographical comparison." (Amazon S3 User Guide,
   "Event message structure"). Here every record carries the version id of
   the object written, and a sequencer that grows with every event, so it
   grows per key as S3's does: 18 uppercase hex digits, the shape of S3's own
   (``0055AED6DCD90281E5`` in that page), from the clock in nanoseconds, so it
   keeps growing across a restart from a snapshot.
2. **User-defined metadata.** "Within the PUT request header, the
   user-defined metadata is limited to 2 KB in size. The size of user-defined
   metadata is measured by taking the sum of the number of bytes in the UTF-8
   encoding of each key and value" (User Guide, "Working with object
   metadata"). moto stores any size. Here PutObject, CopyObject with
   ``x-amz-metadata-directive: REPLACE``, CreateMultipartUpload and a browser
   POST upload over the limit fail, before anything is stored, with S3's
   ``MetadataTooLarge`` (400, "Your metadata headers exceed the maximum allowed
   metadata size"; Amazon S3 API Reference, "Error responses"). A key is
   counted as the name after ``x-amz-meta-``, as the SDKs' ``Metadata`` maps
   name it.
3. **Removal events of a versioned bucket.** S3 sends
   ``s3:ObjectRemoved:DeleteMarkerCreated`` for a DELETE without a version id
   in a versioned bucket (its ``versionId`` is the new marker's), and
   ``s3:ObjectRemoved:Delete`` for each version deleted by id, naming that
   version (Amazon S3 User Guide, "Supported event types": "You can request
   notification when an object is deleted or a versioned object is
   permanently deleted by using the s3:ObjectRemoved:Delete event type.
   Alternatively, you can request notification when a delete marker is
   created for a versioned object using s3:ObjectRemoved:DeleteMarkerCreated").
   moto sends nothing for a delete marker, and for a versioned delete only
   when the key's last version goes, naming the newest version. Here a
   versioned bucket's deletes send S3's events; their records carry ``key``,
   ``versionId`` and ``sequencer``, no ``size`` or ``eTag`` (a removed object
   has no content; S3's own removal example in "Configuring S3 Lifecycle event
   notifications" carries only ``key`` and ``sequencer``). An unversioned
   bucket keeps moto's own ``ObjectRemoved:Delete``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from local import moto_s3_cors

USER_METADATA_LIMIT = 2048  # bytes: keys and values, UTF-8
META_PREFIX = "x-amz-meta-"

_sequencer_lock = threading.Lock()
_last_sequencer = 0


def next_sequencer() -> str:
    """A sequencer greater than every one given before: hex, 18 digits, uppercase, as S3's."""
    global _last_sequencer
    with _sequencer_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns())
        return f"{_last_sequencer:018X}"


def _wire_bytes(text: str) -> int:
    # A WSGI server hands header values over as latin-1 text of the bytes sent
    # (PEP 3333), so latin-1 gives those bytes back; form fields are UTF-8 text.
    try:
        return len(text.encode("latin-1"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8"))


def user_metadata_size(fields: Iterable[tuple[Any, Any]]) -> int:
    """Bytes of user-defined metadata among header or form fields, as S3 counts them."""
    size = 0
    for name, value in fields:
        if isinstance(name, str) and name.lower().startswith(META_PREFIX):
            text = value[0] if isinstance(value, list) else value
            size += _wire_bytes(name[len(META_PREFIX) :]) + _wire_bytes(str(text))
    return size


def _metadata_error() -> Exception:
    from moto.s3.exceptions import S3ClientError

    error = S3ClientError(
        "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size"
    )
    error.code = "MetadataTooLarge"
    return error


def check_user_metadata(fields: Iterable[tuple[Any, Any]]) -> None:
    """Raise S3's MetadataTooLarge when the fields' user-defined metadata passes 2 KB."""
    if user_metadata_size(fields) > USER_METADATA_LIMIT:
        raise _metadata_error()


def _content(key: Any) -> Any:
    """The object a delete marker stands in front of (markers chain when deleted twice)."""
    while not hasattr(key, "etag") and hasattr(key, "key"):
        key = key.key
    return key


def _is_removal(event_name: Any) -> bool:
    # moto passes a str-mixin Enum, whose str() is its member name: compare its value.
    return str(getattr(event_name, "value", event_name)).startswith("s3:ObjectRemoved:")


def _patch_event_records() -> None:
    from moto.s3 import notifications

    original = notifications._get_s3_event

    def _get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, _content(key), notification_id)
        record = event["Records"][0]["s3"]["object"]
        if _is_removal(event_name):
            record.pop("size", None)
            record.pop("eTag", None)
        version = getattr(key, "version_id", None)
        if version and version != "null":
            record["versionId"] = version
        # One event, one sequencer, whatever number of destinations it goes to.
        sequencers = key.__dict__.setdefault("_local_sequencers", {})
        if event_name not in sequencers:
            sequencers[event_name] = next_sequencer()
        record["sequencer"] = sequencers[event_name]
        return event

    notifications._get_s3_event = _get_s3_event


_quiet = threading.local()


def _patch_removal_events() -> None:
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    send_event = notifications.send_event
    delete_object = S3Backend.delete_object
    removed = notifications.S3NotificationEvent

    def gated_send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        # moto's own removal events of a versioned delete are replaced by S3's, below.
        if getattr(_quiet, "on", False) and _is_removal(event_name):
            return
        send_event(account_id, event_name, bucket, key)

    def faithful_delete_object(
        self: Any, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
    ) -> Any:
        bucket = self.get_bucket(bucket_name)
        if not bucket.is_versioned:
            return delete_object(self, bucket_name, key_name, version_id, bypass)
        listed = bucket.keys.getlist(key_name, []) if key_name in bucket.keys else []
        target = next((k for k in listed if str(k.version_id) == str(version_id)), None)
        _quiet.on = True
        try:
            result = delete_object(self, bucket_name, key_name, version_id, bypass)
        finally:
            _quiet.on = False
        if result[0] and version_id is None:
            marker = bucket.keys.getlist(key_name)[-1]
            send_event(self.account_id, removed.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT, bucket, marker)
        elif result[0] and target is not None:
            send_event(self.account_id, removed.OBJECT_REMOVED_DELETE_EVENT, bucket, target)
        return result

    notifications.send_event = gated_send_event
    S3Backend.delete_object = faithful_delete_object


def _patch_metadata_limit() -> None:
    from moto.s3.responses import S3Response

    put_object = S3Response.put_object
    copy_object = S3Response.copy_object
    key_post = S3Response._key_response_post
    bucket_post = S3Response._bucket_response_post

    def checked_put_object(self: Any) -> Any:
        check_user_metadata(self.headers.items())
        return put_object(self)

    def checked_copy_object(self: Any) -> Any:
        if str(self.headers.get("x-amz-metadata-directive", "")).upper() == "REPLACE":
            check_user_metadata(self.headers.items())
        return copy_object(self)

    def checked_key_post(self: Any, request: Any, body: bytes, bucket: str, query: dict, key: str) -> Any:
        if "uploads" in query:  # CreateMultipartUpload: the object's metadata is given here
            check_user_metadata(request.headers.items())
        return key_post(self, request, body, bucket, query, key)

    def checked_bucket_post(self: Any, request: Any, bucket_name: str) -> Any:
        form = getattr(self, "form_data", None)
        if form:  # a browser POST upload: the metadata comes as form fields
            check_user_metadata(form.items())
        return bucket_post(self, request, bucket_name)

    S3Response.put_object = checked_put_object
    S3Response.copy_object = checked_copy_object
    S3Response._key_response_post = checked_key_post
    S3Response._bucket_response_post = checked_bucket_post


def patch() -> None:
    """Make moto's S3 answer as S3 does in the three ways described above."""
    _patch_event_records()
    _patch_removal_events()
    _patch_metadata_limit()
    moto_s3_cors.patch()  # CORS preflights (local/moto_s3_cors.py)
