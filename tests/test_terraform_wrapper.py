"""local/tf.py: the provider comes from a mirror, never the registry; state stays apart."""

from __future__ import annotations

import json
import re

import pytest

from local import tf as tfmod
from local.tf import REPO_ROOT, Terraform, TerraformError, find_plugin_mirror, find_terraform


def test_a_missing_mirror_named_by_the_environment_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_PLUGIN_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(TerraformError, match="nowhere is not a directory"):
        find_plugin_mirror()


def test_no_mirror_anywhere_says_how_to_point_at_one(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_PLUGIN_MIRROR", raising=False)
    monkeypatch.setattr(tfmod, "MIRROR_CANDIDATES", (tmp_path / "a", tmp_path / "b"))
    with pytest.raises(TerraformError, match="set TF_PLUGIN_MIRROR"):
        find_plugin_mirror()


def test_the_environment_overrides_the_default_locations(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_PLUGIN_MIRROR", str(tmp_path))
    assert find_plugin_mirror() == tmp_path


def test_cli_config_allows_only_the_filesystem_mirror(tmp_path):
    text = tfmod._cli_config(tmp_path / 'odd "dir"')
    assert "filesystem_mirror" in text
    assert json.dumps(str(tmp_path / 'odd "dir"')) in text
    assert "direct" not in text


needs_terraform = pytest.mark.skipif(find_terraform() is None, reason="terraform is not on PATH")


@pytest.mark.slow
@pytest.mark.terraform
@needs_terraform
def test_init_and_validate_from_the_mirror_with_a_broken_cli_config(tmp_path):
    try:
        find_plugin_mirror()
    except TerraformError as exc:
        pytest.skip(str(exc))
    wrapper = Terraform(
        data_dir=tmp_path / "data",
        state=tmp_path / "state.tfstate",
        env={"TF_CLI_CONFIG_FILE": str(tmp_path / "missing.tfrc")},
    )
    wrapper.init()
    wrapper.validate()
    assert "Unable to open CLI configuration file" not in wrapper.last_stderr
    assert "The configuration is valid" in wrapper.last_stdout
    # Everything lives where it was told, not in the repository's .terraform/.
    assert (tmp_path / "data" / "providers").is_dir()
    assert wrapper.output() == {}  # no state yet


@pytest.mark.slow
@pytest.mark.terraform
@needs_terraform
def test_variables_go_through_a_tfvars_json_file_and_are_validated(tmp_path):
    try:
        find_plugin_mirror()
    except TerraformError as exc:
        pytest.skip(str(exc))
    wrapper = Terraform(data_dir=tmp_path / "data", state=tmp_path / "state.tfstate")
    wrapper.init()
    # The provider depends on aws_region, so the plan stops before any AWS call.
    with pytest.raises(TerraformError, match=re.escape("aws_region must be a region name")):
        wrapper.plan({"aws_region": "mars", "resize_memory_mb": 1024})
    written = json.loads((tmp_path / "data" / "variables.tfvars.json").read_text())
    assert written == {"aws_region": "mars", "resize_memory_mb": 1024}
    assert wrapper.workdir == REPO_ROOT
