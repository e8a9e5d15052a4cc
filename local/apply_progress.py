"""Live progress of ``terraform apply -json``: resources applied of total, and what it waits on.

Terraform's machine-readable UI (``-json``, UI version 1.x) prints one JSON message per line:
``change_summary`` with operation ``plan`` gives the total, ``apply_start`` / ``apply_complete`` /
``apply_errored`` bracket each resource, and ``apply_progress`` repeats every 10 s while one is still
being created ("Still creating..." in the human view). A data source read during the apply (one that
depends on something the apply makes) is bracketed the same way with the action ``read``; the plan's
total does not count it, so neither does the progress. ``diagnostic`` messages carry errors. Unknown
message types and fields are ignored, as the format's compatibility promise asks of readers.

A cold ``make run`` spends most of its minute in the AWS provider's own waits (docs/local-stack.md,
Apply time); the lines this module writes name the resource and why it waits, so a newcomer knows the
stack is working.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

# Why the AWS provider (5.x) keeps a resource in flight for a while, by resource type. The same waits
# happen on AWS; nothing the emulator answers shortens them.
WAIT_REASONS = {
    "aws_sqs_queue": "the AWS provider reads the queue's attributes until it sees them 6 times, 5 s apart",
    "aws_s3_bucket_lifecycle_configuration": "the AWS provider waits 10 s, then for matching reads 5 s apart",
    "aws_cloudfront_distribution": "the distribution deploys to CloudFront's edge",
    "aws_iam_role": "IAM is eventually consistent: the provider retries until the role can be used",
}


def wait_reason(address: str) -> str:
    """Why ``address`` (e.g. ``aws_sqs_queue.resize``, ``module.x.aws_sqs_queue.y[0]``) takes long."""
    parts = [part for part in address.split(".") if not part.startswith(("module", "data"))]
    resource_type = next((part for part in parts if part.startswith("aws_")), "")
    return WAIT_REASONS.get(resource_type, "waiting for the provider")


@dataclass
class ApplyProgress:
    """Reads the JSON lines of one ``terraform apply -json`` and reports as it goes."""

    report: Callable[[str], None]
    total: int = 0
    done: int = 0
    failed: int = 0
    messages: list[str] = field(default_factory=list)  # every line's @message: the apply's own log
    errors: list[str] = field(default_factory=list)  # error diagnostics, summary and detail

    def feed(self, line: str) -> None:
        """One line of output; lines that are not JSON (a crash, a plugin's stray print) are kept as text."""
        try:
            message = json.loads(line)
        except ValueError:
            if line.strip():
                self.messages.append(line.rstrip("\n"))
            return
        if not isinstance(message, dict):
            return
        text = message.get("@message")
        if isinstance(text, str):
            self.messages.append(text)
        handler = getattr(self, "_" + str(message.get("type", "")), None)
        if handler is not None:
            handler(message)

    @property
    def summary(self) -> str:
        """Terraform's own last line, e.g. ``Apply complete! Resources: 40 added, 0 changed, 0 destroyed.``"""
        return next((m for m in reversed(self.messages) if m.startswith("Apply complete!")), "")

    def _change_summary(self, message: dict) -> None:
        changes = message.get("changes") or {}
        if changes.get("operation") == "plan":
            self.total = sum(int(changes.get(key) or 0) for key in ("add", "change", "remove", "import"))
            self.report(f"terraform: {self.total} resources to apply")

    def _apply_progress(self, message: dict) -> None:
        if _is_read(message):
            return
        address, action, elapsed = _hook(message)
        why = wait_reason(address)
        self.report(f"terraform: {self._count()} still {action} {address} ({elapsed} s): {why}")

    def _apply_complete(self, message: dict) -> None:
        if _is_read(message):
            return
        self.done += 1
        address, _, elapsed = _hook(message)
        self.report(f"terraform: {self._count()} {address} ({elapsed} s)")

    def _apply_errored(self, message: dict) -> None:
        self.failed += 1
        address, _, elapsed = _hook(message)
        self.report(f"terraform: {self._count()} {address} FAILED after {elapsed} s")

    def _diagnostic(self, message: dict) -> None:
        diagnostic = message.get("diagnostic") or {}
        if diagnostic.get("severity") == "error":
            detail = diagnostic.get("detail") or ""
            self.errors.append(f"{diagnostic.get('summary', 'error')}: {detail}".rstrip(": "))

    def _count(self) -> str:
        return f"[{self.done}/{self.total}]" if self.total else f"[{self.done}]"


def _is_read(message: dict) -> bool:
    """A data source read during the apply: not one of the plan's changes."""
    return (message.get("hook") or {}).get("action") == "read"


def _hook(message: dict) -> tuple[str, str, int]:
    hook = message.get("hook") or {}
    address = (hook.get("resource") or {}).get("addr", "?")
    action = {"create": "creating", "update": "updating", "delete": "destroying", "replace": "replacing"}
    return address, action.get(hook.get("action"), "applying"), int(hook.get("elapsed_seconds") or 0)
