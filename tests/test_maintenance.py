"""The maintenance function against moto: reprocess plans the resize function accepts, reconcile passes.

Every planned message is fed to the real resize handler, in the same mock, to
prove that it renders what the plan meant it to render (docs/config-version.md,
"Reprocess"; docs/reconcile.md).
"""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import unquote

import pytest

from imgpipe import config_version, records, reprocess, s3_events
from imgpipe.errors import BadRequest, PermanentError, TransientError
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


def test_keys_planned_in_batches_of_100_read_each_record_once_and_enqueue_each_key_once(
    maintenance, monkeypatch
):
    """The Distributed Map hands the function batches of 100 keys (ItemBatcher); BatchGetItem reads
    up to 100 items a call (DynamoDB API Reference), so one call per batch. Three batches here
    (each key costs moto in process ~15 ms to set up); 1,500 keys go through the Distributed Map
    itself in tests/test_reprocess_stack.py."""
    pipeline = maintenance.pipeline
    keys = [f"bulk/{n:04d}.png" for n in range(300)]
    data = png(RED)
    for key in keys:
        pipeline.s3.put_object(Bucket=base.UPLOADS, Key=key, Body=data)
    current = keys[::3]  # a third already rendered with this config
    for key in current:
        image_id = pipeline.image_id(key)
        version = pipeline.s3.head_object(Bucket=base.UPLOADS, Key=key)["VersionId"]
        done_record(pipeline, image_id, key, version)
    calls = count_batch_gets(monkeypatch, pipeline.table)

    answers = [maintenance.plan(keys[start : start + 100]) for start in range(0, len(keys), 100)]

    assert calls == [100] * 3
    totals = {k: sum(a[k] for a in answers) for k in ("listed", "skipped_current", "enqueue", "failed")}
    assert totals == {"listed": 300, "skipped_current": 100, "enqueue": 200, "failed": 0}
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
        ({"action": "summarize_reprocess"}, "does not name a results manifest"),
        (
            {
                "action": "summarize_reprocess",
                "ResultWriterDetails": {"Bucket": "other", "Key": "r/manifest.json"},
            },
            "not in the resized bucket",
        ),
    ],
)
def test_a_bad_event_fails_with_bad_request_naming_what_is_wrong(maintenance, event, says):
    with pytest.raises(BadRequest) as raised:
        maintenance.invoke(event)
    assert says in str(raised.value) and raised.value.code == "bad_request"


# --- poison: a recorded content failure is reported, not sent again ---


def test_a_poison_is_reported_failed_with_its_recorded_code_and_not_enqueued_again(maintenance, monkeypatch):
    """A file that is not an image fails in the resize function, which records not_an_image. The same
    version under the same config would fail the same way: the next plan reports it, sends nothing."""
    pipeline = maintenance.pipeline
    key = "photos/poison.jpg"
    assert pipeline.invoke(pipeline.upload(key, b"this is not an image")) == {"batchItemFailures": []}
    assert pipeline.item(pipeline.image_id(key))["error"]["code"] == "not_an_image"

    answer = maintenance.plan([key])

    assert {k: answer[k] for k in ("listed", "skipped_current", "enqueue", "failed")} == {
        "listed": 1,
        "skipped_current": 0,
        "enqueue": 0,
        "failed": 1,
    }
    assert answer["failures"] == [{"key": key, "error_code": "not_an_image"}]
    assert answer["batches"] == []
    # all and force send it anyway; a new rendition config tries it again.
    assert maintenance.plan([key], all=True)["enqueue"] == 1
    assert maintenance.plan([key], force=True)["enqueue"] == 1
    redeploy(monkeypatch, SMALL)
    assert (maintenance.plan([key])["enqueue"], maintenance.plan([key])["failed"]) == (1, 0)


