"""Errors as values with stable codes.

``PermanentError`` means retrying cannot help (bad input): record it and drop
the message. ``TransientError`` means the same input may succeed later
(throttling, 5xx, timeouts): let SQS deliver it again.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: ``code`` is stable and safe to show to clients."""

    code = "internal"
    permanent = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message


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


class SourceTooLarge(PermanentError):
    """The object is larger than MAX_SOURCE_BYTES; it is not downloaded."""

    code = "source_too_large"


class CorruptImage(PermanentError):
    """Truncated or undecodable data behind a valid image header."""

    code = "corrupt_image"


class SourceNotFound(PermanentError):
    """The object (or version) named by the event no longer exists."""

    code = "source_not_found"


class TransientError(PipelineError):
    """Worth retrying: throttling, service errors, timeouts."""

    code = "transient"


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the field and value."""
