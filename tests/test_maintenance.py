"""The maintenance function against moto: reprocess plans the resize function accepts, reconcile passes.

Every planned message is fed to the real resize handler, in the same mock, to
prove that it renders what the plan meant it to render (docs/config-version.md,
"Reprocess"; docs/reconcile.md).
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import unquote

import pytest

from imgpipe import config_version, records, reprocess, s3_events
from imgpipe.errors import BadRequest, TransientError
from tests import test_resize_handler as base
from tests.test_ordering import BLUE, RED, outcomes, png  # noqa: F401
from tests.test_reprocess import SMALL
from tests.test_resize_handler import DEFAULT_OUTPUTS, opened

pipeline = base.pipeline  # moto, the buckets, the table, the resize function's environment


@pytest.fixture
def maintenance(pipeline, monkeypatch):
    """The maintenance handler in the same mock and environment as the resize handler."""
    import maintenance_handler

    for name in ("RECONCILE_PENDING_AFTER_S", "RECONCILE_STUCK_AFTER_S", "RECONCILE_PAGE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    maintenance_handler.reset()
    yield Maintenance(pipeline)
    maintenance_handler.reset()


class Maintenance:
    def __init__(self, pipeline):
        self.pipeline = pipeline

    def invoke(self, event: dict) -> dict:
        import maintenance_handler

        answer = maintenance_handler.handler(event, self.pipeline.context)
        json.dumps(answer)  # the state machine gets it as JSON
        return answer

    def plan(self, keys: list[str], **batch_input) -> dict:
        items = [{"key": key} for key in keys]
        return self.invoke({"action": "plan_reprocess", "Items": items, "BatchInput": batch_input or None})

    def deliver(self, answer: dict) -> dict:
        """Send every planned entry to the resize handler, as SQS would after SendMessageBatch."""
        entries = [entry for batch in answer["batches"] for entry in batch]
        sqs_records = [sqs_record(entry["MessageBody"]) for entry in entries]
        return self.pipeline.invoke(*sqs_records) if sqs_records else {"batchItemFailures": []}


def sqs_record(body: str) -> dict:
    """An SQS record carrying ``body``, as Lambda's event source mapping hands it over."""
    template = base.load_event("s3_put_sqs.json")["Records"][0]
    return {**template, "messageId": str(uuid.uuid4()), "body": body}


def redeploy(monkeypatch, renditions: list[dict]) -> str:
    """Both functions get another rendition config; its version."""
    import maintenance_handler
    import resize_handler

    monkeypatch.setenv("RENDITIONS", json.dumps(renditions))
    resize_handler.reset()
    maintenance_handler.reset()
    return resize_handler.setup().config_version


def bodies(answer: dict) -> list[dict]:
    return [json.loads(entry["MessageBody"]) for batch in answer["batches"] for entry in batch]


# --- reprocess: the plan ---


def test_a_stale_image_is_planned_as_a_reprocess_the_resize_handler_renders_with_the_new_config(
    maintenance, outcomes, monkeypatch
):
    pipeline = maintenance.pipeline
    key = "photos/stale.png"
    assert pipeline.invoke(pipeline.upload(key, png(RED))) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    old = pipeline.item(image_id)
    new_version = redeploy(monkeypatch, SMALL)

    answer = maintenance.plan([key])

    assert {k: answer[k] for k in ("listed", "skipped_current", "enqueue", "failed")} == {
        "listed": 1,
        "skipped_current": 0,
        "enqueue": 1,
        "failed": 0,
    }
    (body,) = bodies(answer)
    assert body["imgpipe"] == {"reprocess": True, "force": False}
    obj = body["Records"][0]["s3"]["object"]
    assert obj["versionId"] == old["version"] and obj["sequencer"] == old["sequencer"]
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    assert outcomes()[-1] == "done"
    item = pipeline.item(image_id)
    assert item["config_version"] == new_version
    assert [(r["name"], r["format"], r["width"]) for r in item["renditions"]] == [("thumb", "webp", 100)]
    _, data = pipeline.get(item["renditions"][0]["key"])
    assert opened(data).getpixel((50, 50))[0] > 200  # red: the version the record holds


def test_a_current_image_is_skipped_and_its_replayed_message_ends_current(maintenance, outcomes):
    pipeline = maintenance.pipeline
    key = "photos/current.png"
    assert pipeline.invoke(pipeline.upload(key, png(RED))) == {"batchItemFailures": []}

    assert maintenance.plan([key])["skipped_current"] == 1
    everything = maintenance.plan([key], all=True)  # `all` enqueues it anyway: the resize function skips it
    assert (everything["skipped_current"], everything["enqueue"]) == (0, 1)
    before = pipeline.item(pipeline.image_id(key))
    assert maintenance.deliver(everything) == {"batchItemFailures": []}
    assert outcomes()[-1] == config_version.CURRENT
    assert pipeline.item(pipeline.image_id(key)) == before