def poison_record(code: str, status: str = "failed", version: str = "v1", config: str = "cfg") -> dict:
    return {
        "status": status,
        "version": version,
        "original": {"key": "k.jpg", "version_id": "v1"},
        "error": {"code": code, "message": "..."},
        "config_version": config,
    }


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (poison_record("not_an_image"), "failed"),
        (poison_record("unsupported_format"), "failed"),
        (poison_record("corrupt_image"), "failed"),
        (poison_record("too_many_scans"), "failed"),
        # Limits are not part of the config version: raising MAX_PIXELS / MAX_SOURCE_BYTES retries them.
        (poison_record("too_many_pixels"), "enqueue"),
        (poison_record("source_too_large"), "enqueue"),
        # May go another way next time.
        (poison_record("render_timeout"), "enqueue"),
        (poison_record("stuck_processing"), "enqueue"),
        (poison_record("source_not_found"), "enqueue"),
        (poison_record("not_an_image", config="older"), "enqueue"),  # another rendition config
        (poison_record("not_an_image", version="v0"), "enqueue"),  # holds no version of the key
        (poison_record("not_an_image", status="pending"), "enqueue"),
    ],
)
def test_the_poison_rule(record, expected):
    deployment = reprocess.Deployment("cfg", frozenset(), lambda key: "id")
    assert reprocess.decide(record, "k.jpg", deployment, reprocess.Options()) == expected
    assert reprocess.decide(record, "k.jpg", deployment, reprocess.Options(all=True)) == "enqueue"


# --- summarize_reprocess: the reprocess execution's output ---


def counts_state(plan: dict, refused: int = 0) -> dict:
    """What the machine's Counts state makes of a plan: its counts and SendMessageBatch's answers."""
    failed = [{"Id": str(i), "Code": "InternalError", "SenderFault": False} for i in range(refused)]
    sent = [{"Failed": failed if n == 0 else []} for n in range(len(plan["batches"]))]
    return {name: plan[name] for name in ("listed", "skipped_current", "enqueue", "failed", "failures")} | {
        "sent": sent
    }


def write_map_results(pipeline, succeeded: list[dict], failed: list[dict]) -> dict:
    """The ResultWriter's files in the resized bucket, in AWS's shape; the map's output naming them."""
    run_id = str(uuid.uuid4())
    run_arn = f"arn:aws:states:us-east-1:123456789012:mapRun:imgpipe-dev-reprocess/reprocess:{run_id}"
    base_key = f"reprocess-results/{run_id}/"
    files: dict[str, list] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status, children in (("SUCCEEDED", succeeded), ("FAILED", failed)):
        if children:
            body = json.dumps(children).encode()
            pipeline.s3.put_object(Bucket=base.RESIZED, Key=f"{base_key}{status}_0.json", Body=body)
            files[status].append({"Key": f"{base_key}{status}_0.json", "Size": len(body)})
    manifest = {"DestinationBucket": base.RESIZED, "MapRunArn": run_arn, "ResultFiles": files}
    pipeline.s3.put_object(Bucket=base.RESIZED, Key=f"{base_key}manifest.json", Body=json.dumps(manifest))
    return {
        "MapRunArn": run_arn,
        "ResultWriterDetails": {"Bucket": base.RESIZED, "Key": f"{base_key}manifest.json"},
    }


def child_result(status: str, keys: list[str], output: dict | None = None) -> dict:
    doc = {
        "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:m/reprocess:{uuid.uuid4()}",
        "Input": json.dumps(
            {"Items": [{"key": k} for k in keys], "BatchInput": {"all": False, "force": False}}
        ),
        "InputDetails": {"Included": True},
        "Status": status,
    }
    if output is not None:
        doc.update(Output=json.dumps(output), OutputDetails={"Included": True})
    else:
        doc.update(Error="Lambda.Unknown", Cause="Task timed out after 120.00 seconds")
    return doc


