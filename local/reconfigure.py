"""The running stack follows its functions' configuration as Lambda does (``make run-apply``).

On AWS an operator applies a changed configuration to the live deployment and
the data stays: Lambda keeps invoking the function while
``UpdateFunctionConfiguration`` / ``UpdateFunctionCode`` is in progress, and once
the function's ``LastUpdateStatus`` is ``Successful`` it "is processing events
with the new configuration" (AWS Lambda API reference, UpdateFunctionConfiguration;
developer guide, "Lambda function states"). The local stack runs the functions
itself (``local.functions``), so it watches the emulator: ``Watcher`` calls the
stack's check every ``POLL_SECONDS``; the check lists the functions and
reconfigures each ``LocalFunction`` whose configuration ``fingerprint`` changed
(``LocalFunction.reconfigure``: in-flight invocations finish on the old
environment, new ones start with the new one).

What moto 5.2.5 changes on an update, checked in its source
(``moto/awslambda/models.py``): UpdateFunctionConfiguration changes the fields
it is given and nothing else: ``LastModified`` stays the creation time and
its function configuration carries no ``RevisionId`` (AWS changes both; the
emulator now does too, ``local.moto_lambda.patch_updates``).
UpdateFunctionCode changes ``CodeSha256``. The fingerprint is taken over the
fields the local runtime uses, plus ``CodeSha256``, so it depends on neither,
and an update that changes nothing the runtime uses (a description) restarts
nothing.

Event source mappings and the HTTP API's routes are read once at start: a
change to them is logged (``describe_mapping_change``, ``describe_route_change``)
with what to do, a restart of ``make run``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("local.reconfigure")

POLL_SECONDS = 2.0  # a ListFunctions (and a ListEventSourceMappings) every 2 s
ROUTES_EVERY = 5  # the API's routes (a few calls) every fifth poll
# The fields of GetFunctionConfiguration the local runtime runs a function with (FunctionConfig),
# and the code's hash (the local runtime imports the handlers afresh in each new environment).
FUNCTION_FIELDS = ("Handler", "Role", "Runtime", "Timeout", "MemorySize", "Environment", "CodeSha256")
# The fields of an event source mapping the poller honours (local.poller.MappingSettings).
MAPPING_FIELDS = (
    "EventSourceArn",
    "FunctionArn",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "ScalingConfig",
)


def _relevant(found: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    return {name: found.get(name) for name in fields}


def fingerprint(found: dict[str, Any]) -> str:
    """A short hash of what the local runtime runs a function with (a GetFunctionConfiguration)."""
    text = json.dumps(_relevant(found, FUNCTION_FIELDS), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_function_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What changed between two configurations of a function, for the log: field names, and the
    names (not the values: they may be secrets) of environment variables added, changed or removed."""
    parts = []
    for name in FUNCTION_FIELDS:
        if name == "Environment":
            before = (old.get(name) or {}).get("Variables") or {}
            after = (new.get(name) or {}).get("Variables") or {}
            changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            if changed:
                parts.append("environment " + ", ".join(changed))
        elif old.get(name) != new.get(name):
            parts.append("code" if name == "CodeSha256" else name)
    return "; ".join(parts) or "nothing the local runtime uses"


def mapping_view(mappings: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The SQS mappings' settings the poller honours, by UUID (from ListEventSourceMappings)."""
    return {
        m["UUID"]: _relevant(m, MAPPING_FIELDS)
        for m in mappings
        if m.get("EventSourceArn", "").startswith("arn:aws:sqs:")
    }


def describe_mapping_change(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> str | None:
    """None when the pollers' settings still hold; else what changed, for a log line."""
    if old == new:
        return None
    parts = [f"mapping {uuid} added" for uuid in sorted(new.keys() - old.keys())]
    parts += [f"mapping {uuid} removed" for uuid in sorted(old.keys() - new.keys())]
    for uuid in sorted(old.keys() & new.keys()):
        changed = [k for k in MAPPING_FIELDS if old[uuid].get(k) != new[uuid].get(k)]
        if changed:
            parts.append(f"mapping {uuid}: {', '.join(changed)}")
    return "; ".join(parts)


def describe_route_change(old: Iterable[Any], new: Iterable[Any]) -> str | None:
    """None when the routes (``local.front.Route``) are the same; else the route keys that differ."""
    before = {route.key: route for route in old}
    after = {route.key: route for route in new}
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return ", ".join(changed) or None


class Watcher:
    """A daemon thread that calls ``check(poll_number)`` every ``poll_seconds`` until stopped; a
    failing check is logged and tried again at the next poll (the emulator may be busy)."""

    def __init__(self, check: Callable[[int], None], poll_seconds: float = POLL_SECONDS) -> None:
        self._check = check
        self._poll = poll_seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconfigure", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        number = 0
        while not self._stopped.wait(self._poll):
            number += 1
            try:
                self._check(number)
            except Exception as exc:  # one failed poll: the next one tries again
                log.warning("could not read the configuration (next try in %.0f s): %s", self._poll, exc)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
