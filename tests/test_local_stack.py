"""`make run` for real: the local stack started as a subprocess, used over HTTP and S3, stopped.

One stack per session (``python -m local.run`` on free ports, its own state
directory, a short function timeout and maxReceiveCount 2 through
LOCAL_TF_VARS so the dead-letter path takes seconds, not minutes). Uploads go
through the HTTP front (direct and presigned), a direct S3 put with an awkward
key goes through the bucket notification, a poison message goes round until the
queue's redrive moves it to the DLQ; every rendition is downloaded and checked.
The last test stops the stack with SIGINT and checks that no process and no
port is left.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus, urlsplit

import pytest
import requests
from botocore.exceptions import ClientError
from PIL import Image

from imgpipe import keys
from local import client as stack_client
from local.emulator import client as emulator_client
from local.emulator import free_port, lambda_credentials, port_open
from local.tf import REPO_ROOT
from tests.conftest import require_terraform
from tests.images import photo_jpeg, rgba_png

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

require_terraform("the local stack tests")

DEFAULTS = json.loads((REPO_ROOT / "lambda/imgpipe/default_renditions.json").read_text())
MAX_RECEIVE_COUNT = 2
# events_queue_enabled: the tests read the completion events from the rule's queue (docs/events.md).
TEST_TF_VARS = {
    "resize_timeout_seconds": 5,
    "resize_max_receive_count": MAX_RECEIVE_COUNT,
    "events_queue_enabled": True,
}
START_TIMEOUT = 600  # terraform apply against the emulator: ~90 s here, more on a loaded machine
DONE_TIMEOUT = 120
MAGIC = {"jpeg": b"\xff\xd8\xff", "webp": b"RIFF", "avif": b"ftyp"}


@dataclass
class RunningStack(stack_client.StackProcess):
    """The stack ``local.client.start`` started, with what the tests ask of it."""

    events: list = field(default_factory=list)  # every completion event read from the queue so far

    def client(self, service: str):
        """As the stack's administrator: the emulator enforces IAM (docs/local-stack-iam.md)."""
        return emulator_client(self.endpoint, service, self.description.get("credentials"))

    def descendants(self) -> set[int]:
        """Every live process below the stack's own (from /proc, whatever their group)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = set(), {self.process.pid}
        while frontier:
            children = {pid for pid, ppid in parents.items() if ppid in frontier}
            found |= children
            frontier = children
        return found


# Started the way a shell starts a background job (SIGINT ignored), so the
# SIGINT at the end checks that the stack installs its own handler.
BACKGROUND_JOB = 'trap "" INT; exec "$0" -m local.run'


def start_stack(
    state_dir: Path,
    moto_port: int,
    api_port: int,
    command: str = BACKGROUND_JOB,
    tf_vars: dict | None = None,
    **extra_env: str,
) -> RunningStack:
    """``python -m local.run`` as `make run` starts it (``command``: the shell line that runs it,
    ``$0`` being this Python; ``tf_vars``: more Terraform variables), waited for until it prints
    its banner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_VAR_", "LOCAL_"))}
    env.update(
        LOCAL_TF_VARS=json.dumps({**TEST_TF_VARS, **(tf_vars or {})}),
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    argv = ["/bin/sh", "-c", command, sys.executable]
    try:
        started = stack_client.start(
            state_dir, moto_port, api_port, argv=argv, env=env, timeout=START_TIMEOUT
        )
    except stack_client.StackNotReady as exc:
        pytest.fail(str(exc))
    return RunningStack(started.process, started.log, moto_port, api_port, started.description)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, lambda_zip):
    state_dir = tmp_path_factory.mktemp("local-stack")
    running = start_stack(state_dir, free_port(), free_port())
    try:
        yield running
    finally:
        running.stop()


def wait_for(stack: RunningStack, image_id: str, *, unknown_at_first: bool = False) -> dict:
    """Poll GET /images/{id} until done or failed (a direct S3 put has no record until resized)."""
    try:
        return stack_client.wait_done(
            stack.api, image_id, timeout=DONE_TIMEOUT, unknown_at_first=unknown_at_first
        )
    except (TimeoutError, RuntimeError) as exc:
        pytest.fail(str(exc))