def test_force_renders_a_current_image_again(maintenance, outcomes):
    pipeline = maintenance.pipeline
    key = "photos/forced.png"
    assert pipeline.invoke(pipeline.upload(key, png(RED))) == {"batchItemFailures": []}
    answer = maintenance.plan([key], force=True)
    assert bodies(answer)[0]["imgpipe"] == {"reprocess": True, "force": True}
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    assert outcomes()[-1] == "done"


def test_an_original_that_never_had_an_event_is_planned_as_a_created_event_and_rendered(
    maintenance, outcomes
):
    """No record: a reprocess would be `superseded` (nothing holds a version), so it is a plain event."""
    pipeline = maintenance.pipeline
    key = "photos/no event yet.png"
    version = pipeline.s3.put_object(Bucket=base.UPLOADS, Key=key, Body=png(BLUE))["VersionId"]

    answer = maintenance.plan([key])

    (body,) = bodies(answer)
    obj = body["Records"][0]["s3"]["object"]
    assert body["imgpipe"] == {"reprocess": False, "force": False}
    assert obj["versionId"] == version and "sequencer" not in obj
    assert obj["key"] == "photos/no+event+yet.png"  # URL-encoded as S3 writes keys in notifications
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    item = pipeline.item(pipeline.image_id(key))
    assert item["status"] == "done" and {f"{r['name']}.{r['format']}" for r in item["renditions"]} == {
        f"{n}.{'jpeg' if e == 'jpg' else e}" for n, e in (o.split(".") for o in DEFAULT_OUTPUTS)
    }
    assert maintenance.plan([key])["skipped_current"] == 1


def test_a_pending_api_upload_is_planned_from_its_object_and_rendered(maintenance, outcomes):
    pipeline = maintenance.pipeline
    image_id = "pJ0y8tW3Qm2Jm3vB7aLx1g"
    key = f"originals/{image_id}/cat.png"
    records.put_new(
        pipeline.table, records.new_record(image_id, "pending", {"key": key, "filename": "cat.png"})
    )
    pipeline.s3.put_object(Bucket=base.UPLOADS, Key=key, Body=png(RED))

    answer = maintenance.plan([key])

    assert answer["enqueue"] == 1 and bodies(answer)[0]["imgpipe"]["reprocess"] is False
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    item = pipeline.item(image_id)
    assert item["status"] == "done" and item["original"]["filename"] == "cat.png"


def test_a_key_that_no_longer_exists_is_a_counted_failure_not_an_error(maintenance):
    answer = maintenance.plan(["photos/gone.png"])
    assert answer["failed"] == 1 and answer["enqueue"] == 0
    assert answer["failures"] == [{"key": "photos/gone.png", "error_code": "source_not_found"}]
    assert answer["batches"] == []


@pytest.mark.parametrize("key", ["a b+c%20d/é ü.png", "x/100%/?&=#.png", "deep/" + "ñ" * 300 + ".png"])
def test_planned_keys_round_trip_through_the_resize_functions_parser(key):
    record = reprocess.s3_record("uploads", key, "v1", size=10)
    body = reprocess.message_body(record, reprocess=True, force=False)
    message = s3_events.parse_message(body)
    assert [obj.key for obj in message.objects] == [key]
    assert message.options == s3_events.Options(reprocess=True, force=False)


def test_1500_keys_planned_in_batches_of_100_read_each_record_once_and_enqueue_each_key_once(
    maintenance, monkeypatch
):
    """The Distributed Map hands the function batches of 100 keys (ItemBatcher); BatchGetItem reads
    up to 100 items a call (DynamoDB API Reference), so one call per batch."""
    pipeline = maintenance.pipeline
    keys = [f"bulk/{n:04d}.png" for n in range(1500)]
    data = png(RED)
    for key in keys:
        pipeline.s3.put_object(Bucket=base.UPLOADS, Key=key, Body=data)
    current = keys[::3]  # a third already rendered with this config
    for key in current:
        image_id = pipeline.image_id(key)
        version = pipeline.s3.head_object(Bucket=base.UPLOADS, Key=key)["VersionId"]
        done_record(pipeline, image_id, key, version)
    calls = count_batch_gets(monkeypatch, pipeline.table)

    answers = [maintenance.plan(keys[start : start + 100]) for start in range(0, 1500, 100)]

    assert calls == [100] * 15
    totals = {k: sum(a[k] for a in answers) for k in ("listed", "skipped_current", "enqueue", "failed")}
    assert totals == {"listed": 1500, "skipped_current": 500, "enqueue": 1000, "failed": 0}
    planned = [unquote(b["Records"][0]["s3"]["object"]["key"]) for a in answers for b in bodies(a)]
    assert sorted(planned) == sorted(set(keys) - set(current))  # each once
    for answer in answers:
        assert all(1 <= len(batch) <= 10 for batch in answer["batches"])
        ids = [entry["Id"] for batch in answer["batches"] for entry in batch]
        assert len(ids) == len(set(ids))


