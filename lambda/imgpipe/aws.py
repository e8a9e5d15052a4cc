"""boto3 clients, created lazily and cached, and what their errors mean to the pipeline.

Lazily, so that tests start moto's mock before any client exists; cached, so
warm invocations reuse connections. Endpoints follow boto3's own settings
(``AWS_ENDPOINT_URL`` and friends), which is how the local stack points them at
the emulator. Call ``reset()`` to drop cached clients (tests do, between mocks).

``classify`` sorts an SDK exception into the pipeline's errors
(``imgpipe.errors``): worth retrying, the original gone, or unknown; and
``classified_call`` makes a call raise those instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from botocore import exceptions as boto
from botocore.config import Config

from imgpipe.errors import PermanentError, SourceNotFound, TransientError

T = TypeVar("T")

# Error codes worth retrying, from S3 and DynamoDB.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionConflictException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
# Failures of the connection itself: the same request may well succeed again.
_TRANSIENT_EXCEPTIONS = (
    boto.ConnectionError,
    boto.HTTPClientError,
    boto.ResponseStreamingError,
    boto.IncompleteReadError,
)


def _config() -> Config:
    # Virtual-hosted S3 URLs on AWS; path-style against an emulator on loopback,
    # where bucket subdomains do not resolve.
    style = "path" if os.environ.get("AWS_ENDPOINT_URL") else "virtual"
    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
        signature_version="s3v4",
        s3={"addressing_style": style},
    )


@functools.cache
def client(service: str) -> Any:
    import boto3  # imported on first use: keeps cold-start imports small

    return boto3.session.Session().client(service, config=_config())


@functools.cache
def table(name: str) -> Any:
    import boto3

    return boto3.session.Session().resource("dynamodb", config=_config()).Table(name)


def reset() -> None:
    client.cache_clear()
    table.cache_clear()


def classify(exc: Exception, what: str) -> Exception:
    """An AWS SDK exception as a pipeline error: transient, source_not_found, or itself.

    Unknown errors (AccessDenied, NoSuchBucket, ...) come back unchanged: the
    message fails and is retried, and ends in the DLQ if it never succeeds.
    """
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in NOT_FOUND_CODES:
            return SourceNotFound(f"the original no longer exists ({code})", detail=what)
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientError(f"{what}: {code or status} ({status})")
        return exc
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return TransientError(f"{what}: {type(exc).__name__}: {exc}")
    return exc


def is_transient(exc: Exception) -> bool:
    """Whether retrying the call that raised ``exc`` may help."""
    return isinstance(classify(exc, ""), TransientError)


def classified_call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, raising its SDK errors as ``classify`` sorts them; ``what`` names the call."""
    try:
        return fn(*args, **kwargs)
    except PermanentError:
        raise
    except Exception as exc:
        err = classify(exc, what)
        if err is exc:
            raise
        raise err from exc
