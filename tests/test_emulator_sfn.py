"""The emulator's Step Functions answers and runs state machines as AWS does (local/moto_sfn.py)."""

from __future__ import annotations

import json
import shutil
import time
import uuid

import pytest

from local.emulator import REPO_ROOT, running

pytestmark = pytest.mark.slow

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sfn"
PASS_MACHINE = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


def wait_for_execution(sfn, arn: str, timeout: float = 60.0) -> dict:
    """DescribeExecution until the execution leaves RUNNING (the interpreter runs in a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    raise AssertionError(f"{arn} still RUNNING after {timeout:.0f}s")


def failure_events(sfn, arn: str) -> list[dict]:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e for e in events if e["type"].endswith("Failed")]


# -- Slice A: what Terraform calls, and executions that really run --------------------------------


def test_validate_answers_ok_for_a_valid_definition(emulator):
    """ValidateStateMachineDefinition: result OK "when no syntax errors are found", with no
    ERROR diagnostics (the aws provider calls it at plan for every aws_sfn_state_machine)."""
    answer = emulator.client("stepfunctions").validate_state_machine_definition(
        definition=json.dumps(PASS_MACHINE), type="STANDARD"
    )
    assert (answer["result"], answer["diagnostics"], answer["truncated"]) == ("OK", [], False)


def test_validate_fails_text_that_is_not_json_with_invalid_json_description(emulator):
    """ValidateStateMachineDefinition: FAIL "if the workflow definition does not pass
    verification"; the error code for a JSON syntax problem is INVALID_JSON_DESCRIPTION."""
    answer = emulator.client("stepfunctions").validate_state_machine_definition(definition='{"StartAt": "A",')
    assert answer["result"] == "FAIL"
    (diagnostic,) = answer["diagnostics"]
    assert (diagnostic["severity"], diagnostic["code"]) == ("ERROR", "INVALID_JSON_DESCRIPTION")
    assert "line 1" in diagnostic["location"]


def test_validate_fails_a_definition_with_an_unknown_state_type_as_schema_validation_failed(emulator):
    """SCHEMA_VALIDATION_FAILED: "Schema validation reported errors" (a State's Type must be one
    of the eight the Amazon States Language defines)."""
    bad = {"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": True}}}
    answer = emulator.client("stepfunctions").validate_state_machine_definition(definition=json.dumps(bad))
    assert answer["result"] == "FAIL"
    assert [d["code"] for d in answer["diagnostics"]] == ["SCHEMA_VALIDATION_FAILED"]


def test_list_state_machine_versions_is_empty_until_a_version_is_published(emulator):
    """ListStateMachineVersions lists published versions, "sorted in descending order of the
    version creation time"; a machine created without publish has none (the provider reads it on
    every refresh)."""
    sfn = emulator.client("stepfunctions")
    plain = sfn.create_state_machine(name="plain", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN)
    assert (
        sfn.list_state_machine_versions(stateMachineArn=plain["stateMachineArn"])["stateMachineVersions"]
        == []
    )

    published = sfn.create_state_machine(
        name="published", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN, publish=True
    )
    second = sfn.update_state_machine(
        stateMachineArn=published["stateMachineArn"], definition=json.dumps(PASS_MACHINE), publish=True
    )
    versions = sfn.list_state_machine_versions(stateMachineArn=published["stateMachineArn"])
    assert [v["stateMachineVersionArn"] for v in versions["stateMachineVersions"]] == [
        second["stateMachineVersionArn"],
        published["stateMachineVersionArn"],
    ]


def test_a_task_state_sends_to_the_emulators_own_queue_whatever_moto_port_the_caller_had(monkeypatch):
    """Executions run their states (Step Functions' SQS integration sendMessage delivers the
    message). moto sends a Task state's inner call to localhost:$MOTO_PORT: the server sets it to
    its own port, so a stale MOTO_PORT in the caller's environment changes nothing."""
    monkeypatch.setenv("MOTO_PORT", "9")  # discard: nothing listens there
    with running() as emu:
        sqs, sfn = emu.client("sqs"), emu.client("stepfunctions")
        url = sqs.create_queue(QueueName="work")["QueueUrl"]
        definition = {
            "StartAt": "Send",
            "States": {
                "Send": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage",
                    "Parameters": {"QueueUrl": url, "MessageBody.$": "$.body"},
                    "End": True,
                }
            },
        }
        machine = sfn.create_state_machine(name="send", definition=json.dumps(definition), roleArn=ROLE_ARN)
        run = sfn.start_execution(
            stateMachineArn=machine["stateMachineArn"], input=json.dumps({"body": "hi"})
        )
        described = wait_for_execution(sfn, run["executionArn"])
        assert described["status"] == "SUCCEEDED", failure_events(sfn, run["executionArn"])
        assert "MessageId" in json.loads(described["output"])
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
        assert [m["Body"] for m in messages] == ["hi"]


def test_describe_execution_gives_a_string_result_as_json_text(emulator):
    """DescribeExecution's output is "the JSON output data of the execution": a string result is
    the JSON string "done", quoted."""
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": "done", "End": True}}}
    described, _ = run_machine(emulator, "text", definition)
    assert (described["status"], described["output"]) == ("SUCCEEDED", '"done"')