def done_record(pipeline, image_id: str, key: str, version: str) -> None:
    """A record as the resize function leaves a done image under the current config."""
    import resize_handler

    setup = resize_handler.setup()
    renditions = [
        {"name": name, "format": fmt, "key": f"{image_id}/t/{name}.{fmt}"} for name, fmt in setup.outputs
    ]
    pipeline.table.put_item(
        Item={
            "id": image_id,
            "status": "done",
            "original": {"key": key, "version_id": version},
            "version": version,
            "sequencer": "0" * 64,
            "config_version": setup.config_version,
            "renditions": renditions,
        }
    )


def count_batch_gets(monkeypatch, table) -> list[int]:
    """The number of keys of each BatchGetItem call the maintenance function makes."""
    from imgpipe import aws

    client = aws.table(table.name).meta.client
    real, sizes = client.batch_get_item, []

    def counted(**kwargs):
        sizes.append(sum(len(t["Keys"]) for t in kwargs["RequestItems"].values()))
        return real(**kwargs)

    monkeypatch.setattr(client, "batch_get_item", counted)
    return sizes


def test_unprocessed_keys_are_read_again_with_backoff(maintenance, monkeypatch):
    """BatchGetItem may answer part and hand the rest back in UnprocessedKeys (throttling, over 16 MB):
    "retry the operation starting with the next item to get" (DynamoDB API Reference)."""
    pipeline = maintenance.pipeline
    for n in range(4):
        done_record(pipeline, f"id-{n}", f"k{n}.png", "v1")
    client = pipeline.table.meta.client
    real, waits = client.batch_get_item, []

    def partial(**kwargs):
        request = kwargs["RequestItems"][base.TABLE]
        if len(request["Keys"]) > 1:  # answer one, hand the others back
            answer = real(RequestItems={base.TABLE: {**request, "Keys": request["Keys"][:1]}})
            answer["UnprocessedKeys"] = {base.TABLE: {**request, "Keys": request["Keys"][1:]}}
            return answer
        return real(**kwargs)

    monkeypatch.setattr(client, "batch_get_item", partial)
    found = records.get_many(pipeline.table, [f"id-{n}" for n in range(4)], sleep=waits.append)
    assert sorted(found) == [f"id-{n}" for n in range(4)]
    assert waits == sorted(waits) and len(waits) == 3 and waits[0] > 0

    monkeypatch.setattr(
        client, "batch_get_item", lambda **kw: {"Responses": {}, "UnprocessedKeys": kw["RequestItems"]}
    )
    with pytest.raises(TransientError):
        records.get_many(pipeline.table, ["id-0"], sleep=waits.append)


def test_batches_hold_at_most_10_entries_within_256_kib_with_unique_ids():
    """SQS SendMessageBatch: "up to 10 messages"; the sum of the bodies at most 256 KiB."""
    small = ["x" * 100] * 25
    assert [len(b) for b in reprocess.batches(small)] == [10, 10, 5]
    large = ["y" * 60_000] * 9  # four fit in 256 KiB, not five
    sized = reprocess.batches(large)
    assert [len(b) for b in sized] == [4, 4, 1]
    assert all(sum(len(e["MessageBody"]) for e in b) <= 256 * 1024 for b in sized)
    ids = [e["Id"] for b in sized for e in b]
    assert ids == [str(n) for n in range(9)]


def test_a_plan_of_100_keys_fits_a_step_functions_state(maintenance):
    """Step Functions: a state's output is at most 256 KiB; 100 keys of 200 characters fit."""
    pipeline = maintenance.pipeline
    keys = [f"long/{n:03d}-" + "k" * 190 + ".png" for n in range(100)]
    for key in keys:
        pipeline.s3.put_object(Bucket=base.UPLOADS, Key=key, Body=b"not read")
    answer = maintenance.plan(keys)
    assert answer["enqueue"] == 100
    assert len(json.dumps(answer).encode()) < reprocess.STATE_PAYLOAD_BYTES


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"action": "defragment"}, "unknown action 'defragment'"),
        ({}, "unknown action None"),
        ({"action": "plan_reprocess", "Items": "photos/a.png"}, "Items is not a list"),
        ({"action": "plan_reprocess", "Items": [{"Key": "a"}]}, "an item is not"),
        ({"action": "plan_reprocess", "Items": [], "BatchInput": {"force": "yes"}}, "BatchInput.force"),
        ({"action": "plan_reprocess", "Items": [], "BatchInput": {"everything": True}}, "unknown BatchInput"),
    ],
)
def test_a_bad_event_fails_with_bad_request_naming_what_is_wrong(maintenance, event, says):
    with pytest.raises(BadRequest) as raised:
        maintenance.invoke(event)
    assert says in str(raised.value) and raised.value.code == "bad_request"
