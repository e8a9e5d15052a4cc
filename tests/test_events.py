"""Completion events (docs/events.md): one per image, read as a backend reads them, from a rule's SQS queue.

moto delivers a custom bus's events through a rule to an SQS target, as
EventBridge does, so these tests consume what the resize function published.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
import requests

from conftest import load_event
from imgpipe import config_version, events, records
from imgpipe.errors import ConfigError
from imgpipe.resize_config import from_env
from tests import images
from tests.test_resize_handler import Pipeline, pipeline  # noqa: F401 (pipeline: fixture)

BUS, QUEUE = "image-events", "image-events-backend"


class Events:
    """The bus, a rule for every image event and its SQS queue, as events.tf makes them."""

    def __init__(self) -> None:
        bridge, self.sqs = boto3.client("events"), boto3.client("sqs")
        bridge.create_event_bus(Name=BUS)
        self.url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]
        pattern = {"source": ["imgpipe"], "detail-type": ["Image Processed", "Image Failed"]}
        bridge.put_rule(Name="backend", EventBusName=BUS, EventPattern=json.dumps(pattern))
        bridge.put_targets(Rule="backend", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])

    def received(self) -> list[dict]:
        """Every event in the queue, as a consumer reads them (then deleted)."""
        got = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                got.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return got


@pytest.fixture
def bus(pipeline, monkeypatch):
    import resize_handler

    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.delenv("EVENT_SOURCE", raising=False)
    resize_handler.reset()
    return Events()


def envelope_shape(event: dict) -> dict:
    """``shape`` of an event as delivered; moto 5.2.5 leaves out ``account``, which EventBridge sends
    ("Amazon EventBridge events", EventBridge User Guide: every event carries account)."""
    return shape({"account": "123456789012", **event})


def shape(value):
    """The schema of a JSON value: keys and types, a list by its first item."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def log_lines(monkeypatch) -> io.StringIO:
    import resize_handler

    log = io.StringIO()
    monkeypatch.setattr(resize_handler.logger.registered_handler, "stream", log)
    return log


def parsed(log: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]


# --- the schema ---


def test_a_done_image_publishes_one_image_processed_event_shaped_like_the_example(pipeline, bus):
    key = "photos/cat.jpg"
    data = images.oriented_jpeg(1, 1600, 800)
    record = pipeline.upload(key, data)
    version = json.loads(record["body"])["Records"][0]["s3"]["object"]["versionId"]
    assert pipeline.invoke(record) == {"batchItemFailures": []}

    (event,) = bus.received()
    example = load_event("eventbridge_image_processed.json")
    assert envelope_shape(event) == shape(example)
    assert (event["source"], event["detail-type"]) == ("imgpipe", "Image Processed")
    detail, image_id = event["detail"], pipeline.image_id(key)
    assert detail["image_id"] == image_id and detail["status"] == "done" and detail["error"] is None
    assert detail["source"] == {
        "bucket": "uploads",
        "key": key,
        "version_id": version,
        "format": "jpeg",
        "width": 1600,
        "height": 800,
        "bytes": len(data),
    }
    assert detail["config_version"] == config_version.version(from_env())
    # The event lists what the record lists, and each URL fetches that rendition's bytes.
    listed = {r["key"]: r for r in pipeline.item(image_id)["renditions"]}
    assert {r["key"] for r in detail["renditions"]} == set(listed)
    for rendition in detail["renditions"]:
        assert {k: v for k, v in rendition.items() if k != "url"} == listed[rendition["key"]]
        _, body = pipeline.get(rendition["key"])
        assert requests.get(rendition["url"], timeout=10).content == body


def test_a_failed_image_publishes_image_failed_with_its_code_shaped_like_the_example(pipeline, bus):
    record = pipeline.upload("bad/file.jpg", b"not an image at all")
    assert pipeline.invoke(record) == {"batchItemFailures": []}

    (event,) = bus.received()
    example = load_event("eventbridge_image_failed.json")
    assert envelope_shape(event) == shape(example)
    assert event["detail-type"] == "Image Failed"
    detail = event["detail"]
    item = pipeline.item(pipeline.image_id("bad/file.jpg"))
    assert (detail["status"], detail["renditions"]) == ("failed", [])
    assert detail["error"] == item["error"] and detail["error"]["code"] == "not_an_image"
    assert detail["source"]["bytes"] == len(b"not an image at all") and detail["source"]["width"] is None


def test_the_example_events_are_the_documented_ones():
    # docs/events.md shows the example a consumer can test against; it must be the file the tests check.
    page = (Path(__file__).parents[1] / "docs/events.md").read_text()
    example = json.dumps(load_event("eventbridge_image_processed.json"), indent=2)
    assert example in page