def test_executions_started_without_a_name_get_distinct_uuid_names(emulator):
    """StartExecution: "If you don't provide a name for the execution, Step Functions automatically
    generates a universally unique identifier (UUID) as the execution name"."""
    sfn = emulator.client("stepfunctions")
    arn = sfn.create_state_machine(name="unnamed", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN)[
        "stateMachineArn"
    ]
    runs = [sfn.start_execution(stateMachineArn=arn)["executionArn"] for _ in range(2)]
    names = [run.rsplit(":", 1)[1] for run in runs]
    assert len(set(names)) == 2
    assert all(str(uuid.UUID(name)) == name for name in names)
    assert [wait_for_execution(sfn, run)["status"] for run in runs] == ["SUCCEEDED", "SUCCEEDED"]


def test_a_state_machine_survives_the_snapshot_of_a_warm_start_and_still_runs(tmp_path):
    """The local stack restores the emulator from a snapshot (local/snapshot.py): the machines
    Terraform created are there after a restart, and their executions run, as on AWS."""
    snapshot = tmp_path / "emulator.snapshot"
    with running(snapshot=snapshot) as emu:
        sfn = emu.client("stepfunctions")
        arn = sfn.create_state_machine(name="kept", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN)[
            "stateMachineArn"
        ]
        emu.save_snapshot()
    with running(snapshot=snapshot) as emu:
        assert emu.restored()
        sfn = emu.client("stepfunctions")
        assert [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]] == [arn]
        run = sfn.start_execution(stateMachineArn=arn, input='{"a": 1}')["executionArn"]
        described = wait_for_execution(sfn, run)
        assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"a": 1})


# -- Slice B: a Distributed Map over a listing of S3 objects -----------------------------------------


def distributed_map(reader_parameters: dict, item_selector: dict | None = None, **map_fields) -> dict:
    """A machine whose Distributed Map lists objects (ItemReader s3:listObjectsV2); children pass."""
    state = {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": reader_parameters},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Child",
            "States": {"Child": {"Type": "Pass", "End": True}},
        },
        "End": True,
        **map_fields,
    }
    if item_selector is not None:
        state["ItemSelector"] = item_selector
    return {"StartAt": "Each", "States": {"Each": state}}


def run_machine(
    emulator, name: str, definition: dict, execution_input: dict | None = None
) -> tuple[dict, object]:
    sfn = emulator.client("stepfunctions")
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE_ARN)[
        "stateMachineArn"
    ]
    run = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input or {}))["executionArn"]
    return wait_for_execution(sfn, run, timeout=300), sfn


def put_objects(s3, bucket: str, keys: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))


KEY_SELECTOR = {"key.$": "$$.Map.Item.Value.Key"}


def test_list_objects_v2_reader_gives_every_key_past_the_first_page_and_only_under_the_prefix(emulator):
    """ListObjectsV2 "returns some or all (up to 1,000)" keys a call; Step Functions' S3 objects
    reader goes on with the continuation token, so all 1,500 originals reach a child, and the
    Prefix parameter limits the listing as in ListObjectsV2."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="many")
    originals = [f"originals/{i:05d}.jpg" for i in range(1500)]
    put_objects(s3, "many", [*originals, "renditions/a.webp", "originalsX"])
    definition = distributed_map({"Bucket": "many", "Prefix": "originals/"}, KEY_SELECTOR, MaxConcurrency=20)
    described, _ = run_machine(emulator, "many", definition)
    assert described["status"] == "SUCCEEDED"
    assert sorted(child["key"] for child in json.loads(described["output"])) == originals


def test_each_listed_item_is_what_aws_hands_a_child_and_describe_execution_reads_it(emulator):
    """The ItemReader guide's S3 objects example: a child receives {"Etag", "Key", "LastModified"
    (epoch seconds), "Size", "StorageClass"}; every value is JSON, so DescribeExecution answers."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="shape")
    etag = s3.put_object(Bucket="shape", Key="originals/a.jpg", Body=b"12345")["ETag"]
    before = int(time.time()) - 5
    described, _ = run_machine(emulator, "shape", distributed_map({"Bucket": "shape"}))
    assert described["status"] == "SUCCEEDED"
    (item,) = json.loads(described["output"])
    assert set(item) == {"Etag", "Key", "LastModified", "Size", "StorageClass"}
    assert (item["Etag"], item["Key"], item["Size"], item["StorageClass"]) == (
        etag,
        "originals/a.jpg",
        5,
        "STANDARD",
    )
    assert isinstance(item["LastModified"], int) and before <= item["LastModified"] <= time.time() + 5


