"""An existing deployment upgrades without replacing anything: renamed addresses carry `moved {}`.

The root module as it was at ``BEFORE`` (the last commit before issue 17 wrote
each repeated resource once), and as it was at ``ROLES_BEFORE`` (the last
commit before the functions' roles became one ``for_each``), is taken from this
repository's git history with ``git archive``, applied against the emulator,
and then this checkout's module is planned on the same state. Terraform moves a
resource whose address changed only when a ``moved`` block says so; without one
it plans to destroy the old address and create the new one, which for a
bucket's versioning, encryption or lifecycle configuration means a window
without it ("Refactoring", Terraform language docs:
https://developer.hashicorp.com/terraform/language/modules/develop/refactoring).

The history must hold both commits: any clone does (``git clone`` copies every
commit) except a shallow one, for which the test fails saying what to fetch.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from local.tf import REPO_ROOT, Terraform
from tests.conftest import require_terraform
from tests.reattached_provider import reattached
from tests.test_terraform_plan import CREDENTIALS, write_package

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

require_terraform()

# main before the buckets' protections (s3_protections.tf) and the single-metric alarms
# (aws_cloudwatch_metric_alarm.metric) became one for_each each.
BEFORE = "977ded2bf86e45ccdf3d83b4831cc85e5c7d42f9"
# main before the functions' roles and their policies (aws_iam_role.function,
# aws_iam_role_policy.function) became one for_each each: it has the maintenance role too.
ROLES_BEFORE = "bdc24fd0e558469c5f18c5eaf6171af99a020bdd"

# As tests/terraform/pipeline/main.tf applies the module against the emulator.
EMULATOR_VARIABLES = {
    "api_auth": "open",
    "dynamodb_deletion_protection": False,
    "resize_event_source_enabled": False,
    "cdn_wait_for_deployment": False,
    "events_queue_enabled": True,
}


# Resources this module declares that BEFORE did not: created on upgrade, nothing else.
NEW_SINCE_BEFORE = {
    "aws_cloudwatch_log_group.function",  # the maintenance function's
    "aws_cloudwatch_log_group.states",
    "aws_cloudwatch_metric_alarm.metric",
    "aws_iam_role.function",  # the maintenance function's
    "aws_iam_role.scheduler",
    "aws_iam_role.states",
    "aws_iam_role_policy.function",  # the maintenance function's
    "aws_iam_role_policy.scheduler",
    "aws_iam_role_policy.states",
    "aws_lambda_function.function",  # the maintenance function
    "aws_scheduler_schedule.reconcile",
    "aws_sfn_state_machine.machines",
}

# Resources this module declares that ROLES_BEFORE did not: created on upgrade, nothing else.
NEW_SINCE_ROLES_BEFORE = {
    "aws_cloudwatch_metric_alarm.metric",  # maintenance-events-not-published (reconcile's events)
}


def module_at(commit: str, directory: Path) -> Path:
    """The repository as it was at ``commit`` (git archive: the module and the files it reads)."""
    known = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if known.returncode != 0:
        pytest.fail(
            f"commit {commit} is not in this clone's history (a shallow clone?): "
            "run `git fetch --unshallow` and test again",
            pytrace=False,
        )
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def saved_plan(tf: Terraform, variables_file: Path, state: Path, plan_file: Path) -> dict:
    tf.run(
        "plan",
        "-input=false",
        "-no-color",
        "-lock=false",
        f"-state={state}",
        f"-var-file={variables_file}",
        f"-out={plan_file}",
    )
    return json.loads(tf.run("show", "-json", "-no-color", str(plan_file)).stdout)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    from local.emulator import running

    with running(log_path=tmp_path_factory.mktemp("moto") / "moto.log") as emu:
        yield emu


def upgraded(emulator, base: Path, commit: str, deployed: dict | None = None) -> dict:
    """The module at ``commit``'s plan (applied) and this module's plan on the state it left.

    ``commit`` is applied from nothing, or, given an earlier upgrade's result (``deployed``),
    on a copy of that deployment's state, as a deployment that kept up with main would be."""
    state = base / "state" / "terraform.tfstate"
    if deployed is None:
        package = write_package(base / "package")
        variables_file = base / "vars.tfvars.json"
        variables = {
            "aws_endpoint_url": emulator.endpoint,
            "lambda_zip_path": str(package),
            **EMULATOR_VARIABLES,
        }
        variables_file.write_text(json.dumps(variables))
    else:
        variables_file = deployed["variables_file"]
        state.parent.mkdir(parents=True)
        shutil.copyfile(deployed["state"], state)

    workdir = module_at(commit, base / "before")
    old = Terraform(workdir=workdir, data_dir=base / "before-data", state=state, env=CREDENTIALS)
    old.init()
    with reattached(old, base / "before-provider.log"):  # tests/reattached_provider.py
        before = saved_plan(old, variables_file, state, base / "before.tfplan")
        old.run("apply", "-input=false", "-no-color", f"-state={state}", str(base / "before.tfplan"))

    new = Terraform(data_dir=base / "after-data", state=state, env=CREDENTIALS)
    new.init()
    with reattached(new, base / "after-provider.log"):
        after = saved_plan(new, variables_file, state, base / "after.tfplan")
    return {"before": before, "after": after, "state": state, "variables_file": variables_file}


