"""Reprocess and reconcile end to end, in the local stack (docs/reprocess.md).

One stack (``python -m local.run``) with two tiny renditions. 1,500 small real
images and one file that is not an image are put straight into the uploads
bucket while its notification is off, so the pipeline has never seen them (no
record, no renditions: what a rendition change leaves is the same work, a
stale record instead of none). ``make reprocess``'s code (tools/reprocess.py)
runs the reprocess state machine: more keys than one ListObjectsV2 page and
than one batch are listed, planned and rendered; the non-image goes through as
a recorded failure, not a failed run (its batch succeeds: Step Functions'
ToleratedFailurePercentage counts failed child executions, AWS "Distributed
Map state"). A second run skips every current image and reports the poison
as failed with its recorded code, without sending it again.

Reconcile: an image whose S3 event never came (the bucket's notification was
off while it was stored) is rendered after one pass; a presigned upload that was
never used is ``expired`` once its form's lifetime is over.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from local import client as stack_client
from local.emulator import free_port
from local.tf import REPO_ROOT
from tests.conftest import require_terraform
from tests.images import encode, photo, photo_jpeg
from tests.test_local_stack import TEST_TF_VARS, RunningStack, start_stack
from tools import reprocess

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

require_terraform("the reprocess stack tests")

IMAGES = 1500
TINY = {"name": "tiny", "width": 16, "height": 16, "fit": "contain", "formats": ["webp"], "quality": 80}
MINI = {"name": "mini", "width": 8, "height": 8, "fit": "cover", "formats": ["webp"], "quality": 80}
TF_VARS = {
    "renditions": [TINY],
    "reprocess_batch_size": 100,
    "reprocess_max_concurrency": 4,
    "reconcile_pending_after_seconds": 5,
    "reconcile_schedule_enabled": False,  # the tests start each pass themselves
    # Not test_local_stack's 5 s timeout and 2 receives (its DLQ test): on busy cores a batch can
    # run out of time twice, and its images would go to the DLQ instead of being rendered.
    "resize_timeout_seconds": 60,
    "resize_max_receive_count": 5,
    "presign_post_expiry_seconds": 60,  # the shortest form lifetime: the unused upload expires meanwhile
}
SEED_PREFIX = "originals/seed/"
POISON_KEY = "originals/seed/zz-poison.jpg"
RENDER_TIMEOUT = 1800  # 1,500 images through the local runtime: ~1 per second on two busy shared cores
RUN_TIMEOUT = 600


@pytest.fixture(scope="module")
def lambda_zip() -> Path:
    result = subprocess.run(["make", "-s", "build/lambda.zip"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return REPO_ROOT / "build" / "lambda.zip"


class Stack:
    """The stack and what survives its restart: its state directory and ports."""

    def __init__(self, state_dir: Path):
        self.state_dir, self.moto_port, self.api_port = state_dir, free_port(), free_port()
        self.running: RunningStack | None = None
        self.unused_upload: dict | None = None

    def start(self, renditions: list[dict]) -> RunningStack:
        self.running = start_stack(
            self.state_dir, self.moto_port, self.api_port, tf_vars={**TF_VARS, "renditions": renditions}
        )
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


@pytest.fixture(scope="module")
def stack(tmp_path_factory, lambda_zip):
    holder = Stack(tmp_path_factory.mktemp("reprocess-stack"))
    holder.start([TINY, MINI])
    try:
        yield holder
    finally:
        holder.stop()


def records(running: RunningStack, prefix: str = SEED_PREFIX) -> dict[str, dict]:
    """Every image record whose original is under ``prefix``, by key (a Scan: tests only)."""
    table = running.client("dynamodb")
    found, kwargs = {}, {"TableName": running.outputs["table_name"]}
    while True:
        page = table.scan(**kwargs)
        for item in page["Items"]:
            key = item.get("original", {}).get("M", {}).get("key", {}).get("S", "")
            if key.startswith(prefix):
                found[key] = item
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def status(item: dict) -> str:
    return item["status"]["S"]


def rendition_names(item: dict) -> set[str]:
    return {r["M"]["name"]["S"] for r in item.get("renditions", {}).get("L", [])}


def wait_until(check, timeout: float, what: str, poll: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        time.sleep(poll)


def target(running: RunningStack, machine: str = "reprocess") -> reprocess.Target:
    return reprocess.Target(running.outputs[f"{machine}_state_machine_arn"], running.client, "the test stack")


def run_reprocess(running: RunningStack, **options) -> tuple[int, str, dict]:
    """``make reprocess``'s run: its exit code, what it printed, and the execution's output (what the
    machine's Summarize state summed from the map run's results)."""
    out = io.StringIO()
    code = reprocess.run(
        target(running), reprocess.execution_input(None, False, False) | options, out, poll_seconds=2
    )
    sfn = running.client("stepfunctions")
    (execution, *_) = sfn.list_executions(stateMachineArn=target(running).arn)["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    return code, out.getvalue(), json.loads(described.get("output") or "{}")


def counted(output: dict, *names: str) -> tuple:
    return tuple(output[name] for name in names)


def put_originals_without_events(running: RunningStack) -> None:
    """1,500 small real JPEGs and one file that is not an image, stored while the bucket's
    notification is off: originals the pipeline has never seen (no record, no renditions),
    as after a lost event or an import straight into the bucket."""
    s3, bucket = running.client("s3"), running.outputs["uploads_bucket_name"]
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    notification.pop("ResponseMetadata", None)
    images = [encode(photo(24 + i % 7, 18 + i % 5, seed=i), "JPEG", quality=85) for i in range(50)]

    def put(i: int) -> None:
        s3.put_object(
            Bucket=bucket, Key=f"{SEED_PREFIX}{i:04d}.jpg", Body=images[i % 50], ContentType="image/jpeg"
        )

    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, range(IMAGES)))
        s3.put_object(Bucket=bucket, Key=POISON_KEY, Body=b"this is not an image", ContentType="image/jpeg")
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notification)


def test_reprocess_renders_every_stored_original_with_the_configured_renditions(stack):
    """More keys than one ListObjectsV2 page (1,000) and than one batch (100): every one is listed,
    planned (no record: enqueued, its version read with HeadObject) and rendered. The poison is
    enqueued like any key and fails in the resize function, which records why: the run succeeds."""
    running = stack.running
    # A presigned upload nobody uses: reconcile expires it at the end, minutes after its
    # 60-second form lifetime (the conditional write checks the record's own expiry).
    created = requests.post(
        f"{running.api}/uploads",
        json={"filename": "never.jpg", "content_type": "image/jpeg", "size": 1000},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    stack.unused_upload = created.json()
    put_originals_without_events(running)
    assert records(running) == {}

    started = time.monotonic()
    code, printed, summary = run_reprocess(running)
    assert code == 0, printed
    print(f"reprocess of {IMAGES + 1} keys: {time.monotonic() - started:.0f} s\n{printed}")
    assert counted(summary, "listed", "skipped_current", "enqueued", "failed", "failed_batches") == (
        IMAGES + 1,
        0,
        IMAGES + 1,
        0,
        0,
    )
    manifest = summary["results"]["manifest"]
    assert summary["results"]["bucket"] == running.outputs["resized_bucket_name"]
    assert manifest.startswith("reprocess-results/") and manifest.endswith("/manifest.json")
    assert summary["map_run_arn"].split(":")[-1] == manifest.split("/")[1]
    assert f"listed {IMAGES + 1}, enqueued {IMAGES + 1}, skipped (current) 0, failed 0" in printed
    assert f"{IMAGES + 1}/{IMAGES + 1} keys (0 in failed batches)" in printed

    def rendered():
        found = records(running)
        finished = [item for item in found.values() if status(item) in ("done", "failed")]
        return found if len(finished) == IMAGES + 1 else None

    found = wait_until(rendered, RENDER_TIMEOUT, f"{IMAGES} originals rendered")
    print(f"{IMAGES} originals rendered {time.monotonic() - started:.0f} s after the run started")
    poison = found.pop(POISON_KEY)
    assert status(poison) == "failed" and poison["error"]["M"]["code"]["S"]
    assert {status(item) for item in found.values()} == {"done"}
    assert {frozenset(rendition_names(item)) for item in found.values()} == {frozenset({"tiny", "mini"})}
    (version,) = {item["config_version"]["S"] for item in found.values()}
    assert version


def test_a_second_reprocess_skips_every_current_image_and_reports_the_poison(stack):
    running = stack.running
    code, printed, summary = run_reprocess(running)
    assert code == 0, printed
    # The poison's record says not_an_image for this version under this config: the run reports it
    # and sends it nowhere, and succeeds (one failed key, no failed child execution).
    (poison_code,) = {item["error"]["M"]["code"]["S"] for item in records(running, POISON_KEY).values()}
    assert poison_code == "not_an_image"
    assert counted(summary, "listed", "skipped_current", "enqueued", "failed", "failed_batches") == (
        IMAGES + 1,
        IMAGES,
        0,
        1,
        0,
    )
    assert summary["failures"] == [{"key": POISON_KEY, "error_code": poison_code}]
    assert f"failed: {POISON_KEY} ({poison_code})" in printed


def test_reconcile_renders_an_image_whose_event_never_came_and_expires_an_unused_upload(stack):
    running = stack.running
    s3 = running.client("s3")
    bucket = running.outputs["uploads_bucket_name"]
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    notification.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        created = stack_client.upload_direct(running.api, photo_jpeg(40, 30), "image/jpeg", "late.jpg")
        assert created.status_code == 201, created.text
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notification)
    image_id = created.json()["id"]
    time.sleep(TF_VARS["reconcile_pending_after_seconds"] + 1)
    assert requests.get(f"{running.api}/images/{image_id}", timeout=30).json()["status"] == "pending"

    sfn = running.client("stepfunctions")
    arn = running.outputs["reconcile_state_machine_arn"]
    execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    finished = reprocess.wait(sfn, execution, poll_seconds=1, timeout_seconds=RUN_TIMEOUT)
    assert finished["status"] == "SUCCEEDED", finished
    assert json.loads(finished["output"])["next"] is None
    body = stack_client.wait_done(running.api, image_id, timeout=120)
    assert body["status"] == "done" and {r["name"] for r in body["renditions"]} == {"tiny", "mini"}

    # The unused presigned upload: expired once its own expiry has passed (a later pass).
    upload_id = stack.unused_upload["id"]
    table = running.client("dynamodb")

    def expired():
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        assert (
            reprocess.wait(sfn, execution, poll_seconds=1, timeout_seconds=RUN_TIMEOUT)["status"]
            == "SUCCEEDED"
        )
        item = table.get_item(TableName=running.outputs["table_name"], Key={"id": {"S": upload_id}})["Item"]
        return item if status(item) == "expired" else None

    item = wait_until(expired, 300, "the unused upload expired", poll=20)
    assert "unfinished" not in item  # out of the sparse index
    assert int(item["expires_at"]["N"]) > time.time()  # DynamoDB's TTL removes it later


NEW = {"name": "new", "width": 12, "height": 12, "fit": "cover", "formats": ["webp"], "quality": 80}
CHANGED_PREFIX = f"{SEED_PREFIX}000"  # ten of the rendered images: 0000.jpg .. 0009.jpg


def run_apply(stack: Stack, renditions: list[dict]) -> subprocess.CompletedProcess:
    """``make run-apply``: the running stack's own ``terraform apply`` again, with the variables it
    started with but ``renditions``, as an operator applies to a live deployment (local/live_apply.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_VAR_", "LOCAL_"))}
    tf_vars = {**TEST_TF_VARS, **TF_VARS, "renditions": renditions}
    env.update(LOCAL_STACK_DIR=str(stack.state_dir), LOCAL_TF_VARS=json.dumps(tf_vars))
    command = [sys.executable, "-m", "local.live_apply"]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def test_after_a_rendition_is_added_to_the_running_stack_reprocess_renders_it_then_skips_it(stack):
    """The operator adds a rendition with `terraform apply` to the live stack (`make run-apply`): the
    data stays, and the stored images keep their old renditions and config version until a reprocess,
    which renders exactly the stale ones under the prefix again, in functions that now run with the new
    configuration (AWS Lambda, UpdateFunctionConfiguration: once the update is Successful the function
    processes events with the new configuration); a second run finds them current. The 1,500 images
    above prove the listing and batching at scale; ten keep the re-render cheap."""
    running = stack.running
    before = records(running, CHANGED_PREFIX)
    assert len(before) == 10 and {status(item) for item in before.values()} == {"done"}
    (old_version,) = {item["config_version"]["S"] for item in before.values()}

    applied = run_apply(stack, [TINY, MINI, NEW])
    assert applied.returncode == 0, applied.stderr[-4000:]
    resize, maintenance = (running.outputs[f"{name}_function_name"] for name in ("resize", "maintenance"))
    assert "Applied to the running stack (Resources: 0 added, 2 changed, 0 destroyed.)" in applied.stdout
    assert resize in applied.stdout and maintenance in applied.stdout  # both read `renditions`
    assert records(running, CHANGED_PREFIX) == before  # nothing re-rendered by the apply itself
    assert len(records(running)) == IMAGES + 1  # and nothing lost: the same stack, its data kept

    code, printed, summary = run_reprocess(running, prefix=CHANGED_PREFIX)
    assert code == 0, printed
    assert counted(summary, "listed", "skipped_current", "enqueued", "failed") == (10, 0, 10, 0)

    def rerendered():
        found = records(running, CHANGED_PREFIX)
        done = [item for item in found.values() if status(item) == "done" and "new" in rendition_names(item)]
        return found if len(done) == 10 else None

    found = wait_until(rerendered, 300, "ten images re-rendered with the new rendition")
    assert {frozenset(rendition_names(item)) for item in found.values()} == {
        frozenset({"tiny", "mini", "new"})
    }
    (new_version,) = {item["config_version"]["S"] for item in found.values()}
    assert new_version != old_version
    # The API shows it, and the new rendition is served.
    image_id = found[f"{CHANGED_PREFIX}0.jpg"]["id"]["S"]
    body = requests.get(f"{running.api}/images/{image_id}", timeout=30).json()
    (new,) = [r for r in body["renditions"] if r["name"] == "new"]
    assert body["status"] == "done" and {r["name"] for r in body["renditions"]} == {"tiny", "mini", "new"}
    served = requests.get(new["url"], timeout=30)
    assert served.status_code == 200 and served.content[:4] == b"RIFF"  # a WebP

    code, printed, summary = run_reprocess(running, prefix=CHANGED_PREFIX)
    assert code == 0, printed
    assert counted(summary, "listed", "skipped_current", "enqueued") == (10, 10, 0)