def test_an_empty_listing_is_zero_items_and_the_map_succeeds(emulator):
    """A prefix with no objects: ListObjectsV2 answers no Contents (KeyCount 0); the Distributed
    Map runs no child and succeeds with an empty result, as on AWS."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="empty")
    s3.put_object(Bucket="empty", Key="elsewhere/a.jpg", Body=b"x")
    definition = distributed_map({"Bucket": "empty", "Prefix": "originals/"}, KEY_SELECTOR)
    described, _ = run_machine(emulator, "empty", definition)
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", [])


def test_a_choice_on_a_path_through_an_array_index_compares_the_value(emulator):
    """Amazon States Language, Reference Paths: a reference path "can identify only a single node";
    a Choice rule's Variable $.Items[0].key is that item's key, not a one-element list."""
    definition = {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.Items[0].key", "StringEquals": "first", "Next": "Matched"}],
                "Default": "Missed",
            },
            "Matched": {"Type": "Pass", "Result": {"rule": "matched"}, "End": True},
            "Missed": {"Type": "Pass", "Result": {"rule": "missed"}, "End": True},
        },
    }
    described, _ = run_machine(
        emulator, "index", definition, {"Items": [{"key": "first"}, {"key": "second"}]}
    )
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"rule": "matched"})


# -- Slice C: ItemBatcher, tolerated failures, MaxConcurrency, ResultWriter -------------------------


def map_over(child_states: dict, start_at: str, **map_fields) -> dict:
    """A machine whose Distributed Map runs ``child_states`` for each item (or batch) of ``$.items``."""
    state = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": start_at,
            "States": child_states,
        },
        "End": True,
        **map_fields,
    }
    return {"StartAt": "Each", "States": {"Each": state}}


PASS_CHILD = {"Child": {"Type": "Pass", "End": True}}
# A child that fails when its item (or the first item of its batch) is the poison one.
POISON_CHILD = {
    "Check": {
        "Type": "Choice",
        "Choices": [{"Variable": "$.key", "StringEquals": "poison", "Next": "Poisoned"}],
        "Default": "Fine",
    },
    "Poisoned": {"Type": "Fail", "Error": "Poison", "Cause": "a poison item"},
    "Fine": {"Type": "Pass", "End": True},
}
POISON_BATCH_CHILD = {
    "Check": {
        "Type": "Choice",
        "Choices": [{"Variable": "$.Items[0].key", "StringEquals": "poison", "Next": "Poisoned"}],
        "Default": "Fine",
    },
    "Poisoned": {"Type": "Fail", "Error": "Poison", "Cause": "a poison batch"},
    "Fine": {"Type": "Pass", "End": True},
}


def keys(*names: str) -> dict:
    return {"items": [{"key": name} for name in names]}


def test_a_machine_with_an_item_batcher_is_created_and_validates(emulator):
    """ItemBatcher is a field of a Distributed Map (ItemBatcher guide): CreateStateMachine accepts
    it and ValidateStateMachineDefinition answers OK."""
    sfn = emulator.client("stepfunctions")
    definition = json.dumps(map_over(PASS_CHILD, "Child", ItemBatcher={"MaxItemsPerBatch": 100}))
    assert sfn.validate_state_machine_definition(definition=definition)["result"] == "OK"
    assert sfn.create_state_machine(name="batched", definition=definition, roleArn=ROLE_ARN)[
        "stateMachineArn"
    ]


def test_an_item_batcher_over_256_kib_or_in_an_inline_map_is_refused(emulator):
    """MaxInputBytesPerBatch can be at most 256 KiB, and ItemBatcher belongs to a Distributed Map
    only: Step Functions refuses either definition (InvalidDefinition; validation FAIL)."""
    from botocore.exceptions import ClientError

    sfn = emulator.client("stepfunctions")
    too_big = map_over(PASS_CHILD, "Child", ItemBatcher={"MaxInputBytesPerBatch": 300_000})
    inline = map_over(PASS_CHILD, "Child", ItemBatcher={"MaxItemsPerBatch": 2})
    inline["States"]["Each"]["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    for name, definition in (("too-big", too_big), ("inline", inline)):
        assert sfn.validate_state_machine_definition(definition=json.dumps(definition))["result"] == "FAIL"
        with pytest.raises(ClientError) as refused:
            sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE_ARN)
        assert refused.value.response["Error"]["Code"] == "InvalidDefinition"


def test_each_child_gets_a_batch_of_selected_items_and_the_batch_input(emulator):
    """ItemBatcher guide: each child receives {"Items": [...], "BatchInput": {...}}, at most
    MaxItemsPerBatch items, each item as ItemSelector made it; BatchInput's paths read the state input."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="batches")
    originals = [f"originals/{i:03d}.jpg" for i in range(25)]
    put_objects(s3, "batches", originals)
    definition = distributed_map(
        {"Bucket": "batches", "Prefix.$": "$.prefix"},
        KEY_SELECTOR,
        ItemBatcher={
            "MaxItemsPerBatch": 10,
            "BatchInput": {"all.$": "$.all", "force.$": "$.force", "source": "reprocess"},
        },
    )
    described, _ = run_machine(
        emulator, "batches", definition, {"prefix": "originals/", "all": True, "force": False}
    )
    assert described["status"] == "SUCCEEDED"
    children = json.loads(described["output"])
    assert [len(child["Items"]) for child in children] == [10, 10, 5]
    assert [item["key"] for child in children for item in child["Items"]] == originals
    assert {json.dumps(child["BatchInput"], sort_keys=True) for child in children} == {
        json.dumps({"all": True, "force": False, "source": "reprocess"}, sort_keys=True)
    }
    # DescribeMapRun counts items (25) and child executions (3), as a progress display reads them.
    sfn = emulator.client("stepfunctions")
    (map_run,) = sfn.list_map_runs(executionArn=described["executionArn"])["mapRuns"]
    counts = sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])
    items, executions = counts["itemCounts"], counts["executionCounts"]
    assert (items["total"], items["succeeded"], items["pending"], items["running"]) == (25, 25, 0, 0)
    assert (executions["total"], executions["succeeded"], executions["failed"]) == (3, 3, 0)