@pytest.fixture(scope="module")
def upgrade(emulator, tmp_path_factory) -> dict:
    """From ``BEFORE``: the old module's plan (applied) and this module's plan on the state it left."""
    return upgraded(emulator, tmp_path_factory.mktemp("upgrade"), BEFORE)


@pytest.fixture(scope="module")
def roles_upgrade(emulator, upgrade, tmp_path_factory) -> dict:
    """From ``ROLES_BEFORE``, applied on the deployment ``BEFORE`` made (cheaper than a second
    deployment from nothing: the buckets and queues are kept), and this module's plan after it."""
    return upgraded(emulator, tmp_path_factory.mktemp("roles-upgrade"), ROLES_BEFORE, deployed=upgrade)


def managed_changes(planned: dict) -> list[dict]:
    return [change for change in planned["resource_changes"] if change["mode"] == "managed"]


def moved_blocks() -> dict[str, str]:
    """Every ``moved`` block of this module, from -> to."""
    pattern = re.compile(r"moved\s*\{\s*from\s*=\s*(\S+)\s*to\s*=\s*(\S+)\s*\}")
    blocks = [pattern.findall(path.read_text()) for path in REPO_ROOT.glob("*.tf")]
    return {source: target for found in blocks for source, target in found}


def configured(planned: dict) -> set[str]:
    """The managed resources the module declares (whether or not count/for_each makes any)."""
    return {
        resource["address"]
        for resource in planned["configuration"]["root_module"]["resources"]
        if resource["mode"] == "managed"
    }


def without_key(address: str) -> str:
    return address.split("[", 1)[0]


def function_role_moves(*functions: str) -> dict[str, str]:
    """Each function's role and inline policy: old address -> the for_each instance of its key."""
    return {
        f"{kind}.{function}": f'{kind}.function["{function}"]'
        for kind in ("aws_iam_role", "aws_iam_role_policy")
        for function in functions
    }