def test_the_execution_output_sums_the_map_runs_results_read_from_the_resized_bucket(maintenance):
    """The reprocess map's output is only {MapRunArn, ResultWriterDetails} (AWS, "ResultWriter
    (Map)"); summarize_reprocess reads the manifest and result files and answers the counts."""
    pipeline = maintenance.pipeline
    assert pipeline.invoke(pipeline.upload("photos/current.png", png(RED))) == {"batchItemFailures": []}
    pipeline.s3.put_object(Bucket=base.UPLOADS, Key="photos/new.png", Body=png(BLUE))
    first = maintenance.plan(["photos/current.png", "photos/new.png", "photos/gone.png"])
    second = maintenance.plan(["photos/new.png"])
    details = write_map_results(
        pipeline,
        [
            child_result("SUCCEEDED", ["k"], counts_state(first)),
            child_result("SUCCEEDED", ["k"], counts_state(second, 1)),
        ],
        [child_result("FAILED", ["photos/x.png", "photos/y.png"])],
    )

    answer = maintenance.invoke({"action": "summarize_reprocess", **details})

    assert answer == {
        "listed": 3 + 1 + 2,
        "skipped_current": 1,
        "enqueued": 1 + 0,  # the second batch's one entry was refused by SQS
        "failed": 1 + 1 + 2,
        "failed_batches": 1,
        "not_started": 0,
        "failures": [
            {"key": "photos/gone.png", "error_code": "source_not_found"},
            {"key": None, "error_code": "sqs:InternalError"},
            {"key": "photos/x.png", "error_code": "batch:Lambda.Unknown"},
            {"key": "photos/y.png", "error_code": "batch:Lambda.Unknown"},
        ],
        "map_run_arn": details["MapRunArn"],
        "results": {"bucket": base.RESIZED, "manifest": details["ResultWriterDetails"]["Key"]},
    }


def test_a_manifest_that_is_gone_is_a_permanent_error_naming_it(maintenance):
    details = {"Bucket": base.RESIZED, "Key": "reprocess-results/nothing/manifest.json"}
    with pytest.raises(PermanentError) as raised:
        maintenance.invoke(
            {"action": "summarize_reprocess", "MapRunArn": "arn:x", "ResultWriterDetails": details}
        )
    assert raised.value.code == "source_not_found"


# --- reconcile (docs/reconcile.md) ---


def age(pipeline, image_id: str, seconds: int) -> str:
    """Move the record's index position ``seconds`` into the past, as if it had waited that long."""
    from datetime import UTC, datetime, timedelta

    since = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    since = since.replace("+00:00", "Z")
    pipeline.table.update_item(
        Key={"id": image_id},
        UpdateExpression="SET unfinished_since = :since, updated_at = :since",
        ExpressionAttributeValues={":since": since},
    )
    return since


def reconcile(maintenance, next_token=None) -> dict:
    return maintenance.invoke({"action": "reconcile", "next": next_token})


def counts(answer: dict) -> dict:
    names = ("reenqueued_pending", "reenqueued_stuck", "failed_stuck", "expired", "left_alone")
    return {name: answer[name] for name in names if answer[name]}


def api_upload(pipeline, image_id: str, status: str = "pending", store: bool = True) -> str:
    key = f"originals/{image_id}/photo.png"
    records.put_new(
        pipeline.table, records.new_record(image_id, status, {"key": key, "filename": "photo.png"})
    )
    if store:
        pipeline.s3.put_object(Bucket=base.UPLOADS, Key=key, Body=png(RED))
    return key


def unfinished(pipeline, status: str) -> list[str]:
    from boto3.dynamodb.conditions import Key

    response = pipeline.table.query(
        IndexName=records.UNFINISHED_INDEX, KeyConditionExpression=Key("unfinished").eq(status)
    )
    return [item["id"] for item in response["Items"]]


def view(record: dict) -> dict:
    from imgpipe import api

    return api.image_view(record, lambda key: f"https://cdn.example/{key}")


IDS = [f"{n:02d}" + "A" * 20 for n in range(10)]