def test_max_input_bytes_per_batch_bounds_each_childs_input(emulator):
    """MaxInputBytesPerBatch: the maximum bytes a batch may hold; Step Functions puts fewer items
    in a batch to stay under it."""
    items = {"items": [{"key": f"{i:02d}", "pad": "x" * 100} for i in range(20)]}
    definition = map_over(PASS_CHILD, "Child", ItemBatcher={"MaxInputBytesPerBatch": 500})
    described, _ = run_machine(emulator, "bytes", definition, items)
    assert described["status"] == "SUCCEEDED"
    children = json.loads(described["output"])
    assert len(children) > 4
    assert all(len(json.dumps(child, separators=(",", ":"))) <= 500 for child in children)
    assert [item["key"] for child in children for item in child["Items"]] == [f"{i:02d}" for i in range(20)]


def test_a_failed_child_fails_the_map_run_when_no_failure_is_tolerated(emulator):
    """Tolerated failure threshold: both default to 0, so one failed child fails the Map Run with
    States.ExceedToleratedFailureThreshold (moto alone lets the map succeed)."""
    described, _ = run_machine(emulator, "strict", map_over(POISON_CHILD, "Check"), keys("a", "poison", "c"))
    assert described["status"] == "FAILED"
    assert described["error"] == "States.ExceedToleratedFailureThreshold"


def test_tolerated_failure_percentage_lets_the_map_succeed_up_to_the_threshold(emulator):
    """ToleratedFailurePercentage: the Map Run fails only when the failed items' percentage exceeds
    it: 1 poison in 10 items is 10%, within 10 but not within 5."""
    items = keys(*[f"k{i}" for i in range(9)], "poison")
    ok, _ = run_machine(
        emulator, "tolerant", map_over(POISON_CHILD, "Check", ToleratedFailurePercentage=10), items
    )
    assert ok["status"] == "SUCCEEDED"
    strict, _ = run_machine(
        emulator, "intolerant", map_over(POISON_CHILD, "Check", ToleratedFailurePercentage=5), items
    )
    assert (strict["status"], strict["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    counted, _ = run_machine(
        emulator, "counted", map_over(POISON_CHILD, "Check", ToleratedFailureCount=1), items
    )
    assert counted["status"] == "SUCCEEDED"


def test_a_failed_batch_counts_every_item_in_it_as_failed(emulator):
    """With ItemBatcher a failed child fails all the items of its batch: 5 of 10 items is 50%,
    beyond a 40% tolerance, within 50%."""
    items = keys("a", "b", "c", "d", "e", "poison", "g", "h", "i", "j")
    batcher = {"MaxItemsPerBatch": 5}
    failed, _ = run_machine(
        emulator,
        "b40",
        map_over(POISON_BATCH_CHILD, "Check", ItemBatcher=batcher, ToleratedFailurePercentage=40),
        items,
    )
    assert (failed["status"], failed["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    ok, _ = run_machine(
        emulator,
        "b50",
        map_over(POISON_BATCH_CHILD, "Check", ItemBatcher=batcher, ToleratedFailurePercentage=50),
        items,
    )
    assert ok["status"] == "SUCCEEDED"


def test_max_concurrency_bounds_the_children_running_at_once(emulator):
    """MaxConcurrency: the number of child executions that run at the same time; 6 children that
    wait 1 s each, 2 at a time, take at least 3 s."""
    child = {"Wait": {"Type": "Wait", "Seconds": 1, "End": True}}
    described, _ = run_machine(emulator, "two", map_over(child, "Wait", MaxConcurrency=2), keys(*"abcdef"))
    assert described["status"] == "SUCCEEDED"
    assert (described["stopDate"] - described["startDate"]).total_seconds() >= 3


def test_a_long_map_run_one_child_at_a_time_finishes(emulator):
    """1,200 children with MaxConcurrency 1 (moto recursed once per child and overflowed)."""
    items = keys(*[f"k{i}" for i in range(1200)])
    described, _ = run_machine(emulator, "serial", map_over(PASS_CHILD, "Child", MaxConcurrency=1), items)
    assert described["status"] == "SUCCEEDED"
    assert len(json.loads(described["output"])) == 1200


def test_result_writer_writes_the_manifest_and_the_succeeded_and_failed_files(emulator):
    """ResultWriter guide: under <Prefix>/<map run id>/ Step Functions writes manifest.json
    (DestinationBucket, MapRunArn, ResultFiles by status) and SUCCEEDED_0.json / FAILED_0.json
    with each child execution (Input, Output or Error and Cause, Status); the state's output names
    the manifest (ResultWriterDetails)."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="results")
    definition = map_over(
        POISON_CHILD,
        "Check",
        ToleratedFailureCount=1,
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "results", "Prefix": "runs"},
        },
    )
    described, _ = run_machine(emulator, "written", definition, keys("a", "poison", "c"))
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    run_id = output["MapRunArn"].rsplit(":", 1)[1]
    assert output["ResultWriterDetails"] == {"Bucket": "results", "Key": f"runs/{run_id}/manifest.json"}
    manifest = json.loads(s3.get_object(Bucket="results", Key=f"runs/{run_id}/manifest.json")["Body"].read())
    assert (manifest["DestinationBucket"], manifest["MapRunArn"]) == ("results", output["MapRunArn"])
    assert manifest["ResultFiles"]["PENDING"] == []
    read = {}
    for status in ("SUCCEEDED", "FAILED"):
        (entry,) = manifest["ResultFiles"][status]
        assert entry["Key"] == f"runs/{run_id}/{status}_0.json"
        body = s3.get_object(Bucket="results", Key=entry["Key"])["Body"].read()
        assert entry["Size"] == len(body)
        read[status] = json.loads(body)
    assert sorted(json.loads(r["Output"])["key"] for r in read["SUCCEEDED"]) == ["a", "c"]
    assert {r["Status"] for r in read["SUCCEEDED"]} == {"SUCCEEDED"}
    # Each child as the guide's "Transformation NONE" example shows one.
    assert sorted(read["SUCCEEDED"][0]) == [
        "ExecutionArn",
        "Input",
        "InputDetails",
        "Name",
        "Output",
        "OutputDetails",
        "RedriveCount",
        "RedriveStatus",
        "RedriveStatusReason",
        "StartDate",
        "StateMachineArn",
        "Status",
        "StopDate",
    ]
    (failed,) = read["FAILED"]
    assert (json.loads(failed["Input"]), failed["Status"], failed["Error"]) == (
        {"key": "poison"},
        "FAILED",
        "Poison",
    )
    assert failed["Cause"] == "a poison item"


def test_the_state_after_a_result_writer_map_gets_only_the_map_run_arn_and_where_the_manifest_is(emulator):
    """AWS, "ResultWriter (Map)": with its results exported, the Distributed Map's output is
    {"MapRunArn": ..., "ResultWriterDetails": {"Bucket": ..., "Key": "<Prefix>/<map run id>/manifest.json"}},
    the map run ARN ``...:mapRun:<machine>/<label>:<id>``: what the next state receives."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="results")
    definition = map_over(
        PASS_CHILD,
        "Child",
        Label="each",
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "results", "Prefix": "runs"},
        },
    )
    mapped = definition["States"]["Each"]
    del mapped["End"]
    mapped["Next"] = "After"
    definition["States"]["After"] = {
        "Type": "Pass",
        "Parameters": {"seen.$": "$", "run.$": "$.MapRunArn", "key.$": "$.ResultWriterDetails.Key"},
        "End": True,
    }
    described, _ = run_machine(emulator, "then", definition, keys("a", "b"))
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    run_id = output["run"].rsplit(":", 1)[1]
    assert output["run"].startswith("arn:aws:states:us-east-1:123456789012:mapRun:then/each:")
    assert output["seen"] == {
        "MapRunArn": output["run"],
        "ResultWriterDetails": {"Bucket": "results", "Key": f"runs/{run_id}/manifest.json"},
    }
    manifest = json.loads(s3.get_object(Bucket="results", Key=output["key"])["Body"].read())
    assert sorted(manifest) == ["DestinationBucket", "MapRunArn", "ResultFiles"]
    assert sorted(manifest["ResultFiles"]) == ["FAILED", "PENDING", "SUCCEEDED"]


