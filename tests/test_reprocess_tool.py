"""``make reprocess`` (tools/reprocess.py): what it starts, how it counts, what it prints and returns.

What a run did is the execution's output: the machine's last state sums the map
run's results (tests/test_reprocess_results.py, tests/test_maintenance.py); the
tool prints it. The whole machine runs against the local stack in
tests/test_reprocess_stack.py.
"""

from __future__ import annotations

import io
import json

from tools import reprocess


def output(**counts) -> dict:
    """A reprocess execution's output: its Summarize state's answer (imgpipe.reprocess_results)."""
    base = {
        "listed": 0,
        "skipped_current": 0,
        "enqueued": 0,
        "failed": 0,
        "failed_batches": 0,
        "not_started": 0,
        "failures": [],
        "map_run_arn": "arn:aws:states:us-east-1:123456789012:mapRun:m/reprocess:1",
        "results": {"bucket": "resized", "manifest": "reprocess-results/1/manifest.json"},
    }
    return base | counts


def test_the_report_is_the_executions_counts_and_its_first_failures():
    poison = {"key": "originals/poison.jpg", "error_code": "not_an_image"}
    lines = reprocess.report(
        output(listed=1501, skipped_current=1500, failed=25, failed_batches=1, failures=[poison] * 20)
    )
    assert lines[0] == "listed 1501, enqueued 0, skipped (current) 1500, failed 25"
    assert lines[1:21] == ["  failed: originals/poison.jpg (not_an_image)"] * 20
    assert lines[21:] == [
        "  ... and 5 more",
        "  1 batches failed as a whole (their keys count as failed)",
        "  results: s3://resized/reprocess-results/1/manifest.json",
    ]


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


def test_a_run_prints_progress_then_the_executions_counts_and_returns_0():
    done = output(listed=300, skipped_current=300)
    sfn = FakeStepFunctions({"status": "SUCCEEDED", "output": json.dumps(done)})
    clients = {"stepfunctions": sfn}
    target = reprocess.Target(
        "arn:aws:states:us-east-1:123456789012:stateMachine:m", clients.__getitem__, "here"
    )
    out = io.StringIO()
    assert reprocess.run(target, {"all": False, "force": False}, out, poll_seconds=0) == 0
    assert sfn.started == (target.arn, {"all": False, "force": False})
    text = out.getvalue()
    assert "100/300 keys" in text and "300/300 keys" in text
    assert "listed 300, enqueued 0, skipped (current) 300, failed 0\n" in text
    assert text.rstrip().endswith("results: s3://resized/reprocess-results/1/manifest.json")


def test_a_failed_execution_says_why_and_returns_1():
    sfn = FakeStepFunctions(
        {"status": "FAILED", "error": "States.ExceedToleratedFailureThreshold", "cause": "x"}
    )
    target = reprocess.Target("arn:m", {"stepfunctions": sfn}.__getitem__, "here")
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