def check_renditions(stack: RunningStack, body: dict, source_size: tuple[int, int]) -> None:
    """Every configured rendition exists, downloads through the local CDN and is what it claims."""
    assert body["status"] == "done", body.get("error")
    got = {(r["name"], r["format"]) for r in body["renditions"]}
    assert got == {(d["name"], f) for d in DEFAULTS for f in d["formats"]}
    boxes = {d["name"]: d for d in DEFAULTS}
    for rendition in body["renditions"]:
        url = rendition["url"]
        # {CDN_BASE_URL}/{key}: the shape of https://<distribution>/<key> on AWS (docs/cdn.md)
        assert url.startswith(f"{stack.api}/cdn/{body['id']}/"), url
        response = requests.get(url, timeout=30)
        assert response.status_code == 200, (rendition["name"], response.text[:300])
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["Content-Type"] == f"image/{rendition['format']}"
        data = response.content
        assert len(data) == rendition["bytes"]
        assert MAGIC[rendition["format"]] in data[:12]
        if rendition["format"] == "webp":
            assert data[8:12] == b"WEBP"
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            assert im.size == (rendition["width"], rendition["height"])
        box = boxes[rendition["name"]]
        if box["fit"] == "cover":
            expected = (min(box["width"], source_size[0]), min(box["height"], source_size[1]))
            assert im.size == expected
        else:
            assert im.width <= box["width"] and im.height <= box["height"]
            assert max(im.width / box["width"], im.height / box["height"]) > 0.99 or im.size == source_size
            ratio = source_size[0] / source_size[1]
            assert abs(im.width / im.height - ratio) < 0.02  # aspect kept


def test_stack_prints_where_it_listens_and_binds_loopback_only(stack):
    text = stack.log.read_text()
    assert f"API       {stack.api}" in text
    assert f"Emulator  {stack.endpoint}" in text
    curl = "curl -sS -X POST \"$API/images\" -H 'Content-Type: image/jpeg' --data-binary @examples/photo.jpg"
    assert curl in text
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.rsplit(":", 1)
                listening.add((address, int(port, 16)))
    ours = {(a, p) for a, p in listening if p in (stack.moto_port, stack.api_port)}
    assert ours == {("0100007F", stack.moto_port), ("0100007F", stack.api_port)}  # 127.0.0.1 only


def test_the_apply_sent_no_call_twice(stack):
    """The AWS provider's SDK sends a call again only when an attempt failed or its answer was lost
    (the emulator throttles nothing), and a create sent twice fails as a duplicate (CloudFront's
    DistributionAlreadyExists for a reused CallerReference). The emulator logs every such second
    attempt (local/moto_server.py); the cold apply that started this stack made none."""
    log = (stack.log.parent / "moto.log").read_text()
    assert "of that call by terraform-provider-aws" not in log, log[-3000:]