def test_a_map_run_that_fails_past_its_tolerance_still_writes_its_results(emulator):
    """AWS, "ResultWriter (Map)": FAILED_n.json holds the failed children "to recover from failed
    executions", PENDING_n.json those "that weren't started because the Map Run failed": a failed
    map run's results are exported too."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="failed-results")
    definition = map_over(
        POISON_CHILD,
        "Check",
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "failed-results", "Prefix": "runs"},
        },
    )
    described, _ = run_machine(emulator, "failing-written", definition, keys("a", "poison", "c"))
    assert (described["status"], described["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    listed = s3.list_objects_v2(Bucket="failed-results", Prefix="runs/")["Contents"]
    (manifest_key,) = [o["Key"] for o in listed if o["Key"].endswith("/manifest.json")]
    manifest = json.loads(s3.get_object(Bucket="failed-results", Key=manifest_key)["Body"].read())
    files = manifest["ResultFiles"]
    assert (len(files["SUCCEEDED"]), len(files["FAILED"]), files["PENDING"]) == (1, 1, [])
    failed = json.loads(s3.get_object(Bucket="failed-results", Key=files["FAILED"][0]["Key"])["Body"].read())
    assert [json.loads(child["Input"]) for child in failed] == [{"key": "poison"}]


# -- Slice D: Task states act with the state machine's role ----------------------------------------

STATES_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "states.amazonaws.com"}}
    ],
}


@pytest.fixture(scope="module")
def strict_emulator():
    """An emulator that enforces IAM, as the local stack's does (docs/local-stack-iam.md)."""
    with running(strict=True) as emu:
        yield emu


def send_batch_machine(emulator, name: str, role_arn: str, queue_url: str) -> dict:
    """A machine that sends one message through the AWS SDK integration sqs:sendMessageBatch."""
    definition = {
        "StartAt": "Send",
        "States": {
            "Send": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sqs:sendMessageBatch",
                "Parameters": {"QueueUrl": queue_url, "Entries": [{"Id": "0", "MessageBody": "hello"}]},
                "End": True,
            }
        },
    }
    sfn = emulator.client("stepfunctions")
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role_arn)[
        "stateMachineArn"
    ]
    return wait_for_execution(sfn, sfn.start_execution(stateMachineArn=arn)["executionArn"])


