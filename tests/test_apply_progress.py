"""A cold `make run` shows the apply's progress: resources applied of total, and what it waits on.

Terraform's machine-readable UI (`apply -json`) prints `change_summary` (operation "plan") with the
count, `apply_complete` per resource and `apply_progress` every 10 s while one is still being
applied. These tests run a real terraform on a module of built-in `terraform_data` resources (no
provider to install), one of which waits the way the AWS provider's queue and lifecycle waits do.
"""

from __future__ import annotations

import json

import pytest

from local.apply_progress import ApplyProgress, wait_reason
from local.tf import Terraform, TerraformError
from tests.conftest import require_terraform

require_terraform("the apply progress tests")
pytestmark = [pytest.mark.slow, pytest.mark.terraform]

MODULE = """
resource "terraform_data" "quick" {
  input = "quick"
}

resource "terraform_data" "slow" {
  input = var.wait
  provisioner "local-exec" {
    command = "sleep ${var.wait} && exit ${var.status}"
  }
}

variable "wait" {
  type = number
}

variable "status" {
  type = number
}

output "quick" {
  value = terraform_data.quick.output
}
"""


@pytest.fixture
def module(tmp_path):
    (tmp_path / "main.tf").write_text(MODULE)
    tf = Terraform(tmp_path, data_dir=tmp_path / "data", state=tmp_path / "terraform.tfstate")
    tf.init()
    return tf


def test_an_apply_reports_each_resource_of_the_total_and_what_still_waits(module):
    lines: list[str] = []
    outputs = module.apply({"wait": 11, "status": 0}, progress=lines.append)
    assert outputs == {"quick": "quick"}  # the outputs, as without progress
    assert lines[0] == "terraform: 2 resources to apply"
    assert any(line.startswith("terraform: [1/2] terraform_data.") for line in lines)
    assert any(line.startswith("terraform: [2/2] terraform_data.slow (1") for line in lines)
    # Terraform repeats apply_progress every 10 s while a resource is in flight: the 11 s wait shows.
    waiting = [line for line in lines if "still creating terraform_data.slow" in line]
    assert waiting and "(10 s): waiting for the provider" in waiting[0]
    # terraform.log keeps the apply's own lines, and the summary the banner prints
    assert "Apply complete! Resources: 2 added, 0 changed, 0 destroyed." in module.last_stdout.splitlines()


def test_a_failed_apply_says_which_resource_failed_and_why(module):
    lines: list[str] = []
    with pytest.raises(TerraformError) as failure:
        module.apply({"wait": 0, "status": 3}, progress=lines.append)
    assert any("terraform_data.slow FAILED" in line for line in lines)
    # with -json the error is a diagnostic on stdout; the exception carries its summary and detail
    assert "local-exec provisioner error" in str(failure.value)
    assert "exit status 3" in str(failure.value)


READ_DURING_APPLY = """
resource "terraform_data" "quick" {
  input = "quick"
}

data "terraform_remote_state" "other" {
  backend = "local"
  config  = { path = "${terraform_data.quick.output}.tfstate" }
}
"""


def test_data_sources_read_during_the_apply_are_not_counted_as_resources(tmp_path):
    """A data source that depends on a resource is read during the apply (apply_start/apply_complete
    with the action "read"), but the plan's total counts only changes: [2/1] would be wrong."""
    (tmp_path / "main.tf").write_text(READ_DURING_APPLY)
    state = {"version": 4, "serial": 1, "lineage": "other", "outputs": {}, "resources": []}
    (tmp_path / "quick.tfstate").write_text(json.dumps(state))
    tf = Terraform(tmp_path, data_dir=tmp_path / "data", state=tmp_path / "terraform.tfstate")
    tf.init()
    lines: list[str] = []
    tf.apply({}, progress=lines.append)
    assert "Refresh complete" in tf.last_stdout  # the data source was read during the apply
    assert [line for line in lines if line.startswith("terraform: [")] == [
        line for line in lines if line.startswith("terraform: [1/1] terraform_data.quick")
    ]
    assert not any("terraform_remote_state" in line for line in lines)


def test_the_aws_providers_known_waits_are_named():
    assert "6 times, 5 s apart" in wait_reason("aws_sqs_queue.resize")
    assert "6 times" in wait_reason("module.pipeline.aws_sqs_queue.dlq[0]")
    assert "10 s" in wait_reason('aws_s3_bucket_lifecycle_configuration.images["uploads"]')
    assert wait_reason("aws_dynamodb_table.images") == "waiting for the provider"


def test_lines_that_are_not_json_are_kept_for_the_log_and_unknown_messages_ignored():
    lines: list[str] = []
    progress = ApplyProgress(lines.append)
    progress.feed("panic: the provider crashed\n")
    progress.feed(json.dumps({"type": "a_message_of_a_later_ui_version", "@message": "new"}))
    progress.feed(json.dumps([1, 2]))
    assert progress.messages == ["panic: the provider crashed", "new"]
    assert lines == [] and progress.summary == ""
