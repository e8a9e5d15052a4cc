"""The poller's unkind mode (local/unkind.py) against a moto server, with a fake function.

AWS: "Standard queues support at-least-once message delivery. However,
occasionally [...] more than one copy of a message might be delivered out of
order." (SQS Developer Guide, "Amazon SQS standard queues"); a message
received and not deleted comes back: "After the visibility timeout, the
messages become visible to Lambda again" (Lambda Developer Guide, "Creating
and configuring an Amazon SQS event source mapping"). The mode does all of
that on purpose and loses nothing.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from local.functions import InvokeResult
from local.poller import MappingSettings, Poller
from local.unkind import UnkindDelivery, UnkindSettings, UnkindSettingsError, plan_batch

pytestmark = pytest.mark.slow

VISIBILITY = 2  # seconds: short, so redeliveries come back within the test
MAX_RECEIVE = 3


@dataclass
class Delivery:
    at: float
    poller: str
    records: list[dict]


@dataclass
class FakeFunction:
    """Records every batch; fails the bodies in ``failing`` every time (partial batch response)."""

    failing: set[str] = field(default_factory=set)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, name: str, event: dict) -> InvokeResult:
        time.sleep(0.05)  # some work, so two pollers overlap
        with self.lock:
            self.deliveries.append(
                Delivery(time.monotonic(), threading.current_thread().name, event["Records"])
            )
        failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] in self.failing]
        return InvokeResult("r", payload={"batchItemFailures": failures})

    def bodies(self) -> list[str]:
        return [r["body"] for d in self.deliveries for r in d.records]


@pytest.fixture
def queue(emulator):
    """A queue with a short visibility timeout and a DLQ after MAX_RECEIVE receives, on the moto server."""
    emulator.reset()
    sqs = emulator.client("sqs")
    dlq = sqs.create_queue(QueueName="unkind-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE})
    url = sqs.create_queue(
        QueueName="unkind", Attributes={"VisibilityTimeout": str(VISIBILITY), "RedrivePolicy": redrive}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn, dlq


def _run_until_drained(sqs, url: str, arn: str, fn: FakeFunction, unkind: UnkindDelivery | None) -> None:
    settings = MappingSettings("uuid", "fake", arn, url, batch_size=5, report_failures=True)
    pollers = [Poller(sqs, settings, fn, f"poller-{i}", unkind=unkind).start() for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        while _in_queue(sqs, url):
            assert time.monotonic() < deadline, f"the queue still holds {_in_queue(sqs, url)} after 60 s"
            time.sleep(0.5)
    finally:
        for poller in pollers:
            poller.request_stop()
        for poller in pollers:
            poller.stop()


def _in_queue(sqs, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs[name]) for name in names)


def _dlq_bodies(sqs, dlq: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [m["Body"] for m in messages.get("Messages", [])]


def test_unkind_delivery_duplicates_reorders_delays_and_redelivers_and_loses_nothing(queue):
    sqs, url, arn, dlq = queue
    sent = [f"m{i:02d}" for i in range(40)]
    for body in sent:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    fn = FakeFunction()
    unkind = UnkindDelivery.for_queue(UnkindSettings(seed=11, rate=0.25, max_delay_seconds=1), sqs, url)
    assert unkind.max_delay == VISIBILITY / 4  # a hold-back ends well inside the visibility timeout
    _run_until_drained(sqs, url, arn, fn, unkind)

    bodies = fn.bodies()
    assert set(bodies) == set(sent)  # every message delivered, and (the queue is empty) deleted
    assert _dlq_bodies(sqs, dlq) == []
    assert len(bodies) > len(sent)  # duplicates: more deliveries than messages
    assert any(len({r["messageId"] for r in d.records}) < len(d.records) for d in fn.deliveries)
    order = [b for d in fn.deliveries for b in (r["body"] for r in d.records)]
    assert order != sorted(order)  # not in the order sent
    # A redelivery: the same message again, received again, at least the visibility timeout later.
    first_seen: dict[str, tuple[float, int]] = {}
    redelivered = []
    for d in fn.deliveries:
        for r in d.records:
            count = int(r["attributes"]["ApproximateReceiveCount"])
            if r["messageId"] in first_seen and count > first_seen[r["messageId"]][1]:
                redelivered.append(d.at - first_seen[r["messageId"]][0])
            first_seen.setdefault(r["messageId"], (d.at, count))
    assert redelivered and min(redelivered) >= VISIBILITY - 0.5
    counters = unkind.counters()
    assert all(counters[name] > 0 for name in counters), counters


def test_a_message_that_always_fails_still_ends_in_the_dlq_by_the_redrive_policy(queue):
    sqs, url, arn, dlq = queue
    for body in ("ok-1", "poison", "ok-2", "ok-3"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    fn = FakeFunction(failing={"poison"})
    unkind = UnkindDelivery.for_queue(UnkindSettings(seed=3, rate=0.33, max_delay_seconds=1), sqs, url)
    _run_until_drained(sqs, url, arn, fn, unkind)
    assert {"ok-1", "ok-2", "ok-3", "poison"} <= set(fn.bodies())
    assert _dlq_bodies(sqs, dlq) == ["poison"]  # moved by the queue after maxReceiveCount, not lost


def test_the_same_seed_makes_the_same_choices():
    messages = [{"MessageId": f"id-{i}", "Attributes": {"ApproximateReceiveCount": "1"}} for i in range(30)]
    settings = UnkindSettings(seed=5, rate=0.3)

    def plan(seed: int):
        p = plan_batch(messages, random.Random(seed), settings, 10, MAX_RECEIVE, 1.0)
        return [m["MessageId"] for m in p.deliver], p.hold, [m["MessageId"] for m in p.copies], p.leave

    assert plan(5) == plan(5)
    assert plan(5) != plan(6)


def test_the_first_duplicate_of_a_batch_with_a_free_slot_is_delivered_twice_in_it():
    """SQS may hand the same message over twice in one ReceiveMessage answer; the mode does it reliably."""
    messages = [{"MessageId": f"id-{i}", "Attributes": {"ApproximateReceiveCount": "1"}} for i in range(4)]
    for seed in range(100):
        p = plan_batch(messages, random.Random(seed), UnkindSettings(seed=seed, rate=0.33), 5, MAX_RECEIVE, 0)
        ids = [m["MessageId"] for m in p.deliver]
        if p.counts["duplicated"]:
            assert len(set(ids)) == len(ids) - 1  # exactly one twice here; any other goes to another batch
            assert len(p.copies) == p.counts["duplicated"] - 1
        full = plan_batch(
            messages, random.Random(seed), UnkindSettings(seed=seed, rate=0.33), 4, MAX_RECEIVE, 0
        )
        assert len(full.deliver) <= 4  # no free slot: every duplicate goes to another batch


def test_a_message_is_never_left_undeleted_when_its_redelivery_would_go_to_the_dlq():
    """maxReceiveCount 1: a second receive moves the message, so the mode always deletes on success."""
    message = {"MessageId": "only", "Attributes": {"ApproximateReceiveCount": "1"}}
    for seed in range(200):
        p = plan_batch([message], random.Random(seed), UnkindSettings(seed=seed, rate=0.33), 10, 1, 1.0)
        assert not p.leave


def test_the_mode_is_off_unless_asked_and_bad_knobs_fail_with_their_name():
    assert UnkindSettings.from_env({}) is None
    assert UnkindSettings.from_env({"LOCAL_UNKIND_DELIVERY": "0"}) is None
    on = UnkindSettings.from_env({"LOCAL_UNKIND_DELIVERY": "1", "LOCAL_UNKIND_SEED": "42"})
    assert on == UnkindSettings(seed=42, rate=0.2, max_delay_seconds=3.0)
    for env, name in (
        ({"LOCAL_UNKIND_DELIVERY": "yes"}, "LOCAL_UNKIND_DELIVERY"),
        ({"LOCAL_UNKIND_DELIVERY": "1", "LOCAL_UNKIND_SEED": "x"}, "LOCAL_UNKIND_SEED"),
        ({"LOCAL_UNKIND_DELIVERY": "1", "LOCAL_UNKIND_RATE": "0.5"}, "LOCAL_UNKIND_RATE"),
        ({"LOCAL_UNKIND_DELIVERY": "1", "LOCAL_UNKIND_MAX_DELAY": "-1"}, "LOCAL_UNKIND_MAX_DELAY"),
    ):
        with pytest.raises(UnkindSettingsError, match=name):
            UnkindSettings.from_env(env)
