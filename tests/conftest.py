"""Shared fixtures: fake credentials, moto's in-process mock, a Lambda context.

Nothing here (or in any test) can reach real AWS: credentials are fake, the
region is fixed, and any endpoint override from the developer's shell is removed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

EVENTS = Path(__file__).parent / "events"
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    """Fake credentials and a fixed region for every test."""
    for var in list(os.environ):
        if var.startswith("AWS_") or var.startswith("BOTO"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ImagePipelineTests")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "image-pipeline-tests")


@pytest.fixture
def aws(aws_credentials):
    """moto's mock_aws, started before any client exists; cached clients dropped."""
    from moto import mock_aws

    from imgpipe import aws as aws_clients

    aws_clients.reset()
    with mock_aws():
        yield
    aws_clients.reset()


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/23/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context():
    return LambdaContext()


def load_event(name: str) -> dict:
    """A sample event from tests/events/."""
    return json.loads((EVENTS / name).read_text())


def create_pipeline_resources(uploads: str, resized: str, table: str) -> None:
    """The buckets (uploads versioned) and the image table, as Terraform makes them."""
    import boto3

    s3 = boto3.client("s3")
    for bucket in (uploads, resized):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=uploads, VersioningConfiguration={"Status": "Enabled"})
    boto3.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("id", "unfinished", "unfinished_since")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "unfinished",
                "KeySchema": [
                    {"AttributeName": "unfinished", "KeyType": "HASH"},
                    {"AttributeName": "unfinished_since", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def use_emulator(emulator, monkeypatch, uploads: str, resized: str, table: str) -> None:
    """Empty the emulator, point the handlers' clients at it and create the pipeline's resources."""
    from imgpipe import aws

    emulator.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
    monkeypatch.setenv("UPLOADS_BUCKET", uploads)
    monkeypatch.setenv("RESIZED_BUCKET", resized)
    monkeypatch.setenv("TABLE_NAME", table)
    aws.reset()
    create_pipeline_resources(uploads, resized, table)


@pytest.fixture(scope="module")
def emulator():
    """A moto server on a free loopback port for the module's tests, stopped by pid after."""
    from local.emulator import running

    with running() as emu:
        yield emu


def require_terraform(what: str = "the Terraform tests") -> Path | None:
    """Skip the calling test module, at import, on a machine without terraform.

    `make test` and CI refuse to start without it (one line saying what to install), so
    this only matters to a bare `pytest`. Returns the provider mirror, or None when
    terraform init installs the pinned provider from the registry (a laptop with internet).
    """
    from local.tf import TerraformError, find_plugin_mirror, find_terraform

    if find_terraform() is None:
        pytest.skip(f"terraform is not on PATH: {what} need it", allow_module_level=True)
    try:
        return find_plugin_mirror()
    except TerraformError as exc:  # TF_PLUGIN_MIRROR names a missing directory: say so, do not download
        pytest.fail(str(exc), pytrace=False)