def test_a_pending_upload_whose_event_never_came_is_rendered_after_one_pass(maintenance, outcomes):
    """On AWS a new bucket notification takes minutes to start delivering: uploads meanwhile get no event."""
    pipeline = maintenance.pipeline
    api_upload(pipeline, IDS[0])
    age(pipeline, IDS[0], 901)  # RECONCILE_PENDING_AFTER_S is 900 by default
    api_upload(pipeline, IDS[1])  # younger than the threshold: its event may still come

    answer = reconcile(maintenance)

    assert counts(answer) == {"reenqueued_pending": 1} and answer["next"] is None
    (body,) = bodies(answer)
    assert body["imgpipe"] == {"reprocess": False, "force": False}
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    assert pipeline.item(IDS[0])["status"] == "done"
    assert pipeline.item(IDS[1])["status"] == "pending"
    assert counts(reconcile(maintenance)) == {}  # nothing due again until another threshold passes


def test_a_pending_record_reenqueued_moves_to_the_back_of_the_index_and_is_not_sent_twice(maintenance):
    pipeline = maintenance.pipeline
    api_upload(pipeline, IDS[0])
    age(pipeline, IDS[0], 1000)
    assert counts(reconcile(maintenance)) == {"reenqueued_pending": 1}
    assert counts(reconcile(maintenance)) == {}
    assert unfinished(pipeline, "pending") == [IDS[0]]  # still pending: the message is on its way
    age(pipeline, IDS[0], 1000)
    assert counts(reconcile(maintenance)) == {"reenqueued_pending": 1}  # lost again: sent again


def test_a_pending_record_whose_original_never_arrived_is_left_alone(maintenance):
    pipeline = maintenance.pipeline
    api_upload(pipeline, IDS[0], store=False)
    age(pipeline, IDS[0], 1000)
    answer = reconcile(maintenance)
    assert counts(answer) == {"left_alone": 1} and answer["batches"] == []
    assert pipeline.item(IDS[0])["status"] == "pending"


def processing(pipeline, key: str) -> str:
    """An image the resize function started and never finished (killed on every delivery)."""
    from imgpipe import ordering

    version = pipeline.s3.put_object(Bucket=base.UPLOADS, Key=key, Body=png(BLUE))["VersionId"]
    image_id = pipeline.image_id(key)
    source = ordering.Source.of(key, "0065F2A1B2C3D4E5F6", version)
    original = {"key": key, "version_id": version, "size": 1}
    records.mark_processing(pipeline.table, image_id, original, source=source, config_version="0" * 12)
    return image_id


def test_a_stuck_processing_record_is_reenqueued_once_and_the_resize_handler_finishes_it(
    maintenance, outcomes
):
    pipeline = maintenance.pipeline
    image_id = processing(pipeline, "photos/stuck.png")
    # Not yet (RECONCILE_STUCK_AFTER_S is 1800): a minute of slack for a loaded machine.
    age(pipeline, image_id, 1740)
    assert counts(reconcile(maintenance)) == {}
    age(pipeline, image_id, 1801)

    answer = reconcile(maintenance)

    assert counts(answer) == {"reenqueued_stuck": 1}
    (body,) = bodies(answer)
    assert body["imgpipe"] == {"reprocess": True, "force": False}  # for the version the record holds
    assert pipeline.item(image_id)[records.STUCK_FLAG]
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    item = pipeline.item(image_id)
    assert item["status"] == "done" and records.STUCK_FLAG not in item
    _, data = pipeline.get(pipeline.rendition(image_id, "thumb.jpg"))
    assert opened(data).getpixel((50, 50))[2] > 200  # blue: the stuck version, rendered


