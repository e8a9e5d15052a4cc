"""EventBridge Scheduler in the local stack: moto stores schedules, local/schedules.py fires them.

AWS facts (EventBridge Scheduler user guide and API reference): a schedule
fires only when ENABLED; ``rate(value unit)`` takes minutes, hours or days;
``cron`` has six fields (minutes hours day-of-month month day-of-week year, one
of the day fields ``?``); a templated SQS target is ``sqs:SendMessage`` with the
target's Input as the body; Scheduler calls the target with the schedule's
``RoleArn``, which must trust ``scheduler.amazonaws.com``; ``<aws.scheduler.*>``
context attributes in Input are replaced at each invocation.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid

import pytest

from local import emulator as emu
from local.schedules import (
    Scheduler,
    ScheduleSettingsError,
    cron_matcher,
    local_rate,
    rate_seconds,
    target_call,
)

UTC = datetime.UTC


def trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


@pytest.fixture(scope="module")
def emulator():
    with emu.running(strict=True) as running:
        yield running


@pytest.fixture
def queue(emulator):
    """A throwaway queue, and a role Scheduler may assume that may send to it (only)."""
    sqs, iam = emulator.client("sqs"), emulator.client("iam")
    suffix = uuid.uuid4().hex[:8]
    url = sqs.create_queue(QueueName=f"target-{suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    role = iam.create_role(
        RoleName=f"schedule-{suffix}", AssumeRolePolicyDocument=trust("scheduler.amazonaws.com")
    )
    grant = {"Sid": "Send", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}
    iam.put_role_policy(
        RoleName=role["Role"]["RoleName"],
        PolicyName="send",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [grant]}),
    )
    return {"url": url, "arn": arn, "role": role["Role"]["Arn"], "suffix": suffix}


def scheduler(emulator, **kwargs) -> Scheduler:
    def role_client(service: str, role_arn: str, session: str):
        return emu.role_client(
            emulator.endpoint, service, role_arn, session, assumed_by="scheduler.amazonaws.com"
        )

    return Scheduler(emulator.client("scheduler"), emulator.endpoint, role_client, **kwargs)


def create_schedule(
    emulator, name: str, target: dict, expression: str = "rate(1 minute)", state: str = "ENABLED"
):
    emulator.client("scheduler").create_schedule(
        Name=name,
        ScheduleExpression=expression,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        State=state,
    )


def received(emulator, url: str, wait: float = 10.0) -> list[dict]:
    sqs, found, deadline = emulator.client("sqs"), [], time.monotonic() + wait
    while time.monotonic() < deadline and not found:
        found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
    return found


def wait_fired(running: Scheduler, name: str, wait: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        outcomes = [o for o in running.fired if o["schedule"] == name]
        if outcomes:
            return outcomes
        time.sleep(0.1)
    return []


@pytest.mark.slow  # the emulator server (a child process on a port)
def test_an_enabled_schedule_sends_its_input_to_the_queue_as_its_role_with_context_attributes(
    emulator, queue
):
    name = f"tick-{queue['suffix']}"
    target = {
        "Arn": queue["arn"],
        "RoleArn": queue["role"],
        "Input": json.dumps(
            {"schedule": "<aws.scheduler.schedule-arn>", "at": "<aws.scheduler.scheduled-time>"}
        ),
    }
    create_schedule(emulator, name, target)
    running = scheduler(emulator, local_rate=0.5, refresh=0.2).start()
    try:
        messages = received(emulator, queue["url"])
    finally:
        running.stop()
    assert messages, running.fired
    body = json.loads(messages[0]["Body"])
    assert body["schedule"].endswith(f":schedule/default/{name}")
    assert datetime.datetime.strptime(body["at"], "%Y-%m-%dT%H:%M:%SZ")  # the scheduled time, in UTC
    # Sent by the schedule's role, assumed by scheduler.amazonaws.com, not by the administrator.
    role_name = queue["role"].rsplit("/", 1)[1]
    sends = [
        c
        for c in emulator.iam_calls()
        if c["action"] == "sqs:SendMessage" and f"assumed-role/{role_name}/" in c["principal"]
    ]
    assert sends and all(c["allowed"] for c in sends)


@pytest.mark.slow  # the emulator server (a child process on a port)
def test_a_disabled_schedule_never_fires_and_a_failing_one_is_logged_without_stopping_the_others(
    emulator, queue, caplog
):
    iam = emulator.client("iam")
    denied_role = iam.create_role(
        RoleName=f"no-grant-{queue['suffix']}", AssumeRolePolicyDocument=trust("scheduler.amazonaws.com")
    )["Role"]["Arn"]
    lambda_only = iam.create_role(
        RoleName=f"lambda-only-{queue['suffix']}", AssumeRolePolicyDocument=trust("lambda.amazonaws.com")
    )["Role"]["Arn"]
    base = {"Arn": queue["arn"], "Input": "{}"}
    create_schedule(emulator, f"off-{queue['suffix']}", {**base, "RoleArn": queue["role"]}, state="DISABLED")
    create_schedule(emulator, f"denied-{queue['suffix']}", {**base, "RoleArn": denied_role})
    create_schedule(emulator, f"untrusted-{queue['suffix']}", {**base, "RoleArn": lambda_only})
    create_schedule(emulator, f"ok-{queue['suffix']}", {**base, "RoleArn": queue["role"], "Input": '"ok"'})
    running = scheduler(emulator, local_rate=0.5, refresh=0.2).start()
    try:
        denied = wait_fired(running, f"denied-{queue['suffix']}")
        untrusted = wait_fired(running, f"untrusted-{queue['suffix']}")
        messages = received(emulator, queue["url"])
        time.sleep(1.0)
    finally:
        running.stop()
    assert denied and not denied[0]["ok"] and denied[0]["error"].startswith("AccessDenied")
    # A role that does not trust scheduler.amazonaws.com cannot be assumed by the scheduler.
    assert untrusted and not untrusted[0]["ok"] and "scheduler.amazonaws.com" in untrusted[0]["message"]
    assert messages and all(m["Body"] == '"ok"' for m in messages)
    assert not [o for o in running.fired if o["schedule"] == f"off-{queue['suffix']}"]
    assert any("failed to invoke" in r.getMessage() for r in caplog.records)


@pytest.mark.slow  # the emulator server (a child process on a port)
def test_rate_fires_one_period_after_it_is_first_seen_and_follows_an_edit(emulator, queue):
    # Without LOCAL_SCHEDULE_SECONDS a schedule keeps its own rate: driven here by a fake clock.
    clock = {"now": datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)}
    running = scheduler(emulator, now=lambda: clock["now"])
    name = f"hourly-{queue['suffix']}"
    create_schedule(
        emulator, name, {"Arn": queue["arn"], "RoleArn": queue["role"], "Input": '"hourly"'}, "rate(1 hour)"
    )
    running.tick()
    clock["now"] += datetime.timedelta(minutes=59)
    running.tick()
    assert not wait_fired(running, name, wait=0.5)
    clock["now"] += datetime.timedelta(minutes=1)
    running.tick()
    assert wait_fired(running, name)
    assert [m["Body"] for m in received(emulator, queue["url"])] == ['"hourly"']


@pytest.mark.slow  # the emulator server (a child process on a port)
def test_the_banner_line_names_each_schedule_its_expression_and_the_rate_in_force(emulator, queue):
    create_schedule(emulator, f"named-{queue['suffix']}", {"Arn": queue["arn"], "RoleArn": queue["role"]})
    line = scheduler(emulator, local_rate=10).describe()
    assert f"named-{queue['suffix']} rate(1 minute) (enabled)" in line
    assert "fired every 10 s (LOCAL_SCHEDULE_SECONDS)" in line
    assert "at their own rate" in scheduler(emulator).describe()


def test_rate_and_cron_expressions_as_eventbridge_scheduler_reads_them():
    assert rate_seconds("rate(15 minutes)") == 900
    assert rate_seconds("rate(1 hour)") == 3600 and rate_seconds("rate(2 days)") == 172800
    assert rate_seconds("rate(0 minutes)") is None and rate_seconds("cron(0 * * * ? *)") is None
    every_quarter = cron_matcher("cron(0/15 * * * ? *)")
    assert every_quarter(datetime.datetime(2026, 3, 2, 10, 45, tzinfo=UTC))
    assert not every_quarter(datetime.datetime(2026, 3, 2, 10, 46, tzinfo=UTC))
    weekday_mornings = cron_matcher("cron(30 8 ? * MON-FRI *)")
    assert weekday_mornings(datetime.datetime(2026, 3, 2, 8, 30, tzinfo=UTC))  # a Monday
    assert not weekday_mornings(datetime.datetime(2026, 3, 1, 8, 30, tzinfo=UTC))  # a Sunday
    assert cron_matcher("cron(0 12 L * ? *)") is None  # L, W and # are not supported locally


def test_target_calls_follow_the_templated_and_universal_target_shapes():
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:imgpipe-local-reconcile"
    assert target_call({"Arn": machine}, '{"next": null}', "http://e") == (
        "stepfunctions",
        "start_execution",
        {"stateMachineArn": machine, "input": '{"next": null}'},
    )
    universal = {"Arn": "arn:aws:scheduler:::aws-sdk:sqs:sendMessage"}
    assert target_call(universal, '{"QueueUrl": "u", "MessageBody": "b"}', "http://e") == (
        "sqs",
        "send_message",
        {"QueueUrl": "u", "MessageBody": "b"},
    )


def test_the_local_rate_is_a_positive_number_of_seconds():
    assert local_rate({}) is None
    assert local_rate({"LOCAL_SCHEDULE_SECONDS": "10"}) == 10.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ScheduleSettingsError, match="LOCAL_SCHEDULE_SECONDS"):
            local_rate({"LOCAL_SCHEDULE_SECONDS": bad})