def queue_and_arn(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_task_calls_are_made_as_the_state_machines_role_and_a_missing_grant_is_denied(strict_emulator):
    """Step Functions calls AWS services with the state machine's execution role. A role allowed
    sqs:SendMessage on one queue sends to it; sending to another fails the task with the AWS SDK
    integration's error, ServiceName.ErrorName in Pascal case (Sqs.SqsException), naming the
    assumed role and the action IAM refused (SendMessageBatch is authorised as sqs:SendMessage)."""
    iam, sqs = strict_emulator.client("iam"), strict_emulator.client("sqs")
    allowed_url, allowed_arn = queue_and_arn(sqs, "allowed")
    denied_url, denied_arn = queue_and_arn(sqs, "denied")
    role = iam.create_role(RoleName="sender", AssumeRolePolicyDocument=json.dumps(STATES_TRUST))["Role"][
        "Arn"
    ]
    grant = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": allowed_arn}
    iam.put_role_policy(
        RoleName="sender",
        PolicyName="send",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [grant]}),
    )

    sent = send_batch_machine(strict_emulator, "send-allowed", role, allowed_url)
    assert sent["status"] == "SUCCEEDED"
    assert json.loads(sent["output"])["Failed"] == []
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=allowed_url)["Messages"]] == ["hello"]

    refused = send_batch_machine(strict_emulator, "send-denied", role, denied_url)
    assert (refused["status"], refused["error"]) == ("FAILED", "Sqs.SqsException")
    assert "assumed-role/sender/" in refused["cause"]
    assert f"sqs:SendMessage on resource: {denied_arn}" in refused["cause"]
    assert "Messages" not in sqs.receive_message(QueueUrl=denied_url)
    by_role = [c for c in strict_emulator.iam_calls() if ":assumed-role/sender/" in c["principal"]]
    assert {(c["action"], c["resource"], c["allowed"]) for c in by_role} == {
        ("sqs:SendMessage", allowed_arn, True),
        ("sqs:SendMessage", denied_arn, False),
    }


def test_a_role_that_does_not_trust_step_functions_gets_no_access(strict_emulator):
    """The execution role's trust policy must let states.amazonaws.com assume it; a role trusting
    only Lambda gives Step Functions no credentials, so even a granted call is refused."""
    iam, sqs = strict_emulator.client("iam"), strict_emulator.client("sqs")
    url, arn = queue_and_arn(sqs, "untrusted")
    lambda_trust = json.loads(
        json.dumps(STATES_TRUST).replace("states.amazonaws.com", "lambda.amazonaws.com")
    )
    role = iam.create_role(RoleName="lambda-only", AssumeRolePolicyDocument=json.dumps(lambda_trust))["Role"][
        "Arn"
    ]
    grant = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}
    iam.put_role_policy(
        RoleName="lambda-only",
        PolicyName="send",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [grant]}),
    )
    refused = send_batch_machine(strict_emulator, "untrusted", role, url)
    assert refused["status"] == "FAILED"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_a_lambda_task_is_authorised_as_invoke_function_on_the_functions_arn(strict_emulator):
    """Lambda's Invoke is authorised as lambda:InvokeFunction on the function's ARN, so a role
    scoped to the function may call it and a role scoped to another may not: the task fails with
    Lambda.AccessDeniedException. (What the function runs is the local stack's part.)"""
    import io
    import zipfile

    iam, lam = strict_emulator.client("iam"), strict_emulator.client("lambda")
    lambda_trust = json.loads(
        json.dumps(STATES_TRUST).replace("states.amazonaws.com", "lambda.amazonaws.com")
    )
    function_role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(lambda_trust))["Role"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    function_arn = lam.create_function(
        FunctionName="maintenance",
        Runtime="python3.12",
        Role=function_role["Arn"],
        Handler="handler.handler",
        Code={"ZipFile": package.getvalue()},
    )["FunctionArn"]
    sfn = strict_emulator.client("stepfunctions")
    results = {}
    for role_name, granted in (("invoker", function_arn), ("other-invoker", f"{function_arn}-other")):
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(STATES_TRUST))["Role"][
            "Arn"
        ]
        grant = {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": [granted, f"{granted}:*"]}
        iam.put_role_policy(
            RoleName=role_name,
            PolicyName="invoke",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [grant]}),
        )
        definition = {
            "StartAt": "Invoke",
            "States": {
                "Invoke": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function_arn, "Payload": {"action": "reconcile"}},
                    "End": True,
                }
            },
        }
        arn = sfn.create_state_machine(name=role_name, definition=json.dumps(definition), roleArn=role)[
            "stateMachineArn"
        ]
        results[role_name] = wait_for_execution(sfn, sfn.start_execution(stateMachineArn=arn)["executionArn"])
    decided = {
        (c["principal"].split("/")[1], c["action"], c["resource"], c["allowed"])
        for c in strict_emulator.iam_calls()
        if "invoker/" in c["principal"]
    }
    assert decided == {
        ("invoker", "lambda:InvokeFunction", function_arn, True),
        ("other-invoker", "lambda:InvokeFunction", function_arn, False),
    }
    refused = results["other-invoker"]
    assert (refused["status"], refused["error"]) == ("FAILED", "Lambda.AccessDeniedException")
    assert f"lambda:InvokeFunction on resource: {function_arn}" in refused["cause"]


