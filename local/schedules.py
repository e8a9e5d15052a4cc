"""EventBridge Scheduler in the local stack: every ENABLED schedule fires at its rate, as the service would.

moto stores schedules (``scheduler create_schedule``) but never fires them. The
stack's ``Scheduler`` reads them back from the emulator every
``REFRESH_SECONDS`` (so a schedule Terraform or a test creates while the stack
runs is picked up, an edited one follows its new expression, a deleted or
``DISABLED`` one stops) and fires each one:

- ``rate(N minute|minutes|hour|hours|day|days)``: every period, the first one
  period after the stack first sees the schedule;
- ``cron(minutes hours day-of-month month day-of-week year)``: at each matching
  UTC minute (``*``, lists, ranges and ``/`` steps; ``L``, ``W`` and ``#`` are not
  supported locally: such a schedule is logged and never fires);
- ``at(yyyy-mm-ddThh:mm:ss)``: once, when due.

``LOCAL_SCHEDULE_SECONDS=N`` fires every recurring schedule every N seconds
instead, so a 15-minute schedule can be watched at work; the ``make run``
banner names it. ``StartDate`` and ``EndDate`` are honoured.

Each firing is what EventBridge Scheduler does (Scheduler user guide, "templated
targets", "universal targets", "context attributes"): it assumes the target's
``RoleArn`` as ``scheduler.amazonaws.com`` (the role's trust policy must allow
it) and calls the target with those credentials, with the target's ``Input``
(``<aws.scheduler.*>`` context attributes filled in; ``{}`` when it has none):

- a state machine ARN: ``states:StartExecution`` with ``input`` = Input;
- a queue ARN: ``sqs:SendMessage`` with ``MessageBody`` = Input (and
  ``SqsParameters.MessageGroupId``);
- a function ARN: ``lambda:Invoke``, asynchronous (``Event``), ``Payload`` = Input;
- an event bus ARN: ``events:PutEvents`` (``EventBridgeParameters``, Detail = Input);
- a topic ARN: ``sns:Publish`` with ``Message`` = Input;
- ``arn:aws:scheduler:::aws-sdk:<service>:<apiAction>`` (a universal target):
  that API call, its parameters the JSON Input.

A failure (the role cannot be assumed, the call is denied or fails) is logged
with its error code and the schedule fires again at its next time; it is not
retried (AWS retries up to ``RetryPolicy.MaximumRetryAttempts`` times, then
sends the event to ``DeadLetterConfig``; neither is emulated).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SCHEDULER_SERVICE = "scheduler.amazonaws.com"
LOCAL_RATE_VARIABLE = "LOCAL_SCHEDULE_SECONDS"
REFRESH_SECONDS = 1.0  # how often the schedules are read back from the emulator
UNIVERSAL_PREFIX = "arn:aws:scheduler:::aws-sdk:"
_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleSettingsError(ValueError):
    """``LOCAL_SCHEDULE_SECONDS`` is not a positive number of seconds."""


def local_rate(environ: dict[str, str] | os._Environ = os.environ) -> float | None:
    """``LOCAL_SCHEDULE_SECONDS``: fire recurring schedules every so many seconds instead of their rate."""
    raw = (environ.get(LOCAL_RATE_VARIABLE) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:
        raise ScheduleSettingsError(f"{LOCAL_RATE_VARIABLE}={raw!r} is not a number of seconds in (0, 86400]")
    return value


def rate_seconds(expression: str) -> int | None:
    """The period of a ``rate(...)`` expression in seconds, or None for any other expression."""
    match = _RATE.fullmatch(expression.strip())
    if not match:
        return None
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    return value * _UNIT_SECONDS[unit] if value > 0 else None


def _cron_field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """The values one cron field allows (``*``, ``?``, lists, ranges, ``/`` steps, names); None if invalid."""

    def value(word: str) -> int:
        return names[word.upper()] if names and word.upper() in names else int(word)

    allowed: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = value(first), value(last)
        else:
            start = value(base)
            end = high if step_text else start
        if not (low <= start <= end <= high) or step <= 0:
            return None
        allowed.update(range(start, end + 1, step))
    return allowed


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("", "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_DAYS = {d: i for i, d in enumerate(("", "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


def cron_matcher(expression: str) -> Callable[[datetime.datetime], bool] | None:
    """A test for UTC minutes matching ``cron(min hour dom month dow year)``; None when unsupported."""
    match = re.fullmatch(r"cron\((.*)\)", expression.strip())
    if not match:
        return None
    fields = match.group(1).split()
    if len(fields) != 6 or any(c in match.group(1) for c in "LW#"):
        return None
    try:
        minutes = _cron_field(fields[0], 0, 59)
        hours = _cron_field(fields[1], 0, 23)
        days = _cron_field(fields[2], 1, 31)
        months = _cron_field(fields[3], 1, 12, _MONTHS)
        weekdays = _cron_field(fields[4], 1, 7, _DAYS)  # 1 = Sunday, as EventBridge counts
        years = _cron_field(fields[5], 1970, 2199)
    except ValueError:
        return None
    if None in (minutes, hours, days, months, weekdays, years):
        return None

    def matches(when: datetime.datetime) -> bool:
        weekday = when.isoweekday() % 7 + 1  # one of day-of-month and day-of-week is "?"
        return (
            when.minute in minutes
            and when.hour in hours
            and when.day in days
            and weekday in weekdays
            and when.month in months
            and when.year in years
        )

    return matches


def _at_time(expression: str) -> datetime.datetime | None:
    match = re.fullmatch(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)", expression.strip())
    if not match:
        return None
    return datetime.datetime.fromisoformat(match.group(1)).replace(tzinfo=datetime.UTC)


def _as_time(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromtimestamp(float(value), datetime.UTC)


@dataclass
class _Timer:
    """When one schedule fires next."""

    expression: str
    next_at: datetime.datetime | None
    period: float | None = None  # seconds, for rate() and the local rate
    cron: Callable[[datetime.datetime], bool] | None = None
    fired_once: bool = False


def context_input(text: str, schedule_arn: str, scheduled: datetime.datetime, execution_id: str) -> str:
    """The target's Input with EventBridge Scheduler's context attributes filled in."""
    values = {
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.scheduled-time>": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "<aws.scheduler.execution-id>": execution_id,
        "<aws.scheduler.attempt-number>": "1",
    }
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def target_call(target: dict[str, Any], payload: str, endpoint: str) -> tuple[str, str, dict[str, Any]]:
    """(service, boto3 method, parameters) of the API call a schedule's target makes."""
    arn = target["Arn"]
    if arn.startswith(UNIVERSAL_PREFIX):
        from botocore import xform_name

        service, _, action = arn.removeprefix(UNIVERSAL_PREFIX).partition(":")
        return service, xform_name(action), json.loads(payload) if payload.strip() else {}
    parts = arn.split(":", 5)
    service, account, resource = parts[2], parts[4], parts[5]
    if service == "states":
        return "stepfunctions", "start_execution", {"stateMachineArn": arn, "input": payload}
    if service == "sqs":
        params = {"QueueUrl": f"{endpoint}/{account}/{resource}", "MessageBody": payload}
        group = (target.get("SqsParameters") or {}).get("MessageGroupId")
        return "sqs", "send_message", {**params, **({"MessageGroupId": group} if group else {})}
    if service == "lambda":
        return (
            "lambda",
            "invoke",
            {"FunctionName": arn, "InvocationType": "Event", "Payload": payload.encode()},
        )
    if service == "events":
        extra = target.get("EventBridgeParameters") or {}
        entry = {
            "EventBusName": arn,
            "Source": extra.get("Source", "aws.scheduler"),
            "DetailType": extra.get("DetailType", "Scheduled Event"),
            "Detail": payload,
        }
        return "events", "put_events", {"Entries": [entry]}
    if service == "sns":
        return "sns", "publish", {"TopicArn": arn, "Message": payload}
    raise ValueError(f"target {arn} is not supported by the local scheduler")


