"""``make reprocess``: start the reprocess state machine, show its progress, print what it did.

The machine (step_functions.tf, docs/reprocess.md) lists the originals under a
prefix with a Distributed Map, has the maintenance function plan each batch and
sends the planned messages to the resize queue. This tool:

1. finds the machine: ``--state-machine-arn``; else, with ``AWS_PROFILE`` or
   ``AWS_ACCESS_KEY_ID`` set, AWS and ``terraform output reprocess_state_machine_arn``;
   else the local stack a ``make run`` left running (its ``stack.json``);
2. starts an execution with ``{"prefix", "all", "force"}``;
3. shows the map run's items succeeded / failed / total (``DescribeMapRun``) as
   a progress bar until the execution ends;
4. prints what the run did: the execution's output, which the machine's last
   state (maintenance's ``summarize_reprocess``) sums from the map run's results,
   listed / enqueued / skipped (current) / failed and the first failures; a
   failed execution has no output (the map failed before the sum): its error and
   one failed batch's error are printed instead;
5. exits 1 when the execution did not succeed, 2 when there is no machine to start.

Each step is a function over boto3 clients, so tests drive them on the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local import client as local_client
from local.emulator import client as emulator_client

FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
BAR_WIDTH = 30


class NoMachine(RuntimeError):
    """No state machine to start: the message says how to get one."""


@dataclass
class Target:
    """Where the machine is and how to reach it."""

    arn: str
    make_client: Callable[[str], Any]
    where: str


@dataclass
class Progress:
    """A map run's item counts (DescribeMapRun ``itemCounts``)."""

    succeeded: int = 0
    failed: int = 0
    total: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


def execution_input(prefix: str | None, all_: bool, force: bool) -> dict[str, Any]:
    """The machine's input; the machine fills a missing prefix with ``originals/``."""
    options: dict[str, Any] = {"all": all_, "force": force}
    if prefix:
        options["prefix"] = prefix
    return options


def find_target(environ: Mapping[str, str] = os.environ, arn: str | None = None) -> Target:
    """The machine to start (see the module docstring for the order)."""
    import boto3

    if environ.get("AWS_PROFILE") or environ.get("AWS_ACCESS_KEY_ID"):
        arn = (
            arn
            or environ.get("REPROCESS_STATE_MACHINE_ARN")
            or terraform_output("reprocess_state_machine_arn")
        )
        session = boto3.session.Session()
        return Target(arn, session.client, f"AWS ({session.region_name})")
    running = local_client.find_running(local_client.state_dir(environ))
    if running is None:
        raise NoMachine(
            "no local stack is running and no AWS credentials are set: start `make run`, "
            "or set AWS_PROFILE (or AWS_ACCESS_KEY_ID) for the account the module is applied in"
        )
    arn = arn or running.get("outputs", {}).get("reprocess_state_machine_arn")
    if not arn:
        raise NoMachine(
            "the running local stack has no reprocess state machine: restart `make run` on this checkout"
        )
    endpoint, credentials = running["endpoint"], running.get("credentials")
    return Target(
        arn, lambda service: emulator_client(endpoint, service, credentials), f"the local stack ({endpoint})"
    )


