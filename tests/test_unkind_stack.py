"""`make run UNKIND=1` for real: 50 concurrent uploads through the API, delivered as unkindly as SQS may.

AWS: standard queues give "at-least-once message delivery" and "best-effort
ordering": "more than one copy of a message might be delivered out of order"
(SQS Developer Guide, "Amazon SQS standard queues"). The stack is started by
``tests.test_local_stack.start_stack`` with the poller's unkind mode on
(``local.unkind``): messages are duplicated, shuffled, held back, and left
undeleted after success so the queue redelivers them after its visibility
timeout. Every image must still end ``done`` with all its renditions, the
dead-letter queue must stay empty, and the poller's counters must show that it
really was unkind.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local import client as stack_client
from local.emulator import free_port
from tests.images import photo_jpeg
from tests.test_local_stack import (
    check_renditions,
    completion_events,
    record_of,
    start_stack,
)

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

UPLOADS = 50
SEED = "50"
DONE_WITHIN = 300  # seconds for all 50 to be done, on a loaded two-core machine
DRAINED_WITHIN = 180  # then for the redeliveries to come back (visibility timeout 30 s here) and finish
TOTALS = re.compile(r"unkind delivery totals: (\{.*?\})")


@pytest.fixture(scope="module")
def unkind_stack(tmp_path_factory, lambda_zip):
    state_dir = tmp_path_factory.mktemp("unkind-stack")
    env = {"LOCAL_UNKIND_DELIVERY": "1", "LOCAL_UNKIND_SEED": SEED, "LOCAL_UNKIND_RATE": "0.25"}
    running = start_stack(state_dir, free_port(), free_port(), **env)
    try:
        yield running
    finally:
        running.stop()


def _upload(api: str, size: tuple[int, int]) -> tuple[str, tuple[int, int]]:
    response = stack_client.upload_direct(api, photo_jpeg(*size), "image/jpeg", timeout=120)
    assert response.status_code == 201, response.text
    return response.json()["id"], size


def _wait_all_done(api: str, ids: list[str]) -> dict[str, dict]:
    """GET /images/{id} until every image is done or failed; a clear failure after DONE_WITHIN."""
    finished: dict[str, dict] = {}
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + DONE_WITHIN
    while len(finished) < len(ids):
        for image_id in [i for i in ids if i not in finished]:
            body = requests.get(f"{api}/images/{image_id}", timeout=30).json()
            statuses[image_id] = body.get("status", "?")
            if statuses[image_id] in ("done", "failed"):
                finished[image_id] = body
        if len(finished) < len(ids) and time.monotonic() > deadline:
            waiting = {i: s for i, s in statuses.items() if i not in finished}
            pytest.fail(f"{len(waiting)} of {len(ids)} images not finished within {DONE_WITHIN} s: {waiting}")
        time.sleep(1)
    return finished


def _wait_drained(sqs, queue_url: str) -> None:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + DRAINED_WITHIN
    while True:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        if all(attrs[n] == "0" for n in names):
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"the resize queue still holds messages {DRAINED_WITHIN} s after the last image: {attrs}"
            )
        time.sleep(1)


OVERWRITTEN_KEYS = 6
VERSIONS = 3


def _put_versions(s3, bucket: str, key: str) -> tuple[str, tuple[int, int]]:
    """Put VERSIONS images of distinct sizes at one key, one after another; the last version and size."""
    for n in range(VERSIONS):
        size = (400 + 20 * n, 300 + 15 * n)
        put = s3.put_object(Bucket=bucket, Key=key, Body=photo_jpeg(*size), ContentType="image/jpeg")
    return put["VersionId"], size


def test_quick_overwrites_end_with_the_newest_version_and_one_set_of_renditions(unkind_stack):
    # S3: "Event notifications aren't guaranteed to arrive in the same order that the events occurred";
    # the sequencer orders events for one key (S3 User Guide, "Event message structure"). Under
    # duplicated, reordered, delayed and redelivered messages, each key must end on its newest
    # version, rendered once: the record names it, and the resized bucket holds its renditions only.
    stack = unkind_stack
    s3, uploads = stack.client("s3"), stack.outputs["uploads_bucket_name"]
    names = [f"overwrites/{n}/photo.jpg" for n in range(OVERWRITTEN_KEYS)]
    with ThreadPoolExecutor(OVERWRITTEN_KEYS) as pool:
        newest = dict(zip(names, pool.map(lambda key: _put_versions(s3, uploads, key), names), strict=True))
    _wait_drained(stack.client("sqs"), stack.outputs["queue_url"])
    resized = stack.outputs["resized_bucket_name"]
    for key, (version, size) in newest.items():
        record = record_of(stack, key)  # a direct upload's id is keyed by the deployment's secret
        image_id = record["id"]["S"]
        body = requests.get(f"{stack.api}/images/{image_id}", timeout=30).json()
        assert body["status"] == "done", (key, body)
        assert (body["original"]["width"], body["original"]["height"]) == size
        check_renditions(stack, body, size)
        assert record["original"]["M"]["version_id"]["S"] == version
        recorded = {r["M"]["key"]["S"] for r in record["renditions"]["L"]}
        listed = s3.list_objects_v2(Bucket=resized, Prefix=f"{image_id}/").get("Contents", [])
        assert {obj["Key"] for obj in listed} == recorded  # the older versions' renditions are gone
        # One event for the newest version (an older one may have had its own before it was replaced).
        (events,) = completion_events(stack, {image_id}).values()
        assert [e["detail"]["source"]["version_id"] for e in events].count(version) == 1


def test_fifty_concurrent_uploads_all_end_done_under_unkind_delivery(unkind_stack):
    stack = unkind_stack
    assert f"Delivery  unkind (seed {SEED})" in stack.log.read_text()  # the banner names the mode
    sizes = [(320 + 4 * i, 240 + 3 * i) for i in range(UPLOADS)]  # distinct, and larger than the thumb box
    with ThreadPoolExecutor(UPLOADS) as pool:
        uploaded = dict(pool.map(lambda size: _upload(stack.api, size), sizes))
    assert len(uploaded) == UPLOADS

    for image_id, body in _wait_all_done(stack.api, list(uploaded)).items():
        check_renditions(stack, body, uploaded[image_id])
    sqs = stack.client("sqs")
    _wait_drained(sqs, stack.outputs["queue_url"])
    # The late redeliveries and duplicates changed nothing: still done, still whole.
    for image_id, size in uploaded.items():
        body = requests.get(f"{stack.api}/images/{image_id}", timeout=30).json()
        check_renditions(stack, body, size)
    # And told a backend once: one Image Processed per image on the events' queue (docs/events.md).
    published = completion_events(stack, set(uploaded))
    assert {i: [e["detail-type"] for e in got] for i, got in published.items()} == {
        i: ["Image Processed"] for i in uploaded
    }
    dlq = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["dlq_url"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert dlq == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

    assert stack.stop() == 0, stack.log.read_text()[-3000:]
    totals = [json.loads(m) for m in TOTALS.findall(stack.log.read_text())]
    assert totals, "the pollers logged no unkind delivery totals"
    counters = totals[-1]
    for name in ("duplicated", "reordered", "delayed", "left_undeleted", "redelivered"):
        assert counters[name] > 0, counters