# -- Slice E: what the reprocess and reconcile machines use ------------------------------------------


def reprocess_like(queue_url: str) -> dict:
    """The reprocess machine's shape (docs: issue 13's design) with a Pass state in place of the
    maintenance function: list, select the key, batch with BatchInput, plan the SQS batches of 10
    (States.ArrayPartition), send each through aws-sdk:sqs:sendMessageBatch in an inline Map inside
    the Distributed Map's child, count with intrinsics, write the results."""
    send = {
        "Type": "Map",
        "ItemsPath": "$.batches",
        "ItemSelector": {"batch.$": "$$.Map.Item.Value"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": "Entries",
            "States": {
                "Entries": {
                    "Type": "Map",
                    "ItemsPath": "$.batch",
                    "ItemSelector": {
                        "Id.$": "States.Format('{}', $$.Map.Item.Index)",
                        "MessageBody.$": "States.JsonToString($$.Map.Item.Value)",
                    },
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Entry",
                        "States": {"Entry": {"Type": "Pass", "End": True}},
                    },
                    "ResultPath": "$.entries",
                    "Next": "SendBatch",
                },
                "SendBatch": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:sqs:sendMessageBatch",
                    "Parameters": {"QueueUrl": queue_url, "Entries.$": "$.entries"},
                    "Retry": [
                        {
                            "ErrorEquals": ["Sqs.RequestThrottledException", "Sqs.SqsException"],
                            "IntervalSeconds": 1,
                            "MaxAttempts": 3,
                            "BackoffRate": 2,
                        }
                    ],
                    "ResultSelector": {
                        "failed.$": "States.ArrayLength($.Failed)",
                        "sent.$": "States.ArrayLength($.Successful)",
                    },
                    "End": True,
                },
            },
        },
        "ResultPath": "$.sent",
        "Next": "Count",
    }
    child = {
        "Plan": {
            "Type": "Pass",
            "Parameters": {
                "batches.$": "States.ArrayPartition($.Items, 10)",
                "listed.$": "States.ArrayLength($.Items)",
                "force.$": "$.BatchInput.force",
            },
            "Next": "Send",
        },
        "Send": send,
        "Count": {
            "Type": "Pass",
            "Parameters": {
                "listed.$": "$.listed",
                "sent.$": "$.sent[*].sent",
                "failed.$": "$.sent[*].failed",
            },
            "End": True,
        },
    }
    return {
        "StartAt": "Reprocess",
        "States": {
            "Reprocess": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:listObjectsV2",
                    "Parameters": {"Bucket": "uploads", "Prefix.$": "$.prefix"},
                },
                "ItemSelector": {"key.$": "$$.Map.Item.Value.Key"},
                "ItemBatcher": {
                    "MaxItemsPerBatch": 100,
                    "BatchInput": {"all.$": "$.all", "force.$": "$.force"},
                },
                "MaxConcurrency": 4,
                "ToleratedFailurePercentage": 5,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Plan",
                    "States": child,
                },
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": "results", "Prefix": "reprocess"},
                },
                "End": True,
            }
        },
    }


def test_a_reprocess_shaped_machine_runs_with_its_least_privilege_role(strict_emulator):
    """The whole reprocess shape under enforced IAM with a role granting only what it uses
    (s3:ListBucket on the uploads bucket, sqs:SendMessage on the queue, s3:PutObject for the
    results): every listed key is sent once as a message, in SQS batches of 10, and the results
    object records each child's counts."""
    iam, sqs, s3 = (strict_emulator.client(name) for name in ("iam", "sqs", "s3"))
    url, queue_arn = queue_and_arn(sqs, "resize")
    s3.create_bucket(Bucket="uploads")
    s3.create_bucket(Bucket="results")
    originals = [f"originals/{i:04d}.jpg" for i in range(250)]
    put_objects(s3, "uploads", [*originals, "elsewhere/x.jpg"])
    role = iam.create_role(RoleName="reprocess", AssumeRolePolicyDocument=json.dumps(STATES_TRUST))["Role"][
        "Arn"
    ]
    statements = [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::uploads"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::results/reprocess/*"},
    ]
    iam.put_role_policy(
        RoleName="reprocess",
        PolicyName="reprocess",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    sfn = strict_emulator.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="reprocess", definition=json.dumps(reprocess_like(url)), roleArn=role
    )["stateMachineArn"]
    run = sfn.start_execution(
        stateMachineArn=arn, input=json.dumps({"prefix": "originals/", "all": False, "force": True})
    )["executionArn"]
    described = wait_for_execution(sfn, run, timeout=300)
    assert described["status"] == "SUCCEEDED", failure_events(sfn, run)

    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies += [json.loads(m["Body"])["key"] for m in got]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )
    assert sorted(bodies) == originals

    manifest_key = json.loads(described["output"])["ResultWriterDetails"]["Key"]
    manifest = json.loads(s3.get_object(Bucket="results", Key=manifest_key)["Body"].read())
    (succeeded,) = manifest["ResultFiles"]["SUCCEEDED"]
    children = json.loads(s3.get_object(Bucket="results", Key=succeeded["Key"])["Body"].read())
    counts = [json.loads(child["Output"]) for child in children]
    assert sorted(c["listed"] for c in counts) == [50, 100, 100]
    assert sum(sum(c["sent"]) for c in counts) == 250
    assert all(set(c["failed"]) == {0} for c in counts)