def test_the_banner_prints_the_cdn_and_the_cdn_serves_renditions_as_cloudfront_would(stack):
    """GET and HEAD only (CloudFront answers a method the behaviour does not allow with 403), the
    object's headers, 304 for a matching If-None-Match, and 403 for a missing key: the bucket
    policy grants CloudFront s3:GetObject without s3:ListBucket, and S3 then answers 403."""
    cdn = f"{stack.api}/cdn"
    assert f"CDN       {cdn}/<key>" in stack.log.read_text()
    assert stack.description["cdn_url"] == cdn
    created = requests.post(
        f"{stack.api}/images", data=photo_jpeg(640, 480), headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert created.status_code == 201, created.text
    body = wait_for(stack, created.json()["id"])
    thumb = next(r for r in body["renditions"] if r["name"] == "thumb" and r["format"] == "webp")
    key = thumb["url"].removeprefix(f"{cdn}/")
    stored = stack.client("s3").get_object(Bucket=stack.outputs["resized_bucket_name"], Key=key)
    fetched = requests.get(thumb["url"], timeout=30)
    assert fetched.status_code == 200 and fetched.content == stored["Body"].read()
    assert (fetched.headers["Content-Type"], fetched.headers["ETag"]) == ("image/webp", stored["ETag"])
    head = requests.head(thumb["url"], timeout=30)
    assert head.status_code == 200 and head.content == b""
    again = requests.get(thumb["url"], headers={"If-None-Match": stored["ETag"]}, timeout=30)
    assert again.status_code == 304 and again.content == b""
    assert requests.put(thumb["url"], data=b"x", timeout=30).status_code == 403
    assert requests.get(f"{cdn}/{body['id']}/nothing/here.webp", timeout=30).status_code == 403


def _example(stack: RunningStack, script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """One of examples/*.sh, run as docs/api.md shows it: API in the environment, from the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [f"examples/{script}", *args],
        cwd=REPO_ROOT,
        env={**env, "API": stack.api},
        capture_output=True,
        text=True,
        timeout=DONE_TIMEOUT + 30,
        check=check,
    )


def test_the_example_scripts_upload_wait_download_and_delete_as_documented(stack, tmp_path):
    """examples/*.sh are the API's curl recipes (docs/api.md): each route, used as a client would."""
    photo = str(REPO_ROOT / "examples" / "photo.jpg")
    ids = [_example(stack, name, photo).stdout.strip() for name in ("upload.sh", "upload-form.sh")]
    ids.append(_example(stack, "upload-presigned.sh", photo).stdout.strip())
    assert len(set(ids)) == 3 and all(ids), ids
    for image_id in ids:
        record = json.loads(_example(stack, "wait.sh", image_id).stdout)
        check_renditions(stack, record, (451, 300))  # photo.jpg upright (EXIF orientation 6)
    out = tmp_path / "thumb.webp"
    _example(stack, "download.sh", ids[0], "thumb", "webp", str(out))
    with Image.open(out) as im:
        assert im.format == "WEBP"
    _example(stack, "delete.sh", ids[0])
    gone = _example(stack, "wait.sh", ids[0], check=False)
    assert gone.returncode != 0 and "HTTP 404" in gone.stderr and '"not_found"' in gone.stderr


def test_an_example_script_shows_the_apis_error_and_fails(stack, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all\n")
    result = _example(stack, "upload.sh", str(text), check=False)
    assert result.returncode != 0 and result.stdout == ""
    assert "HTTP 415" in result.stderr and "unsupported_media_type" in result.stderr
    assert "API=" not in result.stderr  # the error is the API's, not a usage message


def test_direct_upload_through_the_front_gets_every_rendition(stack):
    data = photo_jpeg(1200, 900)
    response = stack_client.upload_direct(stack.api, data, "image/jpeg", "holiday.jpg")
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"/images/{created['id']}"
    assert created["status"] == "pending" and created["original"]["filename"] == "holiday.jpg"
    body = wait_for(stack, created["id"])
    check_renditions(stack, body, (1200, 900))
    assert body["original"]["width"] == 1200 and body["original"]["format"] == "jpeg"


def test_presigned_upload_posts_the_form_to_the_emulator(stack):
    data = rgba_png((900, 600))
    response, form = stack_client.upload_presigned(stack.api, data, "image/png", "diagram.png")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "awaiting_upload"
    upload = created["upload"]
    assert urlsplit(upload["url"]).netloc == f"127.0.0.1:{stack.moto_port}"
    assert form.status_code in (200, 201, 204), form.text
    body = wait_for(stack, created["id"])
    check_renditions(stack, body, (900, 600))
    assert body["original"]["format"] == "png"


def test_make_demo_finds_the_running_stack_and_shows_both_uploads_done(stack):
    # local.client finds the stack through its stack.json (its process alive), as `make demo` does.
    state_dir = stack.log.parent
    assert stack_client.find_running(state_dir)["api_url"] == stack.api
    env = {k: v for k, v in os.environ.items() if k not in ("API", "API_PORT")}
    env.update(
        LOCAL_STACK_DIR=str(state_dir),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "lambda"), str(REPO_ROOT)]),
    )
    result = subprocess.run(
        [sys.executable, "-m", "local.demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"API {stack.api}" in result.stdout
    for label in ("direct upload", "presigned upload"):
        assert re.search(rf"^{label}: \S+ is done \(original 2400x1600 jpeg\)$", result.stdout, re.M), (
            result.stdout
        )


def test_direct_s3_put_with_an_awkward_key_is_processed(stack):
    key = "photos/2024/My Cat+1 ü%.jpg"
    s3 = stack.client("s3")
    s3.put_object(
        Bucket=stack.outputs["uploads_bucket_name"],
        Key=key,
        Body=photo_jpeg(640, 480),
        ContentType="image/jpeg",
    )
    image_id = direct_upload_id(stack, key)
    assert keys.is_valid_id(image_id)
    assert image_id != base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode()[:22]
    body = wait_for(stack, image_id)
    check_renditions(stack, body, (640, 480))
    assert body["original"]["key"] == key


def completion_events(stack: RunningStack, image_ids: set[str], settle: float = 3.0) -> dict[str, list[dict]]:
    """The completion events of ``image_ids``, read from the rule's queue as a backend does: until each
    has one, then ``settle`` seconds more, so that a second event would be seen too."""
    sqs, url = stack.client("sqs"), stack.outputs["events_queue_url"]
    deadline, quiet_until = time.monotonic() + DONE_TIMEOUT, None
    while True:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in received.get("Messages", []):
            stack.events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        got: dict[str, list[dict]] = {i: [] for i in image_ids}
        for event in stack.events:
            if event["detail"]["image_id"] in got:
                got[event["detail"]["image_id"]].append(event)
        if quiet_until is None and all(got.values()):
            quiet_until = time.monotonic() + settle
        if quiet_until is not None and time.monotonic() >= quiet_until:
            return got
        missing = sorted(i for i, found in got.items() if not found)
        assert time.monotonic() < deadline, f"no completion event for {missing} after {DONE_TIMEOUT} s"


def test_each_image_publishes_one_completion_event_that_a_backend_reads_from_the_rules_queue(stack):
    # EventBridge delivers a rule's matching events to its SQS target (moto 5.2.5 too); the resize
    # function publishes one per image, after its renditions and record are written.
    response = requests.post(
        f"{stack.api}/images", data=photo_jpeg(800, 600), headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert response.status_code == 201, response.text
    done_id = response.json()["id"]
    uploads = stack.outputs["uploads_bucket_name"]
    stack.client("s3").put_object(Bucket=uploads, Key="events/broken.jpg", Body=b"not an image at all")
    failed_id = direct_upload_id(stack, "events/broken.jpg")
    body = wait_for(stack, done_id)
    assert wait_for(stack, failed_id)["status"] == "failed"

    got = completion_events(stack, {done_id, failed_id})
    (done,), (failed,) = got[done_id], got[failed_id]
    assert (done["source"], done["detail-type"]) == ("imgpipe", "Image Processed")
    assert done["detail"]["source"]["bucket"] == uploads and done["detail"]["source"]["width"] == 800
    listed = {r["key"]: r["bytes"] for r in record_renditions(stack, done_id)}
    assert {r["key"]: r["bytes"] for r in done["detail"]["renditions"]} == listed
    assert {r["name"] for r in done["detail"]["renditions"]} == {r["name"] for r in body["renditions"]}
    for rendition in done["detail"]["renditions"]:  # presigned by the resize role, against the emulator
        fetched = requests.get(rendition["url"], timeout=30)
        assert fetched.status_code == 200 and len(fetched.content) == rendition["bytes"]
    assert failed["detail-type"] == "Image Failed"
    assert failed["detail"]["error"]["code"] == "not_an_image" and failed["detail"]["renditions"] == []
    # make run shows each event in its log (without the presigned URLs).
    logged = [json.loads(line) for line in stack.log.read_text().splitlines() if '"event published"' in line]
    assert {line["event_id"] for line in logged} >= {done["id"], failed["id"]}


def record_renditions(stack: RunningStack, image_id: str) -> list[dict]:
    table = stack.client("dynamodb")
    item = table.get_item(TableName=stack.outputs["table_name"], Key={"id": {"S": image_id}})["Item"]
    return [
        {k: (v["S"] if "S" in v else int(v["N"])) for k, v in r["M"].items()} for r in item["renditions"]["L"]
    ]


def direct_upload_id(stack: RunningStack, key: str) -> str:
    """A direct upload's id, keyed by the deployment's secret (docs/ids.md): found through its record."""
    deadline = time.monotonic() + DONE_TIMEOUT
    while not (record := record_of(stack, key)):
        assert time.monotonic() < deadline, f"no record for {key!r} after {DONE_TIMEOUT} s"
        time.sleep(0.5)
    return record["id"]["S"]


def wait_until_deleted(stack: RunningStack, image_id: str) -> None:
    """Poll until GET /images/{id} is 404 and the resized bucket holds nothing under the id."""
    resized = stack.outputs["resized_bucket_name"]
    deadline = time.monotonic() + DONE_TIMEOUT
    while True:
        status = requests.get(f"{stack.api}/images/{image_id}", timeout=30).status_code
        left = stack.client("s3").list_objects_v2(Bucket=resized, Prefix=f"{image_id}/").get("KeyCount")
        if status == 404 and left == 0:
            return
        assert time.monotonic() < deadline, f"{image_id}: GET {status}, {left} renditions left"
        time.sleep(0.5)


def test_delete_through_the_api_removes_the_original_and_its_renditions(stack):
    response = requests.post(
        f"{stack.api}/images?filename=short-lived.jpg",
        data=photo_jpeg(800, 600),
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    image_id = response.json()["id"]
    key = response.json()["original"]["key"]
    check_renditions(stack, wait_for(stack, image_id), (800, 600))

    deleted = requests.delete(f"{stack.api}/images/{image_id}", timeout=30)

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    gone = requests.get(f"{stack.api}/images/{image_id}", timeout=30)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    # Every version removed by id, so nothing is left to restore (no delete marker either).
    listed = stack.client("s3").list_object_versions(Bucket=stack.outputs["uploads_bucket_name"], Prefix=key)
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")
    # S3's ObjectRemoved:Delete reaches the resize function, which deletes the renditions.
    wait_until_deleted(stack, image_id)
    assert record_of(stack, key)["status"]["S"] == "deleted"
    assert requests.delete(f"{stack.api}/images/{image_id}", timeout=30).status_code == 404


def test_a_delete_in_the_bucket_removes_a_direct_uploads_renditions(stack):
    key = f"direct/{uuid.uuid4().hex}.jpg"
    s3, uploads = stack.client("s3"), stack.outputs["uploads_bucket_name"]
    s3.put_object(Bucket=uploads, Key=key, Body=photo_jpeg(640, 480), ContentType="image/jpeg")
    image_id = direct_upload_id(stack, key)
    check_renditions(stack, wait_for(stack, image_id), (640, 480))

    assert s3.delete_object(Bucket=uploads, Key=key)["DeleteMarker"]  # a plain DELETE: a delete marker

    wait_until_deleted(stack, image_id)
    assert record_of(stack, key)["status"]["S"] == "deleted"


def test_a_message_that_always_fails_ends_in_the_dlq_after_max_receive_count(stack):
    sqs = stack.client("sqs")
    poison = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {
                        "name": "no-such-bucket-anywhere",
                        "arn": "arn:aws:s3:::no-such-bucket-anywhere",
                    },
                    "object": {"key": "ghost.jpg", "size": 1234},
                },
            }
        ]
    }
    sent = sqs.send_message(QueueUrl=stack.outputs["queue_url"], MessageBody=json.dumps(poison))
    deadline = time.monotonic() + 180
    moved = []
    while not moved:
        assert time.monotonic() < deadline, "the poison message never reached the DLQ"
        moved = sqs.receive_message(
            QueueUrl=stack.outputs["dlq_url"], MessageSystemAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
    assert [m["MessageId"] for m in moved] == [sent["MessageId"]]
    assert json.loads(moved[0]["Body"]) == poison
    # Delivered maxReceiveCount times by the poller, then moved on the next receive.
    assert int(moved[0]["Attributes"]["ApproximateReceiveCount"]) > MAX_RECEIVE_COUNT
    assert stack.log.read_text().count(sent["MessageId"]) >= MAX_RECEIVE_COUNT


def test_front_speaks_api_gateway_errors(stack):
    malformed = requests.get(f"{stack.api}/images/not-an-id", timeout=30)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "bad_request"
    unknown_route = requests.get(f"{stack.api}/nothing/here", timeout=30)
    assert unknown_route.status_code == 404 and unknown_route.json() == {"message": "Not Found"}
    too_big = requests.post(
        f"{stack.api}/images",
        data=b"\xff" * (10 * 1024 * 1024 + 1),
        headers={"Content-Type": "image/jpeg"},
        timeout=60,
    )
    assert too_big.status_code == 413


# -- IAM as AWS enforces it (docs/local-stack-iam.md) ------------------------------

# Granted actions a local run cannot call, and why; every other grant must be called.
NOT_SEEN_LOCALLY = {
    "logs:CreateLogStream": "Lambda's runtime writes the logs with the role; the local runtime prints them",
    "logs:PutLogEvents": "Lambda's runtime writes the logs with the role; the local runtime prints them",
    "sqs:GetQueueAttributes": "Lambda's event source mapping reads queue attributes; the stack does, once",
    "s3:GetObjectVersion": "called only for S3 events that carry a versionId (moto's own carry none)",
    "dynamodb:DeleteItem": "the upload function removes its record only when storing the original fails",
}


def function_role(stack: RunningStack, function: str) -> tuple[str, str]:
    """The function's execution role (name, ARN), from its configuration as Lambda reads it."""
    arn = stack.client("lambda").get_function_configuration(FunctionName=function)["Role"]
    return arn.rsplit("/", 1)[-1], arn


def role_without(stack: RunningStack, function: str, sid: str) -> str:
    """A copy of the function's Terraform-declared role without statement ``sid``; its ARN."""
    iam = stack.client("iam")
    name, _ = function_role(stack, function)
    copy = f"{name}-no-{sid}"[:64]
    trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    try:
        arn = iam.create_role(
            RoleName=copy, AssumeRolePolicyDocument=trust if isinstance(trust, str) else json.dumps(trust)
        )["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=copy)["Role"]["Arn"]
    removed = 0
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        kept = [s for s in document["Statement"] if s.get("Sid") != sid]
        removed += len(document["Statement"]) - len(kept)
        iam.put_role_policy(
            RoleName=copy, PolicyName=policy, PolicyDocument=json.dumps({**document, "Statement": kept})
        )
    assert removed == 1, f"{name} has no statement {sid}"
    return arn


def s3_record(bucket: str, key: str) -> dict:
    """The SQS record S3 sends for a new object (no versionId, as the emulator sends it)."""
    template = json.loads((REPO_ROOT / "tests/events/s3_put_sqs.json").read_text())["Records"][0]
    body = json.loads(template["body"])
    s3 = body["Records"][0]["s3"]
    s3["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    s3["object"].update(key=quote_plus(key), size=1234)
    s3["object"].pop("versionId", None)
    return {**template, "messageId": str(uuid.uuid4()), "body": json.dumps(body)}


def iam_calls(stack: RunningStack) -> list[dict]:
    return requests.get(f"{stack.endpoint}/_local/iam/calls", timeout=30).json()["calls"]


def role_of(principal: str) -> str:
    """The role name of an assumed-role principal ARN (``...:assumed-role/NAME/session``), else ''."""
    return principal.split(":assumed-role/", 1)[1].split("/", 1)[0] if ":assumed-role/" in principal else ""


@pytest.fixture
def as_resize(stack, monkeypatch):
    """The resize handler in this process, configured as deployed, with a role's credentials."""
    import resize_handler
    from imgpipe import aws

    function = stack.outputs["resize_function_name"]
    deployed = stack.client("lambda").get_function_configuration(FunctionName=function)
    variables = deployed["Environment"]["Variables"]

    def use(role_arn: str, **env: str):
        keys_ = lambda_credentials(stack.endpoint, role_arn, function)
        credentials = {
            k: keys_[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        }
        for name, value in {**variables, **env, **credentials, "AWS_ENDPOINT_URL": stack.endpoint}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
        aws.reset()
        resize_handler.reset()
        return resize_handler

    yield use
    aws.reset()
    resize_handler.reset()


def record_of(stack: RunningStack, key: str) -> dict:
    """The record whose original is ``key``, or ``{}``: read as the administrator, who may scan."""
    pages = (
        stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.outputs["table_name"],
            ConsistentRead=True,
            FilterExpression="#original.#key = :key",
            ExpressionAttributeNames={"#original": "original", "#key": "key"},
            ExpressionAttributeValues={":key": {"S": key}},
        )
    )
    items = [item for page in pages for item in page["Items"]]
    assert len(items) <= 1, items
    return items[0] if items else {}


def test_the_declared_resize_role_tells_a_missing_original_from_a_forbidden_one(stack, as_resize):
    # AWS GetObject: "If you don't have the s3:ListBucket permission, Amazon S3 returns an HTTP status
    # code 403 ('access denied') error"; with it, 404. The ListOriginals statement makes source_not_found
    # possible on AWS; without it the message is retried into the DLQ (issue 11, finding 2.1).
    from tests.conftest import LambdaContext

    function, uploads = stack.outputs["resize_function_name"], stack.outputs["uploads_bucket_name"]
    handler = as_resize(function_role(stack, function)[1])
    gone = f"gone/{uuid.uuid4().hex}.jpg"
    assert handler.handler({"Records": [s3_record(uploads, gone)]}, LambdaContext()) == {
        "batchItemFailures": []
    }
    assert record_of(stack, gone)["error"]["M"]["code"]["S"] == "source_not_found"

    handler = as_resize(role_without(stack, function, "ListOriginals"))
    forbidden = f"gone/{uuid.uuid4().hex}.jpg"
    handler.handler({"Records": [s3_record(uploads, forbidden)]}, LambdaContext())
    assert (
        record_of(stack, forbidden).get("error", {}).get("M", {}).get("code", {}).get("S")
        != "source_not_found"
    )
    probes = [c for c in iam_calls(stack) if role_of(c["principal"]).endswith("-no-ListOriginals")]
    assert {(c["action"], c["allowed"]) for c in probes if c["resource"].endswith(forbidden)} == {
        ("s3:GetObject", True)
    }
    assert ("s3:ListBucket", False) in {(c["action"], c["allowed"]) for c in probes}


def test_a_missing_watermark_is_a_config_error_naming_watermark_key(stack, as_resize):
    # As above: the watermark read needs s3:ListBucket on the uploads bucket to see 404, not 403.
    from imgpipe.errors import ConfigError

    function = stack.outputs["resize_function_name"]
    missing = {"WATERMARK_KEY": f"brand/{uuid.uuid4().hex}.png", "WATERMARK_TEXT": ""}
    handler = as_resize(function_role(stack, function)[1], **missing)
    with pytest.raises(ConfigError, match="WATERMARK_KEY"):
        handler.setup()
    handler = as_resize(role_without(stack, function, "ListOriginals"), **missing)
    with pytest.raises(ClientError) as denied:
        handler.setup()
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.parametrize(
    ("sid", "action"),
    [
        ("ReadOriginals", "s3:GetObject"),
        ("WriteRenditions", "s3:PutObject"),
        ("UpdateImageRecords", "dynamodb:GetItem"),  # the id secret is read at cold start (docs/ids.md)
    ],
)
def test_the_resize_role_without_one_statement_is_denied_what_it_allowed(stack, as_resize, sid, action):
    # IAM: an action no statement allows is denied (AccessDenied), as a grant missing from the HCL is on AWS.
    from tests.conftest import LambdaContext

    function, uploads = stack.outputs["resize_function_name"], stack.outputs["uploads_bucket_name"]
    key = f"grants/{sid}/{uuid.uuid4().hex}.jpg"
    stack.client("s3").put_object(
        Bucket=uploads, Key=key, Body=photo_jpeg(320, 240), ContentType="image/jpeg"
    )
    # The stack renders it first; without its record, this handler renders it again rather than
    # stopping as a duplicate of a done version (docs/ordering.md), and so reaches every call.
    image_id = direct_upload_id(stack, key)
    wait_for(stack, image_id)
    stack.client("dynamodb").delete_item(TableName=stack.outputs["table_name"], Key={"id": {"S": image_id}})
    handler = as_resize(role_without(stack, function, sid))
    try:
        handler.handler({"Records": [s3_record(uploads, key)]}, LambdaContext())
    except ClientError as exc:
        # A cold start that cannot read the id secret fails the whole invocation: every message is retried.
        assert (sid, exc.response["Error"]["Code"]) == ("UpdateImageRecords", "AccessDeniedException")
    mine = [c for c in iam_calls(stack) if role_of(c["principal"]).endswith(f"-no-{sid}")]
    assert (action, False) in {(c["action"], c["allowed"]) for c in mine}
    assert (action, True) not in {(c["action"], c["allowed"]) for c in mine}


def test_each_role_grants_what_its_function_calls_and_nothing_more(stack):
    # Least privilege (issue 11, finding 2.8): every call a function made on the pipeline's resources
    # was allowed by its Terraform policy, and every action the policy grants was called.
    o = stack.outputs
    table_arn = stack.client("dynamodb").describe_table(TableName=o["table_name"])["Table"]["TableArn"]
    ours = (
        f"arn:aws:s3:::{o['uploads_bucket_name']}",
        f"arn:aws:s3:::{o['resized_bucket_name']}",
        table_arn,
        o["queue_arn"],
        o["queue_arn"].rsplit(":", 1)[0].replace(":sqs:", ":events:") + f":event-bus/{o['event_bus_name']}",
    )
    calls = iam_calls(stack)
    iam = stack.client("iam")
    for output in ("resize_function_name", "upload_function_name"):
        name, _ = function_role(stack, o[output])
        made = [c for c in calls if role_of(c["principal"]) == name and c["resource"].startswith(ours)]
        assert [c for c in made if not c["allowed"]] == []
        granted = set()
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            document = json.loads(document) if isinstance(document, str) else document
            for statement in document["Statement"]:
                actions = statement["Action"]
                granted |= {actions} if isinstance(actions, str) else set(actions)
        called = {c["action"] for c in made}
        assert called <= granted
        assert sorted(granted - called - set(NOT_SEEN_LOCALLY)) == [], output


def test_handler_logs_reach_the_stack_output(stack):
    lines = [line for line in stack.log.read_text().splitlines() if line.startswith("{")]
    services = {json.loads(line).get("service") for line in lines if line.endswith("}")}
    assert len(services - {None}) >= 2  # both functions' structured logs


def test_sigint_stops_everything_and_frees_the_ports(stack):
    children = stack.descendants()
    pids = stack.description["pids"]
    recorded = {pid for group in pids.values() for pid in group}
    assert recorded and recorded <= children | recorded  # the emulator and the workers, at least
    assert set(pids["emulator"]) <= children
    code = stack.stop()
    assert code == 0, stack.log.read_text()[-3000:]
    for pid in children | recorded:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived the stack"
    assert not port_open(stack.moto_port) and not port_open(stack.api_port)
    assert "stopped" in stack.log.read_text().splitlines()[-1]


def test_a_second_run_starts_from_the_snapshot_and_changes_nothing(stack):
    """The second `make run` restores the emulator; Terraform reads it back, changes nothing, and it works."""
    stack.stop()  # idempotent: the test before stopped it already when run in order
    state_dir = stack.log.parent
    assert (state_dir / "emulator.snapshot").is_file()
    first = stack.description
    again = start_stack(state_dir, stack.moto_port, stack.api_port)
    try:
        text = again.log.read_text()
        assert "from the last run's snapshot" in text
        assert "Resources: 0 added, 0 changed, 0 destroyed." in text  # nothing re-created
        assert again.outputs == first["outputs"] and again.description["routes"] == first["routes"]
        headers = {"Content-Type": "image/jpeg"}
        response = requests.post(
            f"{again.api}/images", data=photo_jpeg(800, 600), headers=headers, timeout=30
        )
        assert response.status_code == 201, response.text
        check_renditions(again, wait_for(again, response.json()["id"]), (800, 600))
        children = again.descendants()
    finally:
        code = again.stop()
    assert code == 0, again.log.read_text()[-3000:]
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived the stack"
    assert not port_open(again.moto_port) and not port_open(again.api_port)