def terraform_output(name: str) -> str:
    """``terraform output -raw name`` of the root module (the state ``make`` users apply)."""
    try:
        result = subprocess.run(
            ["terraform", "output", "-raw", name],
            cwd=local_client.REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise NoMachine("terraform is not on PATH: pass --state-machine-arn") from None
    if result.returncode != 0 or not result.stdout.startswith("arn:"):
        raise NoMachine(
            f"`terraform output {name}` gave no ARN (apply the module, or pass --state-machine-arn)"
        )
    return result.stdout.strip()


def start(sfn: Any, arn: str, options: dict[str, Any]) -> str:
    return sfn.start_execution(stateMachineArn=arn, input=json.dumps(options))["executionArn"]


def map_run_progress(sfn: Any, execution_arn: str) -> Progress | None:
    """The execution's map run counts, or ``None`` before the map run exists."""
    runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
    if not runs:
        return None
    counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
    return Progress(counts.get("succeeded", 0), counts.get("failed", 0), counts.get("total", 0))


def first_failed_batch(sfn: Any, execution_arn: str) -> str | None:
    """The error and cause of one failed child execution of the run (ListExecutions by map run)."""
    runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
    if not runs:
        return None
    from botocore.exceptions import ClientError

    try:
        failed = sfn.list_executions(mapRunArn=runs[0]["mapRunArn"], statusFilter="FAILED", maxResults=1)
    except ClientError:  # best effort: the run's failure is already reported
        return None
    for child in failed.get("executions", []):
        described = sfn.describe_execution(executionArn=child["executionArn"])
        return f"{described.get('error', '?')}: {str(described.get('cause', ''))[:500]}"
    return None


def wait(
    sfn: Any,
    execution_arn: str,
    on_progress: Callable[[Progress], None] = lambda _: None,
    poll_seconds: float = 1.0,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """DescribeExecution once it has finished, reporting the map run's progress meanwhile."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        progress = map_run_progress(sfn, execution_arn)
        if progress is not None:
            on_progress(progress)
        if execution["status"] in FINISHED:
            return execution
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still {execution['status']} after {timeout_seconds} s")
        time.sleep(poll_seconds)


def report(output: dict[str, Any]) -> list[str]:
    """The lines that say what a succeeded run did: its output's counts (the machine's Summarize
    state, ``imgpipe.reprocess_results``) and the first failures."""
    counts = {name: output.get(name, 0) for name in ("listed", "enqueued", "skipped_current", "failed")}
    lines = [
        f"listed {counts['listed']}, enqueued {counts['enqueued']},"
        f" skipped (current) {counts['skipped_current']}, failed {counts['failed']}"
    ]
    failures = output.get("failures") or []
    lines += [f"  failed: {failure.get('key')} ({failure.get('error_code')})" for failure in failures]
    if counts["failed"] > len(failures):
        lines.append(f"  ... and {counts['failed'] - len(failures)} more")
    if output.get("failed_batches"):
        lines.append(f"  {output['failed_batches']} batches failed as a whole (their keys count as failed)")
    results = output.get("results") or {}
    if results.get("bucket"):
        lines.append(f"  results: s3://{results['bucket']}/{results.get('manifest', '')}")
    return lines


def progress_bar(progress: Progress) -> str:
    total = max(progress.total, progress.done, 1)
    filled = round(BAR_WIDTH * progress.done / total)
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress.done}/{progress.total} keys"
        f" ({progress.failed} in failed batches)"
    )


def printer(stream: Any) -> Callable[[Progress], None]:
    """Redraw one line on a terminal; elsewhere print a line when the counts change."""
    last: list[str] = []

    def show(progress: Progress) -> None:
        line = progress_bar(progress)
        if last and last[0] == line:
            return
        last[:] = [line]
        if stream.isatty():
            stream.write("\r" + line)
        else:
            stream.write(line + "\n")
        stream.flush()

    return show


def run(target: Target, options: dict[str, Any], stream: Any = sys.stdout, poll_seconds: float = 1.0) -> int:
    sfn = target.make_client("stepfunctions")
    execution_arn = start(sfn, target.arn, options)
    stream.write(f"Reprocess {json.dumps(options)} on {target.where}\n  execution {execution_arn}\n")
    execution = wait(sfn, execution_arn, printer(stream), poll_seconds)
    if stream.isatty():
        stream.write("\n")
    status = execution["status"]
    if status != "SUCCEEDED":
        stream.write(
            f"Execution {status}: {execution.get('error', '')} {execution.get('cause', '')}".rstrip() + "\n"
        )
        failed = first_failed_batch(sfn, execution_arn)
        if failed:
            stream.write(f"  a failed batch: {failed}\n")
        return 1
    for line in report(json.loads(execution.get("output") or "{}")):
        stream.write(line + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make reprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", help="key prefix to list (default: originals/)")
    parser.add_argument("--all", action="store_true", help="enqueue every listed key, current or not")
    parser.add_argument(
        "--force", action="store_true", help="render every listed key again, even when current"
    )
    parser.add_argument("--state-machine-arn", help="the reprocess machine (default: see docs/reprocess.md)")
    args = parser.parse_args(argv)
    try:
        target = find_target(os.environ, args.state_machine_arn)
    except NoMachine as exc:
        print(f"make reprocess: {exc}", file=sys.stderr)
        return 2
    return run(target, execution_input(args.prefix, args.all, args.force))


if __name__ == "__main__":
    sys.exit(main())
