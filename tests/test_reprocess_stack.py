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

A rendition change: ``make run-apply`` adds a rendition to the running stack
(its data kept, ``stack.json`` showing Terraform's outputs after the apply);
reprocess under a ten-key prefix renders exactly those ten again, then over the
whole seed prefix every other stored image (and the poison, tried once more
under the new config version), and every one of the 1,500 ends ``done`` with
the new rendition and the new config version; a second run skips them all and
reports the poison.

Affordable: the resize mapping takes batches of 10 (the most without a batching
window), and the tests wait for the resize queue to drain (GetQueueAttributes)
before they Scan the table: a Scan of 1,500 records costs the emulator seconds
of CPU, and polling with one every 3 s was most of the render's time.

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
from local.tf import REPO_ROOT, state_outputs
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
    # The mapping's batch: 10, the most SQS ReceiveMessage returns and the most the module
    # allows without a batching window (variables.tf): half the invocations of the default 5.
    "resize_batch_size": 10,
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


def cpu_seconds(running: RunningStack) -> float:
    """CPU time so far of the stack's processes (the emulator, the runtime, each environment and its
    render child, with the children they reaped) and of this test process (the client side)."""
    total = 0.0
    for pid in {os.getpid(), running.process.pid, *running.descendants()}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


class Cost:
    """Wall and CPU time from now, per image: what the module's render phases cost."""

    def __init__(self, running: RunningStack) -> None:
        self.running = running
        self.wall, self.cpu = time.monotonic(), cpu_seconds(running)

    def report(self, what: str, images: int) -> str:
        wall, cpu = time.monotonic() - self.wall, cpu_seconds(self.running) - self.cpu
        return (
            f"{what}: {images} images in {wall:.0f} s, {cpu:.0f} s CPU:"
            f" {wall * 1000 / images:.0f} ms wall, {cpu * 1000 / images:.0f} ms CPU per image"
        )


def drained(running: RunningStack) -> bool:
    """The resize queue holds no message, visible, in flight or delayed (GetQueueAttributes: cheap,
    where a Scan of 1,500 records costs the emulator seconds): every message sent so far has been
    handled and deleted, and a message is deleted only after its record is written."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    attributes = running.client("sqs").get_queue_attributes(
        QueueUrl=running.outputs["queue_url"], AttributeNames=names
    )["Attributes"]
    return all(int(attributes.get(name, 0)) == 0 for name in names)


def when_drained(running: RunningStack, check):
    """``check``, run only once the resize queue is drained (see ``drained``)."""
    return lambda: check() if drained(running) else None


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

    started, cost = time.monotonic(), Cost(running)
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

    found = wait_until(
        when_drained(running, rendered), RENDER_TIMEOUT, f"{IMAGES} originals rendered", poll=2
    )
    print(f"{IMAGES} originals rendered {time.monotonic() - started:.0f} s after the run started")
    print(cost.report("first render, from the run's start", IMAGES + 1))
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


def test_after_a_rendition_is_added_to_the_running_stack_reprocess_renders_every_image_then_skips_them(
    stack,
):
    """The operator adds a rendition with `terraform apply` to the live stack (`make run-apply`): the
    data stays, and the stored images keep their old renditions and config version until a reprocess,
    which renders the stale ones again, in functions that now run with the new configuration (AWS
    Lambda, UpdateFunctionConfiguration: once the update is Successful the function processes events
    with the new configuration). First under a ten-key prefix (only those ten are listed and sent),
    then over every stored original: all 1,500 end done with the new rendition and config version,
    and a second run finds them current and reports the poison."""
    running = stack.running
    before = records(running)
    assert len(before) == IMAGES + 1
    changed = {key: item for key, item in before.items() if key.startswith(CHANGED_PREFIX)}
    assert len(changed) == 10 and {status(item) for item in changed.values()} == {"done"}
    (old_version,) = {item["config_version"]["S"] for item in changed.values()}

    applied = run_apply(stack, [TINY, MINI, NEW])
    assert applied.returncode == 0, applied.stderr[-4000:]
    resize, maintenance = (running.outputs[f"{name}_function_name"] for name in ("resize", "maintenance"))
    assert "Applied to the running stack (Resources: 0 added, 2 changed, 0 destroyed.)" in applied.stdout
    assert resize in applied.stdout and maintenance in applied.stdout  # both read `renditions`
    # stack.json (what `make reprocess`, `make demo` and local.client read) shows Terraform's
    # outputs after the apply, as `terraform output` gives them from the stack's state.
    described = stack_client.find_running(stack.state_dir)
    assert described["outputs"] == state_outputs(stack.state_dir / "terraform" / "terraform.tfstate")
    assert described["outputs"]["reprocess_state_machine_arn"] == target(running).arn
    # Nothing re-rendered by the apply itself, and nothing lost: the same stack, its data kept.
    assert records(running) == before

    code, printed, summary = run_reprocess(running, prefix=CHANGED_PREFIX)
    assert code == 0, printed
    assert counted(summary, "listed", "skipped_current", "enqueued", "failed") == (10, 0, 10, 0)

    def rerendered(prefix: str, count: int):
        def check():
            found = records(running)
            done = [
                item
                for key, item in found.items()
                if key.startswith(prefix) and status(item) == "done" and "new" in rendition_names(item)
            ]
            return found if len(done) == count else None

        return when_drained(running, check)

    found = wait_until(rerendered(CHANGED_PREFIX, 10), 300, "ten images re-rendered with the new rendition")
    ten = {key: item for key, item in found.items() if key.startswith(CHANGED_PREFIX)}
    assert {frozenset(rendition_names(item)) for item in ten.values()} == {frozenset({"tiny", "mini", "new"})}
    (new_version,) = {item["config_version"]["S"] for item in ten.values()}
    assert new_version != old_version
    # Only those ten: every other image still shows the old configuration.
    others = {key: item for key, item in found.items() if not key.startswith(CHANGED_PREFIX)}
    assert others == {key: item for key, item in before.items() if not key.startswith(CHANGED_PREFIX)}

    # Every stored original. The ten are current; the poison is sent again: its not_an_image was
    # recorded under the old config version, and the plan reports a poison only for the current
    # one (imgpipe.reprocess.poisoned; docs/config-version.md: "A new rendition config tries every
    # poison again too"), so it is enqueued with the 1,490 stale images.
    started, cost = time.monotonic(), Cost(running)
    code, printed, summary = run_reprocess(running, prefix=SEED_PREFIX)
    assert code == 0, printed
    assert counted(summary, "listed", "skipped_current", "enqueued", "failed", "failed_batches") == (
        IMAGES + 1,
        10,
        IMAGES - 10 + 1,
        0,
        0,
    )
    found = wait_until(
        rerendered(SEED_PREFIX, IMAGES),
        RENDER_TIMEOUT,
        f"{IMAGES} images re-rendered with the new rendition",
        2,
    )
    print(f"{IMAGES - 10} images re-rendered {time.monotonic() - started:.0f} s after the run started")
    print(cost.report("re-render of every stale image, from the run's start", IMAGES - 10 + 1))
    poison = found.pop(POISON_KEY)
    # Tried under the new configuration, it fails the same way, recorded under the new version.
    assert status(poison) == "failed" and poison["error"]["M"]["code"]["S"] == "not_an_image"
    assert poison["config_version"]["S"] == new_version
    assert len(found) == IMAGES and {status(item) for item in found.values()} == {"done"}
    assert {frozenset(rendition_names(item)) for item in found.values()} == {
        frozenset({"tiny", "mini", "new"})
    }
    assert {item["config_version"]["S"] for item in found.values()} == {new_version}
    # The API shows it, and the new rendition is served.
    image_id = found[f"{SEED_PREFIX}1234.jpg"]["id"]["S"]
    body = requests.get(f"{running.api}/images/{image_id}", timeout=30).json()
    (new,) = [r for r in body["renditions"] if r["name"] == "new"]
    assert body["status"] == "done" and {r["name"] for r in body["renditions"]} == {"tiny", "mini", "new"}
    served = requests.get(new["url"], timeout=30)
    assert served.status_code == 200 and served.content[:4] == b"RIFF"  # a WebP

    # A second run: every image current, the poison reported (now under this config version)
    # and sent nowhere.
    code, printed, summary = run_reprocess(running, prefix=SEED_PREFIX)
    assert code == 0, printed
    assert counted(summary, "listed", "skipped_current", "enqueued", "failed", "failed_batches") == (
        IMAGES + 1,
        IMAGES,
        0,
        1,
        0,
    )
    assert summary["failures"] == [{"key": POISON_KEY, "error_code": "not_an_image"}]
    assert f"failed: {POISON_KEY} (not_an_image)" in printed