def test_a_record_stuck_again_after_its_one_reenqueue_fails_with_stuck_processing(maintenance):
    pipeline = maintenance.pipeline
    image_id = processing(pipeline, "photos/poison.png")
    age(pipeline, image_id, 2000)
    assert counts(reconcile(maintenance)) == {"reenqueued_stuck": 1}
    assert counts(reconcile(maintenance)) == {}  # its re-enqueue gets a whole stuck window
    age(pipeline, image_id, 2000)

    assert counts(reconcile(maintenance)) == {"failed_stuck": 1}

    item = pipeline.item(image_id)
    assert item["status"] == "failed" and item["error"]["code"] == "stuck_processing"
    assert records.STUCK_FLAG not in item and unfinished(pipeline, "processing") == []
    shown = view(item)
    assert shown["status"] == "failed"
    assert shown["error"] == {"code": "stuck_processing", "message": reconcile_module().STUCK_MESSAGE}


@pytest.fixture
def bus(maintenance, monkeypatch):
    """The resize function's bus (EVENT_BUS_NAME, which maintenance shares) and a backend's queue."""
    import maintenance_handler
    from tests.test_events import BUS, Events

    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    maintenance_handler.reset()
    return Events()


def stuck_twice(maintenance, key: str) -> str:
    """A record stuck, re-enqueued once, and stuck again: the next pass fails it."""
    image_id = processing(maintenance.pipeline, key)
    age(maintenance.pipeline, image_id, 2000)
    assert counts(reconcile(maintenance)) == {"reenqueued_stuck": 1}
    age(maintenance.pipeline, image_id, 2000)
    return image_id


def test_a_record_reconcile_fails_publishes_one_image_failed_event_shaped_like_the_resize_functions(
    maintenance, bus
):
    """docs/events.md: "Image Failed once the record says failed", whoever wrote failed."""
    from conftest import load_event
    from tests.test_events import envelope_shape, shape

    pipeline = maintenance.pipeline
    image_id = stuck_twice(maintenance, "photos/stuck.png")
    item = pipeline.item(image_id)

    answer = reconcile(maintenance)

    assert counts(answer) == {"failed_stuck": 1} and answer["events_not_published"] == 0
    (event,) = bus.received()
    assert envelope_shape(event) == shape(load_event("eventbridge_image_failed.json"))
    assert (event["source"], event["detail-type"]) == ("imgpipe", "Image Failed")
    detail = event["detail"]
    assert (detail["image_id"], detail["status"], detail["renditions"]) == (image_id, "failed", [])
    assert detail["error"] == {"code": "stuck_processing", "message": reconcile_module().STUCK_MESSAGE}
    assert detail["error"] == pipeline.item(image_id)["error"]
    assert (detail["source"]["bucket"], detail["source"]["key"]) == (base.UPLOADS, "photos/stuck.png")
    assert detail["source"]["version_id"] == item["original"]["version_id"]
    assert detail["config_version"] == item["config_version"]
    # Later passes find nothing to do and publish nothing.
    assert counts(reconcile(maintenance)) == {} and bus.received() == []


def test_a_pass_whose_fail_write_finds_the_record_moved_on_publishes_nothing(maintenance, bus, monkeypatch):
    """Two passes that read the same stuck record: only the one whose conditional write moved it publishes."""
    module = reconcile_module()
    image_id = stuck_twice(maintenance, "photos/raced.png")
    seen = module.due(maintenance.pipeline.table, "processing", "9999", 100, None)
    stale = {image_id: maintenance.pipeline.item(image_id)}
    assert counts(reconcile(maintenance)) == {"failed_stuck": 1} and len(bus.received()) == 1

    # The later pass read the index and the record before the first pass's write.
    monkeypatch.setattr(
        module, "due", lambda table, status, *_: seen if status == "processing" else ([], None)
    )
    monkeypatch.setattr(module.reprocess, "read_records", lambda table, ids: stale)
    assert counts(reconcile(maintenance)) == {"left_alone": 1}
    assert bus.received() == []


