"""``make run-apply``: apply a changed configuration to the stack ``make run`` is running, keeping its data.

On AWS an operator runs ``terraform apply`` against the live deployment: the
buckets and the table keep what they hold and Lambda runs new invocations with
the new configuration. This does the same to the local stack: it finds the
running stack (its ``stack.json`` under ``LOCAL_STACK_DIR``: the emulator's
endpoint, the API's URL and the administrator's keys the emulator made), runs
the same ``terraform apply`` the stack ran at start (``local.run.tf_variables``
and ``local.run.terraform_apply``: the fixed variables, then ``LOCAL_TF_VARS``,
as for ``make run``) against its emulator and its Terraform state, printing the
apply's progress and summary, rewrites the outputs in the stack's
``stack.json`` with Terraform's outputs after the apply (``refresh_outputs``:
``local.client``, ``make reprocess`` and ``make demo`` read them there; the
stack, when it rewrites the file, takes them from the same state), then waits
until the stack runs every changed function with its new configuration
(``local.reconfigure``; the stack checks every 2 s) and says which ones changed.

The emulator's snapshot is left as it was saved at start, with the Terraform
state it was saved with (``emulator.snapshot.tfstate``): the next ``make run``
starts from it, empty as every run starts, and applies its own ``LOCAL_TF_VARS``
(pass the changed ones and only what they change is applied). Saving the live
emulator instead would carry this session's data into the next run, and a
snapshot is only safe while no request is in flight.

Exit status: 0 when applied and followed; 1 when no stack is running, the apply
failed, or the stack did not follow in time; 2 for a bad ``LOCAL_TF_VARS``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from local import client as stack_client
from local.emulator import client
from local.reconfigure import POLL_SECONDS, fingerprint
from local.run import (
    StackError,
    extra_tf_vars,
    isolate_from_real_aws,
    log_to_stderr,
    paginate,
    terraform_apply,
    tf_variables,
)

log = logging.getLogger("local.live_apply")

FOLLOW_TIMEOUT = 60.0  # the stack checks every POLL_SECONDS; a busy machine may take a few polls


def expected_functions(lam: Any) -> dict[str, str]:
    """Every function's ``fingerprint`` as the emulator holds it now."""
    functions = paginate(lam, "list_functions", "Functions")
    return {found["FunctionName"]: fingerprint(found) for found in functions}


def behind(running: dict[str, str], expected: dict[str, str]) -> list[str]:
    """The functions the stack runs that it does not run with the emulator's configuration yet
    (one deleted meanwhile, or created and not invoked yet, is not the stack's to follow)."""
    return sorted(name for name, seen in running.items() if name in expected and seen != expected[name])


def refresh_outputs(directory: Path, outputs: dict[str, Any]) -> bool:
    """Replace the outputs in the running stack's ``stack.json`` (the rest as the stack wrote it),
    atomically: a reader never sees half of it. False when there is no description to update."""
    path = directory / "stack.json"
    try:
        description = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    description["outputs"] = outputs
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(description, indent=2) + "\n")
    os.replace(tmp, path)
    return True


def wait_followed(directory: Path, expected: dict[str, str], timeout: float = FOLLOW_TIMEOUT) -> list[str]:
    """Wait until the running stack's ``stack.json`` shows every function at ``expected``; the
    functions still behind at the deadline (empty: followed)."""
    deadline = time.monotonic() + timeout
    while True:
        description = stack_client.find_running(directory) or {}
        late = behind(description.get("functions") or {}, expected)
        if not late or time.monotonic() > deadline:
            return late
        time.sleep(POLL_SECONDS / 4)


def apply_live(directory: Path, tf_vars: dict[str, Any]) -> int:
    description = stack_client.find_running(directory)
    if description is None:
        print(
            f"make run-apply: no local stack is running in {directory}: start one with `make run` "
            "(with the same LOCAL_STACK_DIR), then apply",
            file=sys.stderr,
        )
        return 1
    started = time.monotonic()
    before = description.get("functions") or {}
    # Terraform applies as the administrator; an IAM user's key has no session token.
    credentials = {**(description.get("credentials") or {}), "AWS_SESSION_TOKEN": ""}
    variables = tf_variables(description["endpoint"], description["api_url"], tf_vars)
    log.info("terraform apply to the running stack (%s), its data kept", description["endpoint"])
    try:
        outputs, summary = terraform_apply(directory, variables, credentials)
    except StackError as exc:
        print(f"make run-apply: {exc}", file=sys.stderr)
        return 1
    log.info("terraform apply done (%.1f s): %s", time.monotonic() - started, summary)
    expected = expected_functions(client(description["endpoint"], "lambda", description.get("credentials")))
    changed = behind(before, expected)
    late = wait_followed(directory, expected)
    # After the stack's own rewrites for this apply (which take the outputs from the same state),
    # so neither write undoes the other; applied, whether or not the stack followed in time.
    refresh_outputs(directory, outputs)
    if late:
        print(
            f"make run-apply: applied, but the running stack still runs {', '.join(late)} with the old "
            f"configuration after {FOLLOW_TIMEOUT:.0f} s: see `make run`'s output, or restart it",
            file=sys.stderr,
        )
        return 1
    follows = f"reconfigured {', '.join(changed)}" if changed else "no function's configuration changed"
    print(f"Applied to the running stack ({summary or 'no changes'}); {follows}.", flush=True)
    return 0


def main() -> int:
    log_to_stderr()
    directory = stack_client.state_dir().resolve()
    try:
        tf_vars = extra_tf_vars()
    except StackError as exc:
        print(f"make run-apply: {exc}", file=sys.stderr)
        return 2
    isolate_from_real_aws()
    return apply_live(directory, tf_vars)


if __name__ == "__main__":
    sys.exit(main())
