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
    iam = var.endpoint
    sfn = var.endpoint
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
resource "aws_sfn_state_machine" "probe" {
  name     = "probe"
  role_arn = aws_iam_role.sfn.arn
  definition = jsonencode({
    StartAt = "Done"
    States  = { Done = { Type = "Pass", End = true } }
  })
}
"""


@pytest.mark.terraform
def test_terraform_applies_a_state_machine_and_plans_nothing_after(tmp_path):
    """The aws provider validates the definition at plan (ValidateStateMachineDefinition) and reads
    versions on refresh (ListStateMachineVersions): apply succeeds and a second plan is empty."""
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
