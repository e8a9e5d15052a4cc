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


def test_no_mirror_anywhere_means_the_registry(monkeypatch, tmp_path):
    """A laptop with internet has no mirror: terraform init installs the pinned provider from the registry."""
    monkeypatch.delenv("TF_PLUGIN_MIRROR", raising=False)
    monkeypatch.setattr(tfmod, "MIRROR_CANDIDATES", (tmp_path / "a", tmp_path / "b"))
    assert find_plugin_mirror() is None
    text = tfmod._cli_config(None, tmp_path / "cache")
    assert "filesystem_mirror" not in text and "provider_installation" not in text  # the default: registry
    assert f"plugin_cache_dir = {json.dumps(str(tmp_path / 'cache'))}" in text  # one download per checkout


def test_without_a_mirror_init_does_not_restrict_the_plugin_dir(monkeypatch, tmp_path):
    """`terraform init -plugin-dir` would forbid the registry; without a mirror it is not passed."""
    monkeypatch.delenv("TF_PLUGIN_MIRROR", raising=False)
    monkeypatch.setattr(tfmod, "MIRROR_CANDIDATES", ())
    fake = tmp_path / "terraform"
    fake.write_text(
        '#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\ncat "$TF_CLI_CONFIG_FILE" > "$(dirname "$0")/rc"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("TERRAFORM", str(fake))
    Terraform(data_dir=tmp_path / "data", state=tmp_path / "state").init()
    assert (tmp_path / "args").read_text().split() == ["init", "-input=false", "-no-color", "-backend=false"]
    assert "plugin_cache_dir" in (tmp_path / "rc").read_text()
    assert tfmod.PROVIDER_CACHE.is_dir()


def test_no_terraform_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("TERRAFORM", str(tmp_path / "absent"))
    with pytest.raises(
        TerraformError, match=re.escape("install Terraform >= 1.5 from https://developer.hashicorp.com")
    ):
        Terraform(data_dir=tmp_path / "data")


def test_the_environment_overrides_the_default_locations(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_PLUGIN_MIRROR", str(tmp_path))
    assert find_plugin_mirror() == tmp_path


def test_cli_config_allows_only_the_filesystem_mirror(tmp_path):
    text = tfmod._cli_config(tmp_path / 'odd "dir"', tmp_path / "cache")
    assert "filesystem_mirror" in text
    assert json.dumps(str(tmp_path / 'odd "dir"')) in text
    assert "direct" not in text


needs_terraform = pytest.mark.skipif(find_terraform() is None, reason="terraform is not on PATH")


@pytest.mark.slow
@pytest.mark.terraform
@needs_terraform
def test_init_and_validate_from_the_mirror_with_a_broken_cli_config(tmp_path):
    wrapper = Terraform(
        data_dir=tmp_path / "data",
        state=tmp_path / "state.tfstate",
        env={"TF_CLI_CONFIG_FILE": str(tmp_path / "missing.tfrc")},
    )
    lock = (REPO_ROOT / ".terraform.lock.hcl").read_text()
    wrapper.init()
    wrapper.validate()
    # The lock's h1 hash is the mirror package's: init leaves the lock as it is.
    assert (REPO_ROOT / ".terraform.lock.hcl").read_text() == lock
    assert "Unable to open CLI configuration file" not in wrapper.last_stderr
    assert "The configuration is valid" in wrapper.last_stdout
    # Everything lives where it was told, not in the repository's .terraform/.
    assert (tmp_path / "data" / "providers").is_dir()
    assert wrapper.output() == {}  # no state yet


@pytest.mark.slow
@pytest.mark.terraform
@needs_terraform
def test_variables_go_through_a_tfvars_json_file_and_are_validated(tmp_path):
    wrapper = Terraform(data_dir=tmp_path / "data", state=tmp_path / "state.tfstate")
    wrapper.init()
    # The provider depends on aws_region, so the plan stops before any AWS call.
    with pytest.raises(TerraformError, match=re.escape("aws_region must be a region name")):
        wrapper.plan({"aws_region": "mars", "resize_memory_mb": 1024})
    written = json.loads((tmp_path / "data" / "variables.tfvars.json").read_text())
    assert written == {"aws_region": "mars", "resize_memory_mb": 1024}
    assert wrapper.workdir == REPO_ROOT


def test_the_lock_file_checks_the_provider_on_every_platform_a_user_has():
    """Terraform verifies a registry download against the lock's `zh:` hashes, the SHA-256 of each
    platform's release zip (Terraform docs, "Dependency Lock File": "zh: ... the legacy zip hash
    scheme"; the registry's SHA256SUMS file lists every platform). With all of them in the lock, init
    on linux or darwin, amd64 or arm64, verifies its download instead of trusting it on first use."""
    text = (REPO_ROOT / ".terraform.lock.hcl").read_text()
    assert re.search(r'version\s+=\s+"5\.100\.0"', text)
    zip_hashes = re.findall(r'"zh:([0-9a-f]{64})"', text)
    assert len(zip_hashes) >= 14  # one per released platform: linux, darwin, windows, freebsd, ...
    assert re.findall(r'"h1:[A-Za-z0-9+/=]{44}"', text)  # and the unpacked hash of the mirror's package