@dataclass
class Scheduler:
    """Fires the emulator's schedules from a thread of the stack (``start`` / ``stop``)."""

    schedules: Any  # a scheduler client acting as the administrator
    endpoint: str
    role_client: Callable[[str, str, str], Any]  # (service, role ARN, session name) -> boto3 client
    local_rate: float | None = None
    refresh: float = REFRESH_SECONDS
    now: Callable[[], datetime.datetime] = field(default=lambda: datetime.datetime.now(datetime.UTC))
    fired: list[dict[str, Any]] = field(default_factory=list)  # each firing's outcome, for tests and logs
    _timers: dict[str, _Timer] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def describe(self) -> str:
        """The banner's line: what fires, how often."""
        listed = self._list()
        if not listed:
            return f"none yet (ENABLED schedules fire here; {LOCAL_RATE_VARIABLE}=N fires them every N s)"
        # A ListSchedules summary holds no expression (ScheduleSummary): GetSchedule has it.
        found = [self.schedules.get_schedule(Name=s["Name"], GroupName=s.get("GroupName")) for s in listed]
        names = ", ".join(f"{s['Name']} {s['ScheduleExpression']} ({s['State'].lower()})" for s in found)
        how = (
            f"fired every {self.local_rate:g} s ({LOCAL_RATE_VARIABLE})"
            if self.local_rate
            else f"fired at their own rate ({LOCAL_RATE_VARIABLE}=N: every N s)"
        )
        return f"{names}; {how}"

    def _list(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.schedules.get_paginator("list_schedules").paginate():
            found.extend(page.get("Schedules", []))
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the emulator is going away, or answered oddly: try again later
                log.exception("reading the schedules failed")
            self._stop.wait(self.refresh)

    def tick(self) -> None:
        """Read the schedules back and fire each one that is due."""
        now = self.now()
        seen = set()
        for summary in self._list():
            schedule = self.schedules.get_schedule(Name=summary["Name"], GroupName=summary.get("GroupName"))
            arn = schedule["Arn"]
            seen.add(arn)
            if schedule.get("State") != "ENABLED":
                self._timers.pop(arn, None)
                continue
            timer = self._timers.get(arn)
            if timer is None or timer.expression != schedule["ScheduleExpression"]:
                timer = self._timer(schedule, now)
                if timer is None:
                    continue
                self._timers[arn] = timer
            if timer.next_at is None or now < timer.next_at:
                continue
            scheduled, timer.next_at = timer.next_at, self._after(timer, timer.next_at, now)
            start, end = _as_time(schedule.get("StartDate")), _as_time(schedule.get("EndDate"))
            if (start and scheduled < start) or (end and scheduled > end):
                continue
            threading.Thread(
                target=self.fire, args=(schedule, scheduled), name=f"fire-{schedule['Name']}"
            ).start()
        for arn in set(self._timers) - seen:
            del self._timers[arn]

    def _timer(self, schedule: dict[str, Any], now: datetime.datetime) -> _Timer | None:
        expression = schedule["ScheduleExpression"]
        at = _at_time(expression)
        if at is not None:
            return _Timer(expression, at)
        period = rate_seconds(expression)
        cron = cron_matcher(expression) if period is None else None
        if period is None and cron is None:
            log.warning(
                "schedule %s: %s is not supported locally; it never fires", schedule["Name"], expression
            )
            self._timers[schedule["Arn"]] = _Timer(expression, None)
            return None
        if self.local_rate:
            period, cron = self.local_rate, None
        timer = _Timer(expression, None, period, cron)
        timer.next_at = self._after(timer, now, now)
        return timer

    @staticmethod
    def _after(timer: _Timer, last: datetime.datetime, now: datetime.datetime) -> datetime.datetime | None:
        if timer.period:
            step = datetime.timedelta(seconds=timer.period)
            following = last + step
            while following <= now - step:  # after a stall, fire once, not once per missed period
                following += step
            return following
        if timer.cron:
            minute = max(last, now).replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
            for _ in range(60 * 24 * 366):
                if timer.cron(minute):
                    return minute
                minute += datetime.timedelta(minutes=1)
        return None  # at(): once

    def fire(self, schedule: dict[str, Any], scheduled: datetime.datetime) -> dict[str, Any]:
        """One invocation of the schedule's target, with its role; the outcome, also logged."""
        target = schedule["Target"]
        execution_id = uuid.uuid4().hex[:16]
        payload = context_input(target.get("Input") or "{}", schedule["Arn"], scheduled, execution_id)
        outcome: dict[str, Any] = {"schedule": schedule["Name"], "target": target["Arn"], "ok": False}
        try:
            service, method, params = target_call(target, payload, self.endpoint)
            outcome["call"] = f"{service}.{method}"
            client = self.role_client(service, target["RoleArn"], f"scheduler-{execution_id}")
            result = getattr(client, method)(**params)
            outcome.update(ok=True, result={k: v for k, v in result.items() if k != "ResponseMetadata"})
            log.info("schedule %s fired: %s on %s", schedule["Name"], outcome["call"], target["Arn"])
        except Exception as exc:  # logged, not fatal: the next firing is unaffected
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            outcome.update(error=code, message=str(exc))
            log.error("schedule %s failed to invoke %s: %s: %s", schedule["Name"], target["Arn"], code, exc)
        with contextlib.suppress(Exception):
            self.fired.append(outcome)
        return outcome
