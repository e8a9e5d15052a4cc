"""The emulator launcher starts on loopback and leaves nothing behind."""

from __future__ import annotations

import json
import os

import boto3
import pytest

from local.emulator import port_open, running

pytestmark = pytest.mark.slow


def test_emulator_serves_s3_on_loopback_and_stops_cleanly():
    with running() as emu:
        s3 = boto3.client("s3", endpoint_url=emu.endpoint)
        s3.create_bucket(Bucket="probe")
        s3.put_object(Bucket="probe", Key="a b+c.txt", Body=b"hello")
        assert s3.get_object(Bucket="probe", Key="a b+c.txt")["Body"].read() == b"hello"
        pid, port = emu.process.pid, emu.port
    assert not port_open(port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_emulator_answers_sqs_attributes_as_aws_does():
    """local/moto_server.py: compact RedrivePolicy, Policy kept, RedriveAllowPolicy stored."""
    with running() as emu:
        sqs = boto3.client(
            "sqs",
            endpoint_url=emu.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_arn = dlq_arn.replace(":dlq", ":q")
        allow = json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": [queue_arn]}, separators=(",", ":")
        )
        sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"RedriveAllowPolicy": allow})
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}, separators=(",", ":"))
        policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": queue_arn}
                ],
            }
        )
        url = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": redrive, "Policy": policy})[
            "QueueUrl"
        ]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "60"})

        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["RedrivePolicy"] == redrive  # as sent: no spaces
        # Not dropped by the SetQueueAttributes call that did not repeat it:
        assert json.loads(attrs["Policy"]) == json.loads(policy)
        assert attrs["VisibilityTimeout"] == "60"
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
        assert dlq["RedriveAllowPolicy"] == allow
        named = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["RedriveAllowPolicy"])[
            "Attributes"
        ]
        assert named == {"RedriveAllowPolicy": allow}