def test_the_source_is_configurable_and_aws_sources_are_refused(pipeline, bus, monkeypatch):
    import resize_handler

    with pytest.raises(ConfigError, match="EVENT_SOURCE"):
        from_env({"RESIZED_BUCKET": "r", "EVENT_SOURCE": "aws.s3"})
    # The rule matches source "imgpipe": another source is published, and this rule does not see it.
    monkeypatch.setenv("EVENT_SOURCE", "media.images")
    resize_handler.reset()
    log = log_lines(monkeypatch)
    pipeline.invoke(pipeline.upload("other.png", images.encode(images.quadrants(), "PNG")))
    assert bus.received() == []
    (published,) = [line for line in parsed(log) if line["message"] == "event published"]
    assert published["detail_type"] == "Image Processed" and published["event"]["status"] == "done"


def test_no_bus_no_events(pipeline, bus, monkeypatch):
    import resize_handler

    monkeypatch.delenv("EVENT_BUS_NAME")
    resize_handler.reset()
    pipeline.invoke(pipeline.upload("quiet.png", images.encode(images.quadrants(), "PNG")))
    assert pipeline.item(pipeline.image_id("quiet.png"))["status"] == "done"
    assert bus.received() == []


def test_the_log_shows_each_event_without_its_presigned_urls(pipeline, bus, monkeypatch):
    log = log_lines(monkeypatch)
    pipeline.invoke(pipeline.upload("logged.png", images.encode(images.quadrants(), "PNG")))
    (event,) = bus.received()
    (line,) = [line for line in parsed(log) if line["message"] == "event published"]
    assert line["event_id"] == event["id"]
    assert line["event"]["renditions"] == [
        {k: v for k, v in r.items() if k != "url"} for r in event["detail"]["renditions"]
    ]
    assert "X-Amz-Signature" not in log.getvalue()


# --- exactly one per image ---


def test_a_duplicate_delivery_publishes_nothing(pipeline, bus):
    # SQS standard queues deliver "at least once" (SQS Developer Guide): the same S3 event may come twice.
    record = pipeline.upload("twice.png", images.encode(images.quadrants(), "PNG"))
    pipeline.invoke(record)
    pipeline.invoke(record)
    assert [e["detail-type"] for e in bus.received()] == ["Image Processed"]


def test_a_duplicate_rendering_at_the_same_time_publishes_once(pipeline, bus, monkeypatch):
    # Two deliveries of one event both pass the record check and both render: the one whose
    # write moved the record to done publishes; the other's write finds it done and stays quiet.
    import resize_handler

    record = pipeline.upload("race.png", images.encode(images.quadrants(), "PNG"))
    real_render, outcomes = resize_handler._render, []

    def render(data, setup):
        if not outcomes:
            outcomes.append("nested")
            outcomes.append(resize_handler.process_object(_object(record), setup))
        return real_render(data, setup)

    monkeypatch.setattr(resize_handler, "_render", render)
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    assert outcomes == ["nested", "done"]
    (event,) = bus.received()
    assert event["detail"]["status"] == "done"
    assert pipeline.item(pipeline.image_id("race.png"))["status"] == "done"


def test_a_late_duplicate_never_sets_a_done_image_back_to_processing(pipeline, bus, monkeypatch):
    # A duplicate that read the record before the first delivery finished must not undo its "done",
    # or it would render again and publish a second event.
    import resize_handler

    record = pipeline.upload("late.png", images.encode(images.quadrants(), "PNG"))
    pipeline.invoke(record)
    image_id = pipeline.image_id("late.png")
    stale, real_get = {**pipeline.item(image_id), "status": "processing"}, records.get
    monkeypatch.setattr(records, "get", lambda table, i: stale if i == image_id else real_get(table, i))
    setup = resize_handler.setup()
    # It stops as "current" (docs/config-version.md): the record it may not undo shows this config.
    assert resize_handler.process_object(_object(record), setup) == config_version.CURRENT
    assert real_get(pipeline.table, image_id)["status"] == "done"
    assert len(bus.received()) == 1


def test_a_failure_delivered_twice_publishes_one_image_failed(pipeline, bus):
    record = pipeline.upload("broken.jpg", images.truncated_jpeg())
    pipeline.invoke(record)
    pipeline.invoke(record)
    assert [e["detail"]["error"]["code"] for e in bus.received()] == ["corrupt_image"]


def test_a_newer_version_publishes_its_own_event(pipeline, bus):
    pipeline.invoke(pipeline.upload("v.png", images.encode(images.quadrants(), "PNG")))
    pipeline.invoke(pipeline.upload("v.png", images.encode(images.quadrants(), "PNG")))
    got = bus.received()
    assert [e["detail"]["status"] for e in got] == ["done", "done"]
    assert got[0]["detail"]["source"]["version_id"] != got[1]["detail"]["source"]["version_id"]


# --- PutEvents failing ---


