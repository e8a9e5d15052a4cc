"""Completion events: one ``Image Processed`` or ``Image Failed`` per image, on an EventBridge bus.

Building an event is pure (``detail``, ``entry``); ``publish`` sends one entry
with ``PutEvents`` and retries what may succeed later. The schema is in
docs/events.md, with an example consumers can test against
(tests/events/eventbridge_image_processed.json).

AWS: "if an individual entry within a request fails, EventBridge continues
processing the rest of the entries in the request ... unsuccessful result
entries include ErrorCode and ErrorMessage values" and "You must detect
unsuccessful entries and include them in a subsequent call" (EventBridge User
Guide, "Sending events with PutEvents"). The SDK retries a failed *request*
(throttling, 5xx); a failed *entry* comes back in an HTTP 200 with
``FailedEntryCount`` > 0, so it is retried here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

DETAIL_TYPES = {"done": "Image Processed", "failed": "Image Failed"}
ATTEMPTS = 3
BACKOFF_SECONDS = 0.2  # then 0.4: a throttled entry gets under a second of the invocation's time
# Entry error codes that another call may not get (PutEventsResultEntry.ErrorCode); the
# rest (AccessDeniedException, ValidationException, a malformed detail ...) fail the same way again.
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "InternalFailure", "InternalException", "ServiceUnavailable"}
)


class PublishFailed(Exception):
    """``PutEvents`` did not take the entry: ``code`` is the last error's code."""

    def __init__(self, code: str, message: str, attempts: int) -> None:
        super().__init__(f"{code}: {message} (after {attempts} attempt{'s' * (attempts > 1)})")
        self.code = code
        self.attempts = attempts


def renditions(listed: Iterable[Mapping[str, Any]], url: Callable[[str], str]) -> list[dict[str, Any]]:
    """The event's renditions: what the record lists, each with ``url(key)``, where a client fetches it."""
    fields = ("name", "format", "width", "height", "bytes", "key")
    return [{**{f: r.get(f) for f in fields}, "url": url(r["key"])} for r in listed]


def detail(
    image_id: str,
    status: str,
    bucket: str,
    original: Mapping[str, Any],
    config_version: str,
    renditions: Sequence[Mapping[str, Any]] = (),
    error: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The event's ``detail``: every key always present, ``null`` where unknown (docs/events.md)."""
    return {
        "image_id": image_id,
        "status": status,
        "source": {
            "bucket": bucket,
            "key": original.get("key"),
            "version_id": original.get("version_id"),
            "format": original.get("format"),
            "width": original.get("width"),
            "height": original.get("height"),
            "bytes": original.get("size"),
        },
        "config_version": config_version,
        "renditions": list(renditions),
        "error": {"code": error["code"], "message": error["message"]} if error else None,
    }


def loggable(event_detail: Mapping[str, Any]) -> dict[str, Any]:
    """``event_detail`` for a log line: rendition URLs left out (a presigned URL is a credential)."""
    listed = [{k: v for k, v in r.items() if k != "url"} for r in event_detail["renditions"]]
    return {**event_detail, "renditions": listed}


def entry(bus: str, source: str, event_detail: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PutEvents`` entry of ``event_detail`` on ``bus``."""
    return {
        "EventBusName": bus,
        "Source": source,
        "DetailType": DETAIL_TYPES[event_detail["status"]],
        "Detail": json.dumps(event_detail, separators=(",", ":")),
    }


def publish(
    client: Any,
    event: Mapping[str, Any],
    *,
    is_transient: Callable[[Exception], bool],
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Send ``event`` (one entry); its EventId. Raises ``PublishFailed`` once retrying cannot help.

    A failed entry with a code in ``RETRYABLE_CODES``, or a request error that
    ``is_transient`` accepts, is tried again after a short back-off.
    """
    code, message = "", ""
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 2))
        try:
            response = client.put_events(Entries=[dict(event)])
        except Exception as exc:
            code, message = _error_of(exc)
            if not is_transient(exc):
                raise PublishFailed(code, message, attempt) from exc
            continue
        result = (response.get("Entries") or [{}])[0]
        if not response.get("FailedEntryCount") and result.get("EventId"):
            return result["EventId"]
        code, message = result.get("ErrorCode") or "Unknown", result.get("ErrorMessage") or ""
        if code not in RETRYABLE_CODES:
            raise PublishFailed(code, message, attempt)
    raise PublishFailed(code, message, attempts)


def _error_of(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    return str(error.get("Code") or type(exc).__name__), str(error.get("Message") or exc)