def test_an_event_that_cannot_be_published_leaves_the_record_failed_and_is_counted_for_the_alarm(
    maintenance, bus, monkeypatch, capsys
):
    """Counted in the answer and as the metric the alarm maintenance-events-not-published watches:
    EventsNotPublished in the functions' namespace, dimension service (Powertools EMF, as the resize
    function's; CloudWatch "Embedded metric format specification": a log line with an ``_aws`` object
    becomes a metric)."""
    import maintenance_handler

    class Refusing:
        def put_events(self, Entries):
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "AccessDeniedException"}]}

    image_id = stuck_twice(maintenance, "photos/unannounced.png")
    real = maintenance_handler.aws.client

    def client(service):
        return Refusing() if service == "events" else real(service)

    client.cache_clear = real.cache_clear  # the fixture's teardown resets the cached clients
    monkeypatch.setattr(maintenance_handler.aws, "client", client)
    capsys.readouterr()
    answer = reconcile(maintenance)
    assert counts(answer) == {"failed_stuck": 1} and answer["events_not_published"] == 1
    assert maintenance.pipeline.item(image_id)["status"] == "failed"
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    (emf,) = [line for line in lines if "_aws" in line]
    assert emf["EventsNotPublished"] == [1.0]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == os.environ["POWERTOOLS_METRICS_NAMESPACE"]
    assert directive["Dimensions"] == [["service"]]
    assert emf["service"] == os.environ["POWERTOOLS_SERVICE_NAME"]
    # A pass that lost no event writes no metric line.
    assert counts(reconcile(maintenance)) == {}
    assert not [x for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]


def test_without_a_bus_reconcile_publishes_nothing(maintenance):
    from tests.test_events import Events

    backend = Events()  # a bus the function is not told about
    stuck_twice(maintenance, "photos/quiet.png")
    answer = reconcile(maintenance)
    assert counts(answer) == {"failed_stuck": 1} and answer["events_not_published"] == 0
    assert backend.received() == []


def reconcile_module():
    from imgpipe import reconcile as module

    return module


def test_a_record_that_moves_on_between_the_read_and_the_write_is_left_alone(maintenance, monkeypatch):
    """The writes are conditional on the status and index position read (DynamoDB ConditionExpression):
    a render that finishes meanwhile wins, and nothing is sent for it."""
    from imgpipe import ordering

    pipeline = maintenance.pipeline
    image_id = processing(pipeline, "photos/race.png")
    age(pipeline, image_id, 2000)
    module = reconcile_module()
    real = module.reprocess.read_records

    def read_then_finish(table, image_ids):
        found = real(table, image_ids)  # the pass decides on this read...
        if image_id not in image_ids:
            return found
        item = pipeline.item(image_id)  # ...while the resize function finishes the image
        source = ordering.Source(item["original"]["key"], item["sequencer"], item["version"])
        records.mark_done(pipeline.table, image_id, item["original"], [], source=source, config_version="x")
        return found

    monkeypatch.setattr(module.reprocess, "read_records", read_then_finish)
    answer = reconcile(maintenance)

    assert counts(answer) == {"left_alone": 1} and answer["batches"] == []
    item = pipeline.item(image_id)
    assert item["status"] == "done" and records.STUCK_FLAG not in item


def test_an_unused_presigned_upload_expires_keeps_its_ttl_and_leaves_the_index(maintenance):
    import time

    pipeline = maintenance.pipeline
    api_upload(pipeline, IDS[0], status="awaiting_upload", store=False)
    api_upload(pipeline, IDS[1], status="awaiting_upload", store=False)
    form_expired = int(time.time()) - 60 + records.UNUSED_UPLOAD_GRACE_SECONDS  # as the upload API sets it
    form_valid = int(time.time()) + 3000 + records.UNUSED_UPLOAD_GRACE_SECONDS  # a longer form
    for image_id, ttl in ((IDS[0], form_expired), (IDS[1], form_valid)):
        pipeline.table.update_item(
            Key={"id": image_id},
            UpdateExpression="SET expires_at = :t",
            ExpressionAttributeValues={":t": ttl},
        )
        age(pipeline, image_id, 960)  # PRESIGN_POST_EXPIRY_SECONDS is 900 by default

    assert counts(reconcile(maintenance)) == {"expired": 1, "left_alone": 1}

    item = pipeline.item(IDS[0])
    assert item["status"] == "expired" and item[records.TTL_ATTRIBUTE] == form_expired
    assert unfinished(pipeline, "awaiting_upload") == [IDS[1]]
    assert view(item)["status"] == "expired"
    assert view(item)["error"] == {
        "code": "upload_expired",
        "message": "the upload form expired before a file arrived",
    }
    assert pipeline.item(IDS[1])["status"] == "awaiting_upload"