def test_retry_then_catch_on_an_aws_sdk_error(emulator):
    """Retry re-runs a Task on the errors it names (MaxAttempts more times); Catch then hands the
    error output ({"Error", "Cause"}) to its Next state. The AWS SDK integration names SQS's
    QueueDoesNotExist as Sqs.QueueDoesNotExistException (ServiceName.ErrorName + Exception)."""
    missing = f"{emulator.endpoint}/123456789012/no-such-queue"
    definition = {
        "StartAt": "SendBatch",
        "States": {
            "SendBatch": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sqs:sendMessageBatch",
                "Parameters": {"QueueUrl": missing, "Entries": [{"Id": "0", "MessageBody": "x"}]},
                "Retry": [
                    {
                        "ErrorEquals": ["Sqs.QueueDoesNotExistException"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 2,
                    }
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    described, sfn = run_machine(emulator, "retried", definition, {"job": 1})
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert (output["job"], output["error"]["Error"]) == (1, "Sqs.QueueDoesNotExistException")
    events = sfn.get_execution_history(executionArn=described["executionArn"], maxResults=1000)["events"]
    assert [e["type"] for e in events].count("TaskFailed") == 3


def test_a_reconcile_shaped_loop_follows_next_until_it_is_null(emulator):
    """The reconcile machine's loop: a Choice on $.next (IsNull) goes round again with the token
    until the page step answers null; States.MathAdd counts the pages."""
    definition = {
        "StartAt": "Page",
        "States": {
            "Page": {
                "Type": "Pass",
                "Parameters": {"pages.$": "States.MathAdd($.pages, 1)", "tokens.$": "$.tokens"},
                "Next": "Token",
            },
            "Token": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.pages",
                        "NumericLessThan": 3,
                        "Next": "More",
                    }
                ],
                "Default": "Last",
            },
            "More": {
                "Type": "Pass",
                "Parameters": {"pages.$": "$.pages", "tokens.$": "$.tokens", "next": "token"},
                "Next": "HasNext",
            },
            "Last": {"Type": "Pass", "Parameters": {"pages.$": "$.pages", "next": None}, "Next": "HasNext"},
            "HasNext": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.next", "IsNull": True, "Next": "Done"}],
                "Default": "Page",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    described, _ = run_machine(emulator, "loop", definition, {"pages": 0, "tokens": []})
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"pages": 3, "next": None})


SFN_MODULE = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "5.100.0" }
  }
}
provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    iam  = var.endpoint
    logs = var.endpoint
    sfn  = var.endpoint
  }
}
variable "endpoint" { type = string }
resource "aws_iam_role" "sfn" {
  name = "probe-sfn"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "states.amazonaws.com" }
    }]
  })
}
resource "aws_cloudwatch_log_group" "sfn" {
  name              = "/aws/vendedlogs/states/probe"
  retention_in_days = 7
}
resource "aws_sfn_state_machine" "probe" {
  name     = "probe"
  role_arn = aws_iam_role.sfn.arn
  type     = "STANDARD"
  definition = jsonencode({
    StartAt = "Each"
    States = {
      Each = {
        Type = "Map"
        ItemReader = {
          Resource   = "arn:aws:states:::s3:listObjectsV2"
          Parameters = { Bucket = "uploads", "Prefix.$" = "$.prefix" }
        }
        ItemSelector               = { "key.$" = "$$.Map.Item.Value.Key" }
        ItemBatcher                = { MaxItemsPerBatch = 100, BatchInput = { "all.$" = "$.all" } }
        MaxConcurrency             = 4
        ToleratedFailurePercentage = 5
        ItemProcessor = {
          ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" }
          StartAt         = "Child"
          States          = { Child = { Type = "Pass", End = true } }
        }
        ResultWriter = {
          Resource   = "arn:aws:states:::s3:putObject"
          Parameters = { Bucket = "results", Prefix = "reprocess" }
        }
        End = true
      }
    }
  })
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.sfn.arn}:*"
    include_execution_data = false
    level                  = "ERROR"
  }
  tags = { Name = "probe" }
}
"""


@pytest.mark.terraform
def test_terraform_applies_a_state_machine_and_plans_nothing_after(tmp_path):
    """The aws provider validates the definition at plan (ValidateStateMachineDefinition) and reads
    versions on refresh (ListStateMachineVersions): a Distributed Map with an ItemBatcher, an integer
    ToleratedFailurePercentage, execution logging and tags applies, and a second plan is empty."""
    from tests.conftest import require_terraform
    from tests.test_terraform_plan import CREDENTIALS

    require_terraform()
    from local.tf import Terraform

    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text(SFN_MODULE)
    shutil.copy(REPO_ROOT / ".terraform.lock.hcl", module / ".terraform.lock.hcl")
    with running() as emu:
        tf = Terraform(
            workdir=module, data_dir=tmp_path / "data", state=tmp_path / "state.tfstate", env=CREDENTIALS
        )
        tf.init()
        tf.apply({"endpoint": emu.endpoint})
        assert not tf.plan({"endpoint": emu.endpoint}), tf.last_stdout
        machines = emu.client("stepfunctions").list_state_machines()["stateMachines"]
        assert [m["name"] for m in machines] == ["probe"]