def test_an_existing_deployment_plans_only_moves_and_new_resources_no_delete_or_replace(upgrade):
    """Resources added since ``BEFORE`` (the maintenance function, the state machines and
    their schedule, issue 13) are created; every resource the old module made is kept."""
    applied = [c for c in managed_changes(upgrade["before"]) if c["change"]["actions"] != ["no-op"]]
    old_addresses = {c["address"] for c in applied}
    added = [
        c
        for c in managed_changes(upgrade["after"])
        if c["change"]["actions"] == ["create"]
        and c["address"] not in old_addresses
        and not c.get("previous_address")
    ]
    changes = [c for c in managed_changes(upgrade["after"]) if c not in added]
    not_kept = {c["address"]: c["change"]["actions"] for c in changes if c["change"]["actions"] != ["no-op"]}
    assert not not_kept, not_kept
    assert {without_key(c["address"]) for c in added} <= NEW_SINCE_BEFORE, added
    moved = {c["previous_address"]: c["address"] for c in changes if c.get("previous_address")}
    print(f"{len(applied)} resources applied by {BEFORE[:7]}; {len(changes)} planned now: {len(moved)} moved")
    # The buckets' protections, five per bucket (the TLS-only policies are not made against the emulator).
    protections = {
        f"aws_s3_bucket_{kind}.{role}": f'aws_s3_bucket_{kind}.images["{role}"]'
        for kind in (
            "ownership_controls",
            "public_access_block",
            "versioning",
            "server_side_encryption_configuration",
            "lifecycle_configuration",
        )
        for role in ("uploads", "resized")
    }
    assert protections.items() <= moved.items()
    # The single-metric alarms, one resource keyed by the alarm's name (the webhook's is not made here).
    alarms = {
        "aws_cloudwatch_metric_alarm.dlq_messages": "resize-dlq-messages",
        "aws_cloudwatch_metric_alarm.queue_age": "resize-queue-age",
        'aws_cloudwatch_metric_alarm.function_throttles["resize"]': "resize-throttles",
        'aws_cloudwatch_metric_alarm.function_throttles["upload"]': "upload-throttles",
        "aws_cloudwatch_metric_alarm.events_not_published[0]": "events-not-published",
    }
    keyed = {old: f'aws_cloudwatch_metric_alarm.metric["{key}"]' for old, key in alarms.items()}
    assert keyed.items() <= moved.items()
    # The functions and their log groups, one resource each keyed by the function's role.
    functions = {
        f"{kind}.{role}": f'{kind}.function["{role}"]'
        for kind in ("aws_lambda_function", "aws_cloudwatch_log_group")
        for role in ("resize", "upload")
    }
    assert functions.items() <= moved.items()
    # Their roles and the roles' policies, likewise (BEFORE had no maintenance function).
    roles = function_role_moves("resize", "upload")
    assert roles.items() <= moved.items()
    assert len(moved) == len(protections) + len(alarms) + len(functions) + len(roles)
    assert len(changes) == len(applied)  # nothing gone


def test_a_deployment_with_a_role_resource_per_function_plans_the_six_role_moves_only(roles_upgrade):
    """The three functions' roles and policies move to their keys; what was added since is created
    (NEW_SINCE_ROLES_BEFORE) and nothing else changes. A replaced role would be a new principal even
    under the same name: IAM keeps a role's unique id in the policies that name its ARN, so a
    recreated role no longer matches them (IAM User Guide, "IAM role trust policy examples")."""
    deployed = managed_changes(roles_upgrade["before"])  # every instance ROLES_BEFORE keeps or makes
    deployed_addresses = {c["address"] for c in deployed}
    changes = managed_changes(roles_upgrade["after"])
    added = [
        c
        for c in changes
        if c["change"]["actions"] == ["create"]
        and c["address"] not in deployed_addresses
        and not c.get("previous_address")
    ]
    assert {without_key(c["address"]) for c in added} <= NEW_SINCE_ROLES_BEFORE, added
    kept = [c for c in changes if c not in added]
    not_kept = {c["address"]: c["change"]["actions"] for c in kept if c["change"]["actions"] != ["no-op"]}
    assert not not_kept, not_kept
    moved = {c["previous_address"]: c["address"] for c in kept if c.get("previous_address")}
    assert moved == function_role_moves("resize", "upload", "maintenance")
    assert len(kept) == len(deployed)  # nothing gone


@pytest.mark.parametrize("old", ["upgrade", "roles_upgrade"])
def test_every_address_the_old_module_declared_is_kept_or_moved(old, request):
    """Also the resources count or for_each leave out against the emulator (the bucket policies):
    each old address is still declared, or a moved block takes it to one that is."""
    planned = request.getfixturevalue(old)
    before, after = configured(planned["before"]), configured(planned["after"])
    moves = moved_blocks()
    moved_from = {without_key(source): without_key(target) for source, target in moves.items()}
    lost = {address for address in before - after if moved_from.get(address) not in after}
    assert not lost, lost
    # and every moved block leads to a resource this module declares
    assert {without_key(target) for target in moves.values()} <= after