class Flaky:
    """PutEvents answering with failed entries (HTTP 200, FailedEntryCount 1) ``failures`` times."""

    def __init__(self, real, failures: int, code: str = "ThrottlingException") -> None:
        self.real, self.failures, self.code, self.calls = real, failures, code, 0

    def put_events(self, Entries):
        self.calls += 1
        if self.calls <= self.failures:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": self.code, "ErrorMessage": "no"}]}
        return self.real.put_events(Entries=Entries)


@pytest.fixture
def flaky(bus, monkeypatch):
    import resize_handler

    def make(failures: int, code: str = "ThrottlingException") -> Flaky:
        client = Flaky(boto3.client("events"), failures, code)
        monkeypatch.setattr(resize_handler, "_events", lambda: client)
        monkeypatch.setattr(events.time, "sleep", lambda s: None)
        return client

    return make


def test_a_throttled_entry_is_sent_again(pipeline, bus, flaky):
    # EventBridge: "A response Entries array can include both successful and unsuccessful entries.
    # You must detect unsuccessful entries and include them in a subsequent call." (PutEvents guide)
    client = flaky(2)
    assert pipeline.invoke(pipeline.upload("t.png", images.encode(images.quadrants(), "PNG"))) == {
        "batchItemFailures": []
    }
    assert client.calls == 3
    assert len(bus.received()) == 1


@pytest.mark.parametrize(
    ("failures", "code", "calls"), [(99, "ThrottlingException", 3), (1, "AccessDeniedException", 1)]
)
def test_an_event_that_cannot_be_published_leaves_the_image_done_logged_and_counted(
    pipeline, bus, flaky, monkeypatch, capsys, failures, code, calls
):
    client = flaky(failures, code)
    log = log_lines(monkeypatch)
    record = pipeline.upload("kept.png", images.encode(images.quadrants(), "PNG"))
    capsys.readouterr()
    assert pipeline.invoke(record) == {"batchItemFailures": []}  # not retried: nothing is rendered again
    assert client.calls == calls
    image_id = pipeline.image_id("kept.png")
    assert pipeline.item(image_id)["status"] == "done" and len(pipeline.outputs(image_id)) == 6
    assert bus.received() == []
    lines = parsed(log) + [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    (error,) = [line for line in lines if line.get("message") == "event not published"]
    assert error["level"] == "ERROR" and error["error_code"] == code and error["image_id"] == image_id
    (emf,) = [line for line in lines if "_aws" in line]
    assert emf["EventsNotPublished"] == [1.0]


def test_publish_retries_only_what_may_succeed_later():
    slept = []

    class Refusing:
        calls = 0

        def put_events(self, Entries):
            self.calls += 1
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}

    client = Refusing()
    with pytest.raises(events.PublishFailed) as failed:
        events.publish(client, {"Detail": "{}"}, is_transient=lambda e: False, sleep=slept.append)
    assert (failed.value.code, failed.value.attempts, client.calls) == ("InternalFailure", 3, 3)
    assert slept == [0.2, 0.4]


def _object(record: dict):
    from imgpipe import s3_events

    (obj,) = s3_events.parse_body(record["body"])
    return obj


def test_a_re_render_under_a_new_configuration_publishes_its_new_renditions(pipeline, bus, monkeypatch):
    # docs/config-version.md: a replayed message renders again after a configuration change; the
    # renditions change, so backends hear of it once more, with the new config_version.
    import resize_handler

    record = pipeline.upload("again.png", images.encode(images.quadrants(), "PNG"))
    pipeline.invoke(record)
    monkeypatch.setenv("JPEG_BACKGROUND", "#000000")
    resize_handler.reset()
    pipeline.invoke(record)
    pipeline.invoke(record)  # and a duplicate of that replay: nothing new
    got = bus.received()
    assert [e["detail"]["status"] for e in got] == ["done", "done"]
    assert got[0]["detail"]["config_version"] != got[1]["detail"]["config_version"]
    assert got[1]["detail"]["config_version"] == config_version.version(from_env())


def test_with_a_cdn_the_events_carry_the_cdn_urls_of_the_renditions(pipeline, bus, monkeypatch):
    """Both functions build rendition URLs with imgpipe.cdn: with CDN_BASE_URL set (cdn_enabled, the
    default) an event's URLs are {base}/{key}, permanent, nothing presigned (docs/cdn.md)."""
    import resize_handler

    monkeypatch.setenv("CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net/")
    resize_handler.reset()
    pipeline.invoke(pipeline.upload("cdn/cat.jpg", images.oriented_jpeg(1, 1200, 900)))
    (event,) = bus.received()
    urls = {r["key"]: r["url"] for r in event["detail"]["renditions"]}
    assert urls and all(url == f"https://d111111abcdef8.cloudfront.net/{key}" for key, url in urls.items())
