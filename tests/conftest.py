"""Shared fixtures: fake credentials, moto's in-process mock, a Lambda context, build/lambda.zip.

Nothing here (or in any test) can reach real AWS: credentials are fake, the
region is fixed, and any endpoint override from the developer's shell is removed.

`make test` runs the suite on several pytest-xdist workers with ``--dist
loadscope``: each module (each test class, when a module has classes) runs
whole on one worker, so a module- or session-scoped server, stack or
Terraform apply starts once per module and never once per worker. Tests that
must share one live thing belong in one module (or class); a second stack in
a module that can run beside the first goes in a class of its own (see the
JWT test in tests/test_browser.py). Ports come from
``local.emulator.free_port()`` and state from ``tmp_path``, both per worker.
Modules with slow tests are collected first, and `make test` keeps that order
(``--no-loadscope-reorder``; xdist would otherwise start the modules with most
tests first), so the long poles start first.
(Not ``--dist loadgroup``: pytest-xdist 3.8.0 marks groups through an
attribute pytest 9.2 no longer reads, so its groups are ignored.)

A test not marked ``slow`` may start no server, no terraform and no local
stack (``make test-fast`` runs only those): the hook below fails it if it does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

EVENTS = Path(__file__).parent / "events"
REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """pytest-terraform's xdist mode (on whenever xdist is installed) destroys a session fixture
    once the tests it counted are done, whatever its teardown option says, and without the
    environment the fixture applied with: the destroy fails in some later test's teardown. Each
    module that applies runs whole on one worker here (--dist loadscope), so the plain fixture
    (apply once, TEARDOWN_OFF honoured) is the right one."""
    from collections import defaultdict

    from pytest_terraform import tf
    from pytest_terraform import xdist as terraform_xdist

    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, terraform_xdist.XDistTerraform):
            config.pluginmanager.unregister(plugin)
    tf.terraform.scope_class_map = defaultdict(lambda: tf.TerraformFixture)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Modules with slow tests first (whole, each in its own order): under xdist they are the long
    poles, started first so that they run side by side while the quick modules fill the gaps."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)


# Long modules whose tests share only cheap module fixtures (an emulator, a terraform init), cut
# into this many work units under --dist loadscope so that one module runs on several workers.
SPLIT_ACROSS_WORKERS = {"tests/test_terraform_plan.py": 4}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """loadscope, except that each SPLIT_ACROSS_WORKERS module is cut into parts (a test's part
    from a hash of its id: stable, and each part still runs whole on one worker)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SplitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            parts = SPLIT_ACROSS_WORKERS.get(module)
            if parts and nodeid.count("::") == 1:
                return f"{module}::part{zlib.crc32(nodeid.encode()) % parts}"
            return super()._split_scope(nodeid)

    return SplitScheduling(config, log)


def _real(program: str) -> str | None:
    found = shutil.which(program)
    return os.path.realpath(found) if found else None


_TERRAFORMS = {path for path in (_real("terraform"), _real("tofu")) if path}


class _QuickPopen(subprocess.Popen):
    """subprocess.Popen for a test not marked slow: refuses terraform (the binary on PATH; a stand-in
    script a test writes is fine), the local stack and the emulator's server (a child on a port)."""

    def __init__(self, args, *rest, **kwargs):
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        program = _real(os.fsdecode(argv[0])) if argv else None
        if program in _TERRAFORMS or {"local.run", "local.moto_server"} & set(map(str, argv)):
            raise AssertionError(f"{argv[:3]}: a test that runs this must be marked @pytest.mark.slow")
        super().__init__(args, *rest, **kwargs)


def _refuse_listen(self, *args):
    raise AssertionError("a test that starts a server must be marked @pytest.mark.slow")


@contextlib.contextmanager
def _quick_only(item):
    """`make test-fast` runs what is not marked slow: such a test (its fixtures included) may open
    no listening socket and run no terraform and no local stack, so the mark stays honest. Setup
    and call only: a test's teardown also ends the session's fixtures when it is the last one on
    its worker (pytest-terraform's destroy of a slow module's apply, for one)."""
    if item.get_closest_marker("slow"):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "listen", _refuse_listen)
        mp.setattr(subprocess, "Popen", _QuickPopen)
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _quick_only(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _quick_only(item):
        yield


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


class _SearchPaths(list):
    """A loader's search paths, to which each boto3 Session appends its own data directory once."""

    def append(self, path):
        if path not in self:
            super().append(path)


_LOADERS: dict = {}


def _shared_loader(search_path_string=None):
    """One botocore data loader per search path for the whole test process.

    botocore reads its endpoint rules and service models (JSON, several MB) once per Session,
    and every test makes new Sessions: moto's mock_aws resets boto3's default session, and the
    functions' clients each come from a Session of their own (imgpipe.aws). One shared loader
    keeps what it read, as one Session does for all of its clients: 0.19 s to 0.05 s of CPU
    for a test's mock_aws and pipeline resources. The files are AWS's own and never change
    during a run; nothing else of a Session (credentials, region, config) is shared.
    """
    from botocore.loaders import create_loader

    if search_path_string not in _LOADERS:
        loader = create_loader(search_path_string)
        loader._search_paths = _SearchPaths(loader.search_paths)
        _LOADERS[search_path_string] = loader
    return _LOADERS[search_path_string]


def _share_botocore_data() -> None:
    import botocore.session

    botocore.session.create_loader = _shared_loader


_share_botocore_data()


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


# The pipeline's resources as the upload function's tests create them (``api``; tests/upload_api.py).
UPLOADS = "imgpipe-test-uploads"
RESIZED = "imgpipe-test-resized"
TABLE = "imgpipe-test-images"


@pytest.fixture
def api(aws, monkeypatch):
    """Buckets, table and the function's environment; returns the handler module."""
    monkeypatch.setenv("UPLOADS_BUCKET", UPLOADS)
    monkeypatch.setenv("RESIZED_BUCKET", RESIZED)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    for name in (
        "MAX_UPLOAD_BYTES",
        "MAX_PRESIGNED_BYTES",
        "PRESIGN_POST_EXPIRY_SECONDS",
        "RENDITION_URL_EXPIRY_SECONDS",
        "API_AUTH",
    ):
        monkeypatch.delenv(name, raising=False)
    create_pipeline_resources(UPLOADS, RESIZED, TABLE)
    import upload_handler

    upload_handler.settings.cache_clear()
    yield upload_handler
    upload_handler.settings.cache_clear()


@pytest.fixture
def call(api, lambda_context):
    """Invoke the handler; returns (status, headers, decoded JSON body)."""

    def invoke(event: dict) -> tuple[int, dict, dict]:
        response = api.handler(event, lambda_context)
        assert response["isBase64Encoded"] is False
        return response["statusCode"], response["headers"], json.loads(response["body"])

    return invoke


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