def test_a_file_that_arrives_after_its_upload_expired_is_still_rendered(maintenance, outcomes):
    """A POST sent just before the form expires still lands (S3 checks the policy when it starts)."""
    pipeline = maintenance.pipeline
    key = api_upload(pipeline, IDS[0], status="awaiting_upload", store=False)
    age(pipeline, IDS[0], 960)
    pipeline.table.update_item(
        Key={"id": IDS[0]}, UpdateExpression="REMOVE expires_at"
    )  # a record written before the TTL existed
    assert counts(reconcile(maintenance)) == {"expired": 1}
    assert pipeline.item(IDS[0])[records.TTL_ATTRIBUTE] > 0

    assert pipeline.invoke(pipeline.upload(key, png(RED))) == {"batchItemFailures": []}

    item = pipeline.item(IDS[0])
    assert item["status"] == "done" and records.TTL_ATTRIBUTE not in item and "error" not in item


def test_pages_are_bounded_and_the_next_token_round_trips_as_json(maintenance, monkeypatch):
    import maintenance_handler

    pipeline = maintenance.pipeline
    monkeypatch.setenv("RECONCILE_PAGE_SIZE", "2")
    maintenance_handler.reset()
    for image_id in IDS[:5]:
        api_upload(pipeline, image_id)
        age(pipeline, image_id, 1000)

    token, seen, passes = None, [], 0
    while True:
        answer = reconcile(maintenance, token)
        passes += 1
        assert answer["reenqueued_pending"] <= 2
        seen += [b["Records"][0]["s3"]["object"]["key"].split("/")[1] for b in bodies(answer)]
        token = json.loads(json.dumps(answer["next"]))
        if token is None:
            break
        assert set(token) == {"pending"}  # only the status with more to read

    assert passes == 3 and sorted(seen) == IDS[:5]


@pytest.mark.parametrize("token", [{"done": None}, {}, "pending", {"pending": {"id": 3}}])
def test_a_token_that_is_not_reconciles_own_is_a_bad_request(maintenance, token):
    with pytest.raises(BadRequest, match="not a reconcile token"):
        reconcile(maintenance, token)


@pytest.mark.parametrize(
    ("name", "value"),
    [("RECONCILE_PENDING_AFTER_S", "0"), ("RECONCILE_STUCK_AFTER_S", "soon"), ("RECONCILE_PAGE_SIZE", "101")],
)
def test_a_bad_reconcile_setting_fails_loudly_with_its_name(maintenance, monkeypatch, name, value):
    from imgpipe.errors import ConfigError

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        reconcile(maintenance)


def test_an_unused_presigned_upload_reads_expired_through_get_images(maintenance, monkeypatch):
    """The whole way: POST /uploads, the form's lifetime passes, a pass, then GET /images/{id}."""
    import time

    import maintenance_handler
    import upload_handler
    from tests.upload_api import get_image, post_uploads

    context = maintenance.pipeline.context
    monkeypatch.setenv("PRESIGN_POST_EXPIRY_SECONDS", "1")  # read by both functions
    upload_handler.settings.cache_clear()
    maintenance_handler.reset()
    try:
        doc = {"filename": "never.png", "content_type": "image/png", "size": 1000}
        created = upload_handler.handler(post_uploads(doc), context)
        image_id = json.loads(created["body"])["id"]
        assert counts(reconcile(maintenance)) == {}  # the form is still valid
        time.sleep(1.2)

        assert counts(reconcile(maintenance)) == {"expired": 1}

        got = upload_handler.handler(get_image(image_id), context)
    finally:
        upload_handler.settings.cache_clear()
    body = json.loads(got["body"])
    assert got["statusCode"] == 200 and body["status"] == "expired" and body["renditions"] == []
    assert body["error"] == {
        "code": "upload_expired",
        "message": "the upload form expired before a file arrived",
    }


