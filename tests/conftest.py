"""Shared fixtures: fake credentials, moto's in-process mock, a Lambda context, build/lambda.zip.

Nothing here (or in any test) can reach real AWS: credentials are fake, the
region is fixed, and any endpoint override from the developer's shell is removed.

`make test` runs the suite on several pytest-xdist workers (``--dist loadgroup``).
A test that starts nothing is sent to whichever worker is free. Every test
marked ``slow`` is kept on one worker with the rest of its module (an
``xdist_group`` named after the module, added below), so a module- or
session-scoped server, stack or Terraform apply is started once, not once per
worker; a module that declares its own ``xdist_group`` keeps it. Ports come
from ``local.emulator.free_port()`` and state from ``tmp_path``, both per
worker, so groups on different workers never share either.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

EVENTS = Path(__file__).parent / "events"
REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Group each slow test with its module for ``--dist loadgroup``; modules with slow tests first.

    The slow modules are the long poles (a stack or an apply each): started first, they run side by
    side while the quick tests fill the gaps. Each module stays whole and in its own order.
    """
    slow_modules = set()
    for item in items:
        if item.get_closest_marker("slow"):
            slow_modules.add(item.module.__name__)
            if not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(item.module.__name__.rsplit(".", 1)[-1]))
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: order kept within


@pytest.fixture(scope="session")
def lambda_zip() -> Path:
    """build/lambda.zip through the Makefile's file target (rebuilt only when stale).

    Several xdist workers may ask at once: a lock file lets one run make while the others wait.
    """
    build = REPO_ROOT / "build"
    build.mkdir(exist_ok=True)
    with (build / ".lambda-zip.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["make", "-s", "build/lambda.zip"], cwd=REPO_ROOT, capture_output=True, text=True
        )
    assert result.returncode == 0, result.stderr
    return build / "lambda.zip"


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
