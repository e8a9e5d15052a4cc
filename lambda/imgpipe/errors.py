"""Errors as values with stable codes.

``PermanentError`` means retrying cannot help (bad input): record it and drop
the message. ``TransientError`` means the same input may succeed later
(throttling, 5xx, timeouts): let SQS deliver it again.
"""

from __future__ import annotations

import re

# What a public message must never show: S3 URLs, ARNs, account ids, file paths.
_INTERNALS = re.compile(r"s3://\S+|arn:aws[\w-]*:\S+|\b\d{12}\b|(?<![\w.])/[\w.-]+(?:/[\w.-]+)+")


class PipelineError(Exception):
    """Base class: ``code`` is stable and safe to show to clients."""

    code = "internal"
    permanent = False

    def __init__(self, message: str, *, code: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.detail = detail  # for operators' logs only: may name buckets and keys


class PermanentError(PipelineError):
    """Input that can never be processed; retrying will not help."""

    code = "invalid_input"
    permanent = True


class NotAnImage(PermanentError):
    code = "not_an_image"


class UnsupportedFormat(PermanentError):
    code = "unsupported_format"


class TooManyPixels(PermanentError):
    code = "too_many_pixels"


class TooManyScans(PermanentError):
    """A progressive JPEG with more scans than ``limits.MAX_JPEG_SCANS``: CPU grows with each."""

    code = "too_many_scans"


class RenderTimeout(PermanentError):
    """Rendering took longer than one image may take (the image's own limit, not the batch's)."""

    code = "render_timeout"


class SourceTooLarge(PermanentError):
    """The object is larger than MAX_SOURCE_BYTES; it is not downloaded."""

    code = "source_too_large"


class CorruptImage(PermanentError):
    """Truncated or undecodable data behind a valid image header."""

    code = "corrupt_image"


class SourceNotFound(PermanentError):
    """The object (or version) named by the event no longer exists."""

    code = "source_not_found"


class StuckProcessing(PermanentError):
    """The record stayed ``processing`` past every delivery of its message, and again after one
    more (a reconcile pass re-enqueued it once): the function died on it each time (docs/reconcile.md)."""

    code = "stuck_processing"


class UploadExpired(PermanentError):
    """A presigned upload's form expired and no file came: the record is ``expired`` (docs/reconcile.md)."""

    code = "upload_expired"


# Failures of the content itself, whatever the settings: the same bytes fail the same way under the
# same rendition config, so a reprocess reports them instead of enqueueing them again
# (docs/reprocess.md, "Poison"). Not the limits' codes (too_many_pixels, source_too_large: MAX_PIXELS
# and MAX_SOURCE_BYTES are not part of the config version, and raising one must retry them), nor
# timeouts, a gone source or a stuck render, which may go another way next time.
CONTENT_FAILURES = frozenset({NotAnImage.code, UnsupportedFormat.code, CorruptImage.code, TooManyScans.code})


class BadRequest(PermanentError):
    """A maintenance function's event that it cannot act on (an unknown action, a malformed item)."""

    code = "bad_request"


class TransientError(PipelineError):
    """Worth retrying: throttling, service errors, timeouts."""

    code = "transient"


class OutOfTime(TransientError):
    """The invocation has too little time left for this message; SQS delivers it again."""

    code = "out_of_time"


def public_message(message: str) -> str:
    """``message`` fit for the record (which the API returns): internals replaced by ``...``."""
    return _INTERNALS.sub("...", message)


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the field and value."""
