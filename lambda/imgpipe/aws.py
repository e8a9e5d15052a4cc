"""boto3 clients, created lazily and cached.

Lazily, so that tests start moto's mock before any client exists; cached, so
warm invocations reuse connections. Endpoints follow boto3's own settings
(``AWS_ENDPOINT_URL`` and friends), which is how the local stack points them at
the emulator. Call ``reset()`` to drop cached clients (tests do, between mocks).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from botocore.config import Config


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
