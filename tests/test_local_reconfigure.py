"""The running stack follows a changed function configuration as Lambda does (``make run-apply``).

AWS Lambda (API reference, UpdateFunctionConfiguration): while an update is in
progress the function can still be invoked; once ``LastUpdateStatus`` is
``Successful`` it processes events with the new configuration. Locally:
``LocalFunction.reconfigure`` (against the stand-in handlers of
tests/fixtures/fake_lambda), what ``local.reconfigure`` counts as a change and
logs, and ``make run-apply``'s answer when no stack runs. The whole path (a
``terraform apply`` to the running stack, then a reprocess) is the last test of
tests/test_reprocess_stack.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from local import live_apply
from local.emulator import running
from local.front import Route
from local.functions import FunctionConfig, LocalFunction
from local.reconfigure import (
    Watcher,
    describe_function_change,
    describe_mapping_change,
    describe_route_change,
    fingerprint,
    mapping_view,
)
from local.run import SNAPSHOT, SNAPSHOT_META, SNAPSHOT_STATE, Stack

FAKE_ROOT = Path(__file__).parent / "fixtures" / "fake_lambda"
ENDPOINT = "http://127.0.0.1:9"  # nothing listens: the fakes never call AWS
NAME = "fake-slow-value"


def config(value: str, timeout: int = 10) -> FunctionConfig:
    return FunctionConfig(
        name=NAME,
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:{NAME}",
        handler="fake_handler.slow_value",
        timeout=timeout,
        memory_mb=256,
        environment={"VALUE": value},
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def function():
    fn = LocalFunction(config("old"), ENDPOINT, max_workers=2, task_root=FAKE_ROOT)
    try:
        yield fn
    finally:
        fn.close()


@pytest.mark.slow
def test_after_a_reconfigure_the_next_invocation_runs_in_a_new_environment_with_the_new_values(function):
    first = function.invoke({})
    assert first.ok and first.payload["value"] == "old"
    old_pid = first.payload["pid"]

    function.reconfigure(dataclasses.replace(config("new", timeout=20)))
    after = function.invoke({})
    assert after.ok and after.payload["value"] == "new"
    assert 10_000 < after.payload["timeout_ms"] <= 20_000  # the new Timeout too
    assert after.payload["pid"] != old_pid  # Lambda: a new execution environment (a cold start)
    deadline = time.monotonic() + 10
    while alive(old_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(old_pid)  # the idle old environment was retired, not kept


@pytest.mark.slow
def test_an_invocation_in_flight_finishes_on_the_old_environment_while_new_ones_use_the_new(function):
    assert function.warm() is None
    results = {}
    busy = threading.Thread(target=lambda: results.update(old=function.invoke({"seconds": 3.0})))
    busy.start()
    deadline = time.monotonic() + 10
    while function._idle and time.monotonic() < deadline:  # until it took the warm environment
        time.sleep(0.01)
    assert not function._idle
    function.reconfigure(config("new"))

    meanwhile = function.invoke({})
    assert meanwhile.ok and meanwhile.payload["value"] == "new"  # did not wait for the old one
    busy.join(30)
    old = results["old"]
    assert old.ok and old.payload["value"] == "old"  # finished as it began, not killed
    assert old.payload["pid"] != meanwhile.payload["pid"]
    # Its environment is retired once it returns: never reused for the new configuration.
    deadline = time.monotonic() + 10
    while alive(old.payload["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(old.payload["pid"])
    again = function.invoke({})
    assert again.payload["value"] == "new" and again.payload["pid"] == meanwhile.payload["pid"]


def found(variables: dict, **fields) -> dict:
    """A GetFunctionConfiguration answer as moto 5.2.5 gives it."""
    return {
        "FunctionName": NAME,
        "Handler": "resize_handler.handler",
        "Role": "arn:aws:iam::123456789012:role/resize",
        "Runtime": "python3.12",
        "Timeout": 30,
        "MemorySize": 1536,
        "CodeSha256": "abc",
        "LastModified": "2026-12-07T10:00:00.000+0000",
        "Environment": {"Variables": variables},
        **fields,
    }


def test_a_changed_environment_timeout_or_code_is_a_change_and_the_log_names_variables_not_values():
    old = found({"RENDITIONS": "[tiny]", "TABLE": "t", "SECRET_ARN": "arn:1"})
    new = found({"RENDITIONS": "[tiny, new]", "TABLE": "t", "EXTRA": "x"}, Timeout=60, CodeSha256="def")
    assert fingerprint(old) != fingerprint(new)
    described = describe_function_change(old, new)
    assert described == "Timeout; environment EXTRA, RENDITIONS, SECRET_ARN; code"
    assert "[tiny, new]" not in described and "arn:1" not in described


def test_what_moto_changes_on_its_own_is_no_change():
    # moto 5.2.5 keeps LastModified on UpdateFunctionConfiguration and has no RevisionId; a
    # State or LastUpdateStatus flip is not a new configuration either.
    old = found({"A": "1"})
    same = found({"A": "1"}, LastModified="2026-12-07T11:00:00.000+0000", State="Active", RevisionId="r2")
    assert fingerprint(old) == fingerprint(same)


def test_a_changed_mapping_or_route_is_described_for_the_restart_warning():
    mapping = {
        "UUID": "u1",
        "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:resize",
        "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:resize",
        "BatchSize": 5,
        "State": "Disabled",
    }
    before = mapping_view([mapping])
    assert describe_mapping_change(before, mapping_view([{**mapping, "State": "Enabled"}])) is None
    bigger = mapping_view([{**mapping, "BatchSize": 10}])
    assert describe_mapping_change(before, bigger) == "mapping u1: BatchSize"
    assert describe_mapping_change(before, {}) == "mapping u1 removed"

    routes = (Route("GET /images/{id}", "api"), Route("POST /images", "api"))
    assert describe_route_change(routes, routes) is None
    changed = (Route("GET /images/{id}", "api", timeout_ms=5000), Route("DELETE /images/{id}", "api"))
    assert describe_route_change(routes, changed) == "DELETE /images/{id}, GET /images/{id}, POST /images"


def test_the_watcher_keeps_polling_after_a_failed_look():
    calls = []

    def check(poll: int) -> None:
        calls.append(poll)
        if poll == 1:
            raise ConnectionError("the emulator is busy")

    watcher = Watcher(check, poll_seconds=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert calls[:3] == [1, 2, 3]


def test_run_apply_without_a_running_stack_says_to_start_one(tmp_path, capsys):
    assert live_apply.apply_live(tmp_path, {"renditions": []}) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("make run-apply: no local stack is running in") and "`make run`" in err


def test_run_apply_waits_only_for_the_functions_the_stack_runs():
    expected = {"resize": "new", "upload": "same"}
    assert live_apply.behind({"resize": "old", "upload": "same"}, expected) == ["resize"]
    assert live_apply.behind({"resize": "new", "gone": "x"}, expected) == []  # deleted meanwhile


def test_run_apply_rewrites_stack_json_with_terraforms_outputs_after_the_apply(tmp_path, monkeypatch, capsys):
    """``make reprocess``, ``make demo`` and ``local.client`` read the outputs from ``stack.json``:
    after the apply they are Terraform's new ones, and the rest of the file is the stack's as it was."""
    running = {
        "pid": os.getpid(),  # alive: find_running takes it for the running stack
        "endpoint": ENDPOINT,
        "api_url": "http://127.0.0.1:8",
        "credentials": {"AWS_ACCESS_KEY_ID": "admin", "AWS_SECRET_ACCESS_KEY": "secret"},
        "functions": {"imgpipe-local-resize": "same"},
        "outputs": {"resize_function_name": "imgpipe-local-resize", "events_queue_url": None},
    }
    (tmp_path / "stack.json").write_text(json.dumps(running))
    after = {"resize_function_name": "imgpipe-local-resize", "events_queue_url": "http://q/events"}
    applied = []

    def terraform_apply(directory, variables, credentials):
        applied.append((directory, variables["renditions"], credentials["AWS_SESSION_TOKEN"]))
        return after, "Resources: 2 added, 0 changed, 0 destroyed."

    monkeypatch.setattr(live_apply, "terraform_apply", terraform_apply)
    monkeypatch.setattr(live_apply, "client", lambda *args: None)
    monkeypatch.setattr(live_apply, "expected_functions", lambda lam: {"imgpipe-local-resize": "same"})

    assert live_apply.apply_live(tmp_path, {"renditions": []}) == 0
    assert applied == [(tmp_path, [], "")]
    described = json.loads((tmp_path / "stack.json").read_text())
    assert described == {**running, "outputs": after}
    assert "Resources: 2 added, 0 changed, 0 destroyed." in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.json"]  # no temporary file left


def test_the_stacks_own_rewrite_of_stack_json_takes_the_outputs_from_the_terraform_state(tmp_path):
    """The stack rewrites ``stack.json`` when it reconfigures a function after a live apply: with the
    outputs the state holds now, not the ones it read at start (which would undo run-apply's)."""
    stack = Stack(moto_port=4599, api_port=8099, state_dir=tmp_path)
    stack.outputs = {"table_name": "images", "events_queue_url": None}
    state = tmp_path / "terraform" / "terraform.tfstate"
    state.parent.mkdir(parents=True)
    state.write_text(
        json.dumps(
            {
                "version": 4,
                "outputs": {
                    "table_name": {"value": "images", "type": "string"},
                    "events_queue_url": {"value": "http://q/events", "type": "string"},
                    "kms_key_policy_json": {"value": None, "type": "string", "sensitive": True},
                },
            }
        )
    )
    stack._write_description()
    described = json.loads((tmp_path / "stack.json").read_text())
    assert described["outputs"] == {
        "table_name": "images",
        "events_queue_url": "http://q/events",
        "kms_key_policy_json": None,
    }
    assert stack.outputs == described["outputs"]


def write_state(path: Path, serial: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 4, "lineage": "L", "serial": serial}))


