"""``make reprocess`` (tools/reprocess.py): what it starts, how it counts, what it prints and returns.

The run's results are what Step Functions' ResultWriter writes (a manifest naming
result files of the children's executions: "Processing Distributed Map results",
Step Functions developer guide), put in moto's S3 here; the whole machine runs
against the local stack in tests/test_reprocess_stack.py.
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from moto import mock_aws

from tools import reprocess

BUCKET = "results"


def child(status: str, output: dict | None = None, items: list[str] = ()) -> dict:
    return {
        "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:m/reprocess:1",
        "Input": json.dumps(
            {"Items": [{"key": k} for k in items], "BatchInput": {"all": False, "force": False}}
        ),
        "Output": json.dumps(output) if output is not None else None,
        "Status": status,
        **({"Error": "Lambda.Unknown"} if status == "FAILED" else {}),
    }


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def write_results(s3, succeeded: list[dict], failed: list[dict]) -> dict:
    s3.put_object(Bucket=BUCKET, Key="r/run/SUCCEEDED_0.json", Body=json.dumps(succeeded))
    s3.put_object(Bucket=BUCKET, Key="r/run/FAILED_0.json", Body=json.dumps(failed))
    manifest = {
        "DestinationBucket": BUCKET,
        "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:m/reprocess:1",
        "ResultFiles": {
            "SUCCEEDED": [{"Key": "r/run/SUCCEEDED_0.json", "Size": 1}],
            "FAILED": [{"Key": "r/run/FAILED_0.json", "Size": 1}],
            "PENDING": [],
        },
    }
    s3.put_object(Bucket=BUCKET, Key="r/run/manifest.json", Body=json.dumps(manifest))
    return {
        "MapRunArn": manifest["MapRunArn"],
        "ResultWriterDetails": {"Bucket": BUCKET, "Key": "r/run/manifest.json"},
    }


def test_counts_sum_the_batches_and_sqs_refusals_and_failed_batches_count_every_key(s3):
    ok = {
        "listed": 100,
        "skipped_current": 40,
        "enqueue": 59,
        "failed": 1,
        "failures": [{"key": "originals/a/gone.jpg", "error_code": "source_not_found"}],
    }
    refused = {
        "listed": 3,
        "skipped_current": 0,
        "enqueue": 3,
        "failed": 0,
        "failures": [],
        "sent": [{"Failed": [{"Id": "1", "Code": "InternalError", "SenderFault": False}]}],
    }
    output = write_results(
        s3,
        [child("SUCCEEDED", ok), child("SUCCEEDED", refused)],
        [child("FAILED", items=["originals/b/x.png", "originals/b/y.png"])],
    )
    summary = reprocess.summarize(s3, output)
    assert (summary.listed, summary.enqueued, summary.skipped_current, summary.failed) == (105, 61, 40, 4)
    assert summary.failed_batches == 1
    assert {"key": "originals/a/gone.jpg", "error_code": "source_not_found"} in summary.failures
    assert {"key": "originals/b/x.png", "error_code": "batch:Lambda.Unknown"} in summary.failures
    assert {"key": None, "error_code": "sqs:InternalError"} in summary.failures


def test_the_input_leaves_the_prefix_to_the_machine_unless_given():
    assert reprocess.execution_input(None, False, False) == {"all": False, "force": False}
    assert reprocess.execution_input("originals/ab", True, True) == {
        "prefix": "originals/ab",
        "all": True,
        "force": True,
    }


def test_the_bar_shows_done_of_total_and_the_failed_batches_keys():
    bar = reprocess.progress_bar(reprocess.Progress(succeeded=700, failed=50, total=1500))
    assert bar == "[" + "#" * 15 + "." * 15 + "] 750/1500 keys (50 in failed batches)"


class FakeStepFunctions:
    """DescribeExecution and the map run's counts as Step Functions answers them while a run goes on."""

    def __init__(self, final: dict):
        self.final, self.polls = final, 0

    def start_execution(self, stateMachineArn: str, input: str) -> dict:
        self.started = (stateMachineArn, json.loads(input))
        return {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:1"}

    def describe_execution(self, executionArn: str) -> dict:
        if executionArn.endswith(":child"):
            return {
                "status": "FAILED",
                "error": "Lambda.Unknown",
                "cause": "the maintenance function timed out",
            }
        self.polls += 1
        return self.final if self.polls >= 3 else {"status": "RUNNING"}

    def list_executions(self, mapRunArn: str, statusFilter: str, maxResults: int) -> dict:
        return {
            "executions": [
                {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:m/reprocess:child"}
            ]
        }

    def list_map_runs(self, executionArn: str) -> dict:
        return {"mapRuns": [{"mapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:m/reprocess:1"}]}

    def describe_map_run(self, mapRunArn: str) -> dict:
        return {"itemCounts": {"succeeded": 100 * self.polls, "failed": 0, "total": 300}}


def test_a_run_prints_progress_then_the_counts_and_returns_0(s3):
    output = write_results(
        s3,
        [
            child(
                "SUCCEEDED",
                {
                    "listed": 300,
                    "skipped_current": 300,
                    "enqueue": 0,
                    "failed": 0,
                    "failures": [],
                    "sent": [],
                },
            )
        ],
        [],
    )
    sfn = FakeStepFunctions({"status": "SUCCEEDED", "output": json.dumps(output)})
    clients = {"stepfunctions": sfn, "s3": s3}
    target = reprocess.Target(
        "arn:aws:states:us-east-1:123456789012:stateMachine:m", clients.__getitem__, "here"
    )
    out = io.StringIO()
    assert reprocess.run(target, {"all": False, "force": False}, out, poll_seconds=0) == 0
    assert sfn.started == (target.arn, {"all": False, "force": False})
    text = out.getvalue()
    assert "100/300 keys" in text and "300/300 keys" in text
    assert text.rstrip().endswith("listed 300, enqueued 0, skipped (current) 300, failed 0")


def test_a_failed_execution_says_why_and_returns_1(s3):
    sfn = FakeStepFunctions(
        {"status": "FAILED", "error": "States.ExceedToleratedFailureThreshold", "cause": "x"}
    )
    target = reprocess.Target("arn:m", {"stepfunctions": sfn, "s3": s3}.__getitem__, "here")
    out = io.StringIO()
    assert reprocess.run(target, {"all": False, "force": False}, out, poll_seconds=0) == 1
    assert "Execution FAILED: States.ExceedToleratedFailureThreshold" in out.getvalue()
    assert "a failed batch: Lambda.Unknown: the maintenance function timed out" in out.getvalue()


def test_without_a_stack_or_credentials_it_says_what_to_do(tmp_path, capsys, monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_STACK_DIR", str(tmp_path))
    assert reprocess.main([]) == 2
    assert "start `make run`" in capsys.readouterr().err