@pytest.mark.parametrize(
    ("status", "record", "expected"),
    [
        ("pending", {"status": "pending"}, "reenqueue_pending"),
        ("pending", {"status": "processing"}, "leave"),  # its event came meanwhile
        ("pending", None, "leave"),  # deleted meanwhile
        ("processing", {"status": "processing"}, "reenqueue_stuck"),
        (
            "processing",
            {"status": "processing", records.STUCK_FLAG: "2026-12-07T00:00:00.000Z"},
            "fail_stuck",
        ),
        ("processing", {"status": "processing", "unfinished_since": "later"}, "leave"),  # started again
        ("awaiting_upload", {"status": "awaiting_upload", "expires_at": 1000 + 172800}, "expire"),
        (
            "awaiting_upload",
            {"status": "awaiting_upload", "expires_at": 1001 + 172800},
            "leave",
        ),  # form valid
        ("awaiting_upload", {"status": "awaiting_upload"}, "expire"),  # written before the TTL existed
        ("awaiting_upload", {"status": "done"}, "leave"),
    ],
)
def test_the_reconcile_rule_for_each_status(status, record, expected):
    seen = "2026-12-07T10:00:00.000Z"
    if record is not None:
        record = {"unfinished_since": seen, **record}
    assert reconcile_module().action(status, seen, record, now_epoch=1000) == expected


def test_an_original_in_an_unversioned_bucket_is_planned_without_a_version_id_and_rendered(
    maintenance, monkeypatch
):
    """S3 sends no versionId for an object in an unversioned bucket; HeadObject answers none (or "null")."""
    import maintenance_handler

    pipeline = maintenance.pipeline
    pipeline.s3.create_bucket(Bucket="plain-uploads")
    monkeypatch.setenv("UPLOADS_BUCKET", "plain-uploads")
    maintenance_handler.reset()
    pipeline.s3.put_object(Bucket="plain-uploads", Key="photos/plain.png", Body=png(BLUE))

    answer = maintenance.plan(["photos/plain.png"])

    (body,) = bodies(answer)
    assert "versionId" not in body["Records"][0]["s3"]["object"] and body["imgpipe"]["reprocess"] is False
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    assert pipeline.item(pipeline.image_id("photos/plain.png"))["status"] == "done"


def test_a_failed_image_is_enqueued_by_default_and_renders_once_the_limit_is_raised(
    maintenance, outcomes, monkeypatch
):
    """MAX_PIXELS decides whether work is refused, not what a rendition looks like: raising it keeps
    the config version, and the failed images are exactly what a default reprocess sends again."""
    import maintenance_handler
    import resize_handler

    pipeline = maintenance.pipeline
    monkeypatch.setenv("MAX_PIXELS", "1000")
    resize_handler.reset()
    key = "photos/too big.png"
    assert pipeline.invoke(pipeline.upload(key, png(RED))) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    assert pipeline.item(image_id)["error"]["code"] == "too_many_pixels"
    monkeypatch.delenv("MAX_PIXELS")
    resize_handler.reset()
    maintenance_handler.reset()

    answer = maintenance.plan([key])

    assert answer["enqueue"] == 1 and bodies(answer)[0]["imgpipe"]["reprocess"] is True
    assert maintenance.deliver(answer) == {"batchItemFailures": []}
    item = pipeline.item(image_id)
    assert item["status"] == "done" and "error" not in item
    assert maintenance.plan([key])["skipped_current"] == 1