def test_after_a_live_apply_the_next_start_is_warm_from_the_snapshot_and_its_own_state(tmp_path):
    """make run-apply moves the live Terraform state on (serial 7) but leaves the snapshot, taken at
    start with empty buckets, and its state (serial 5): the next start restores both together."""
    stack = Stack(moto_port=4599, api_port=8099, state_dir=tmp_path)
    write_state(tmp_path / "terraform" / "terraform.tfstate", 5)
    (tmp_path / SNAPSHOT).write_bytes(b"snapshot")
    stack._write_snapshot_meta()
    assert json.loads((tmp_path / SNAPSHOT_STATE).read_text())["serial"] == 5
    write_state(tmp_path / "terraform" / "terraform.tfstate", 7)  # the live apply

    assert stack._prepare_state() is True
    assert json.loads((tmp_path / "terraform" / "terraform.tfstate").read_text())["serial"] == 5
    assert json.loads((tmp_path / SNAPSHOT_META).read_text())["serial"] == 5


def zipped(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


@pytest.mark.slow
def test_the_emulator_moves_last_modified_and_revision_id_on_with_each_update_as_lambda_does():
    """AWS Lambda: ``LastModified`` is when the function was last updated and ``RevisionId`` its latest
    revision; moto 5.2.5 kept both still (local/moto_lambda.py patch_updates)."""
    with running() as emulator:
        iam, lam = emulator.client("iam"), emulator.client("lambda")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        created = lam.create_function(
            FunctionName="fn",
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": zipped("def handler(event, context):\n    return 1\n")},
            Environment={"Variables": {"VALUE": "old"}},
        )
        assert created["RevisionId"]
        time.sleep(0.01)
        configured = lam.update_function_configuration(
            FunctionName="fn", Environment={"Variables": {"VALUE": "new"}}
        )
        read = lam.get_function_configuration(FunctionName="fn")
        assert read["RevisionId"] == configured["RevisionId"] != created["RevisionId"]
        assert read["LastModified"] > created["LastModified"]
        assert fingerprint(read) != fingerprint(created)

        time.sleep(0.01)
        code = lam.update_function_code(
            FunctionName="fn", ZipFile=zipped("def handler(event, context):\n    return 2\n")
        )
        assert code["RevisionId"] != read["RevisionId"] and code["LastModified"] > read["LastModified"]
        assert code["CodeSha256"] != read["CodeSha256"] and fingerprint(code) != fingerprint(read)
        listed = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
        assert listed["fn"]["RevisionId"] == code["RevisionId"]
