"""The emulator launcher starts on loopback and leaves nothing behind."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from urllib.parse import unquote_plus

import pytest

from local.emulator import port_open, running

pytestmark = pytest.mark.slow


def test_emulator_serves_s3_on_loopback_and_stops_cleanly():
    with running() as emu:
        s3 = emu.client("s3")
        s3.create_bucket(Bucket="probe")
        s3.put_object(Bucket="probe", Key="a b+c.txt", Body=b"hello")
        assert s3.get_object(Bucket="probe", Key="a b+c.txt")["Body"].read() == b"hello"
        pid, port = emu.process.pid, emu.port
    assert not port_open(port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_one_emulator_serves_every_service_and_delivers_each_event_with_its_own_values(tmp_path):
    """local/moto_server.py keeps the backend it finds per host and each JSONPath it parses: every
    service still gets its own requests, and each event its own values. EventBridge: a target with
    an input transformer gets the template filled from that event (InputPathsMap, JSONPath); one
    without gets the whole event (EventBridge user guide, "Amazon EventBridge input transformation").
    Its log keeps the refused requests (4xx), not the successful ones."""
    log = tmp_path / "moto.log"
    with running(log_path=log) as emu:
        s3, dynamodb, sqs, events = (emu.client(name) for name in ("s3", "dynamodb", "sqs", "events"))
        s3.create_bucket(Bucket="probe")
        dynamodb.create_table(
            TableName="probe",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        queues = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("shaped", "whole")}
        arns = {
            name: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            for name, url in queues.items()
        }
        events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["probe"]}))
        transformer = {
            "InputPathsMap": {"id": "$.detail.id", "kind": "$.detail-type"},
            "InputTemplate": '{"image": "<id>", "kind": "<kind>"}',
        }
        events.put_targets(
            Rule="probe",
            Targets=[
                {"Id": "shaped", "Arn": arns["shaped"], "InputTransformer": transformer},
                {"Id": "whole", "Arn": arns["whole"]},
            ],
        )
        for i in range(3):
            s3.put_object(Bucket="probe", Key=f"k{i}", Body=f"body {i}".encode())
            dynamodb.put_item(TableName="probe", Item={"id": {"S": f"k{i}"}, "n": {"N": str(i)}})
            detail = json.dumps({"id": f"img-{i}"})
            events.put_events(Entries=[{"Source": "probe", "DetailType": f"Kind {i}", "Detail": detail}])
        for i in range(3):
            assert s3.get_object(Bucket="probe", Key=f"k{i}")["Body"].read() == f"body {i}".encode()
            item = dynamodb.get_item(TableName="probe", Key={"id": {"S": f"k{i}"}})["Item"]
            assert item["n"] == {"N": str(i)}
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket="probe", Key="missing")
        shaped, whole = (
            [
                json.loads(m["Body"])
                for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            ]
            for url in queues.values()
        )
    assert sorted(shaped, key=lambda b: b["image"]) == [
        {"image": f"img-{i}", "kind": f"Kind {i}"} for i in range(3)
    ]
    assert sorted((b["detail"]["id"], b["detail-type"], b["source"]) for b in whole) == [
        (f"img-{i}", f"Kind {i}", "probe") for i in range(3)
    ]
    lines = [line for line in log.read_text().splitlines() if '" 404 ' in line or '" 200 ' in line]
    assert [line for line in lines if "/probe/missing" in line and '" 404 ' in line]
    assert not [line for line in lines if '" 200 ' in line]


def test_the_emulator_keeps_a_connection_open_between_requests_until_the_client_closes_it():
    """HTTP/1.1 connections persist unless either side says ``Connection: close`` (RFC 9112,
    "Persistence"), as AWS's endpoints do and the SDKs expect (they reuse pooled connections):
    local/moto_server.py keeps each one open after its answer (werkzeug's server closed every one).
    A request with a body the service never reads leaves nothing behind for the next one."""
    with running() as emu:
        emu.client("s3").create_bucket(Bucket="probe")
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
        try:
            answers = []
            for body in (None, b"x" * 100_000, None):  # the 100 kB body: a GET's, which S3 ignores
                conn.request("GET", "/probe", body=body)
                answer = conn.getresponse()
                answers.append((answer.status, answer.getheader("Connection"), answer.read()[:5]))
                sock = conn.sock
                assert sock is not None, "the server closed the connection"
            assert {(status, connection) for status, connection, _ in answers} == {(200, None)}
            assert {start for _, _, start in answers} == {b"<?xml"}
            conn.request("GET", "/probe", headers={"Connection": "close"})
            last = conn.getresponse()
            assert (last.status, last.read()[:5]) == (200, b"<?xml")
            sock.settimeout(10)
            assert sock.recv(1) == b""  # closed by the server, as asked
        finally:
            conn.close()


def _read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One answer from ``sock`` as its first read returned it: (status line and headers, body)."""
    head, _, body = sock.recv(1 << 20).partition(b"\r\n\r\n")
    return head, body


def test_each_answer_arrives_whole_so_a_client_never_sees_headers_without_their_body():
    """local/moto_server.py sends each answer's headers and body in one write. Sent apart, the
    body followed in a second TCP segment on a kept connection, and the AWS provider's Go client
    at times closed the connection between the two; its SDK then sent the request again
    (aws/aws-sdk-go-v2#2737), and a create the emulator had already done failed as a duplicate
    (a cold `make run` ended on CloudFront's DistributionAlreadyExists). On loopback one write of
    less than a segment arrives in one piece, so the first read holds all of it."""
    with running() as emu:
        s3 = emu.client("s3")
        s3.create_bucket(Bucket="probe")
        s3.put_object(Bucket="probe", Key="k", Body=b"z" * 3000)
        signed = s3.generate_presigned_url("get_object", Params={"Bucket": "probe", "Key": "k"})
        with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
            for path in ("/probe", signed.split(str(emu.port), 1)[1], "/probe/missing") * 5:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{emu.port}\r\n\r\n".encode())
                head, body = _read_answer(sock)
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                assert length and len(body) == int(length.group(1)) > 0, (path, head)


def test_the_log_names_each_call_a_client_sent_again_and_who_sent_it(tmp_path):
    """Every AWS SDK numbers its attempts of a call (``amz-sdk-request: attempt=N; max=M``): a
    second attempt means the first failed or its answer was lost, and for a create that already
    happened it is what a duplicate error comes from. local/moto_server.py logs those, with the
    caller, and still no first attempt that succeeded."""
    log = tmp_path / "moto.log"
    with running(log_path=log) as emu:
        emu.client("s3").create_bucket(Bucket="probe")
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
        try:
            for attempt, agent in (
                (1, "Boto3/1.44.5 md/Botocore#1.44.18"),
                (
                    2,
                    "APN/1.0 HashiCorp/1.0 "
                    "Terraform/1.11.4 terraform-provider-aws/5.100.0 aws-sdk-go-v2/1.36.3",
                ),
            ):
                headers = {"amz-sdk-request": f"attempt={attempt}; max=25", "User-Agent": agent}
                conn.request("GET", f"/probe?list-type=2&try={attempt}", headers=headers)
                answer = conn.getresponse()
                assert (answer.status, answer.read()[:5]) == (200, b"<?xml")
        finally:
            conn.close()
    lines = log.read_text().splitlines()
    retried = [i for i, line in enumerate(lines) if "try=2" in line]
    assert len(retried) == 1 and '" 200 ' in lines[retried[0]]
    assert "attempt 2 of that call by terraform-provider-aws/5.100.0" in lines[retried[0] + 1]
    assert not [line for line in lines if "try=1" in line]


def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body():
    """An interim answer is not held back with the final one: a client that sends
    ``Expect: 100-continue`` waits for it before sending the body (RFC 9110, 10.1.1; botocore
    does so for S3 uploads)."""
    with running() as emu:
        emu.client("s3").create_bucket(Bucket="probe")
        with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
            headers = "Host: 127.0.0.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            sock.sendall(f"PUT /probe/e HTTP/1.1\r\n{headers}".encode())
            interim = b"HTTP/1.1 100 Continue\r\n\r\n"
            assert sock.recv(1 << 16).startswith(interim)  # http.server and werkzeug each send one
            sock.sendall(b"hello")
            answer = b""
            while b"HTTP/1.1 200 " not in answer:
                answer += sock.recv(1 << 16)
            assert answer.replace(interim, b"").startswith(b"HTTP/1.1 200 ")
        assert emu.client("s3").get_object(Bucket="probe", Key="e")["Body"].read() == b"hello"


def test_emulator_answers_sqs_attributes_as_aws_does():
    """local/moto_server.py: compact RedrivePolicy, Policy kept, RedriveAllowPolicy stored."""
    with running() as emu:
        sqs = emu.client("sqs")
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


def test_a_snapshot_brings_back_every_resource_working(tmp_path):
    """What `make run` saves after its apply comes back whole in the next emulator, and still works."""
    path = tmp_path / "emulator.snapshot"
    with running(snapshot=path) as emu:
        assert emu.restored() is False  # no file yet: an empty emulator
        sqs, s3, kms, ddb = (emu.client(s) for s in ("sqs", "s3", "kms", "dynamodb"))
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}, separators=(",", ":"))
        url = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.create_bucket(Bucket="uploads")
        s3.put_bucket_notification_configuration(
            Bucket="uploads",
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        sqs.purge_queue(QueueUrl=url)  # the s3:TestEvent
        key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        signature = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
        ddb.create_table(
            TableName="images",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        assert emu.save_snapshot() == path.stat().st_size > 0
    with running(snapshot=path) as emu:
        assert emu.restored() is True
        sqs, s3, kms, ddb = (emu.client(s) for s in ("sqs", "s3", "kms", "dynamodb"))
        url = sqs.get_queue_url(QueueName="q")["QueueUrl"]
        assert (
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["RedrivePolicy"]
            == redrive
        )
        s3.put_object(Bucket="uploads", Key="originals/a b.jpg", Body=b"x")  # the notification still fires
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
        key = json.loads(messages[0]["Body"])["Records"][0]["s3"]["object"]["key"]
        assert unquote_plus(key) == "originals/a b.jpg"
        verified = kms.verify(
            KeyId=key_id, Message=b"m", Signature=signature, SigningAlgorithm="RSASSA_PSS_SHA_256"
        )
        assert verified["SignatureValid"]  # the same private key
        assert ddb.describe_table(TableName="images")["Table"]["TableStatus"] == "ACTIVE"


def test_a_snapshot_from_another_moto_or_a_damaged_one_is_not_used(tmp_path, monkeypatch):
    from local import snapshot

    assert snapshot.loads(b"not a pickle") is False
    assert snapshot.load(tmp_path / "missing") is False
    blob = snapshot.dumps()
    monkeypatch.setattr(snapshot, "_fingerprint", lambda: {"format": snapshot.FORMAT, "moto": "0.0.0"})
    assert snapshot.loads(blob) is False


def _pair(state_dir, stack, serial: int = 7) -> None:
    """A Terraform state and the snapshot saved with it, as a successful run leaves them."""
    from local.run import SNAPSHOT, SNAPSHOT_META

    tf_state = state_dir / "terraform" / "terraform.tfstate"
    tf_state.parent.mkdir(exist_ok=True)
    tf_state.write_text(json.dumps({"lineage": "abc", "serial": serial}))
    (state_dir / SNAPSHOT).write_bytes(b"snapshot")
    (state_dir / SNAPSHOT_META).write_text(json.dumps(stack._state_identity()))


@pytest.mark.parametrize("change", ["none", "state applied since", "other port", "fresh"])
def test_make_run_uses_a_snapshot_only_with_the_state_it_was_saved_with(tmp_path, change):
    from local.run import SNAPSHOT, SNAPSHOT_META, Stack

    saved = Stack(moto_port=4566, api_port=8080, state_dir=tmp_path)
    _pair(tmp_path, saved)
    tf_state = tmp_path / "terraform" / "terraform.tfstate"
    now = saved
    if change == "state applied since":
        tf_state.write_text(json.dumps({"lineage": "abc", "serial": 8}))  # an apply that saved no snapshot
    elif change == "other port":
        now = Stack(moto_port=4567, api_port=8080, state_dir=tmp_path)  # the state's queue URLs name 4566
    elif change == "fresh":
        now = Stack(moto_port=4566, api_port=8080, state_dir=tmp_path, fresh=True)  # LOCAL_STACK_FRESH=1
    kept = now._prepare_state()
    assert kept is (change == "none")
    files = (tf_state, tmp_path / SNAPSHOT, tmp_path / SNAPSHOT_META)
    assert all(f.exists() for f in files) if kept else not any(f.exists() for f in files)


def test_snapshot_control_reports_a_failed_save_and_passes_other_requests_to_moto(tmp_path):
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from local.moto_server import SnapshotControl

    def moto(environ, start_response):
        return Response("moto")(environ, start_response)

    control = Client(SnapshotControl(moto, tmp_path / "missing-dir" / "emulator.snapshot", restored=False))
    assert control.get("/_local/snapshot").json == {"restored": False}
    failed = control.post("/_local/snapshot")
    assert failed.status_code == 500 and "FileNotFoundError" in failed.json["error"]
    assert control.get("/any/other/path").get_data(as_text=True) == "moto"
    assert Client(SnapshotControl(moto, None, restored=False)).get("/_local/snapshot").status_code == 404


@pytest.fixture
def sqs_model():
    """moto's SQS model with local/moto_sqs.py's patch, as the emulator runs it; put back afterwards
    (the in-process tests use moto unpatched)."""
    from moto.sqs import models

    from local import moto_sqs

    patched = {
        models.Message: ("visible", "delayed"),
        models.Queue: (
            "messages",
            "approximate_number_of_messages",
            "approximate_number_of_messages_delayed",
            "approximate_number_of_messages_not_visible",
        ),
        models.SQSBackend: ("is_message_valid_based_on_retention_period", "get_queue_attributes"),
    }
    saved = [(cls, name, cls.__dict__[name]) for cls, names in patched.items() for name in names]
    moto_sqs.patch()
    try:
        yield models.SQSBackend("us-east-1", "123456789012")
    finally:
        for cls, name, value in saved:
            setattr(cls, name, value)


COUNTS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def test_the_emulators_sqs_counts_messages_as_sqs_does(sqs_model):
    """SQS (GetQueueAttributes): ApproximateNumberOfMessages are available for retrieval, ...NotVisible
    in flight (received, not yet deleted, within their visibility timeout), ...Delayed not yet
    available because of a delay."""
    backend = sqs_model
    backend.create_queue("q", tags=None)
    for body in ("a", "b", "c"):
        backend.send_message("q", body)
    backend.send_message("q", "later", delay_seconds=60)
    (received,) = backend.receive_message("q", 1, 0, 60)
    assert backend.get_queue_attributes("q", COUNTS) == dict(zip(COUNTS, [2, 1, 1], strict=True))
    backend.change_message_visibility("q", received.receipt_handle, 0)  # back at once
    assert backend.get_queue_attributes("q", COUNTS) == dict(zip(COUNTS, [3, 0, 1], strict=True))
    assert backend.get_queue_attributes("q", ["DelaySeconds"]) == {"DelaySeconds": 0}
    assert backend.get_queue_attributes("q", ["All"])["ApproximateNumberOfMessages"] == 3
    from moto.sqs.exceptions import InvalidAttributeName

    with pytest.raises(InvalidAttributeName):
        backend.get_queue_attributes("q", ["NoSuchAttribute"])


def test_the_emulators_sqs_drops_a_message_past_the_queues_retention_period(sqs_model):
    """SQS: a message older than MessageRetentionPeriod is deleted and never received."""
    backend = sqs_model
    backend.create_queue("q", tags=None, MessageRetentionPeriod="60")
    old = backend.send_message("q", "old")
    old.sent_timestamp -= 61_000  # sent 61 s ago
    assert backend.receive_message("q", 10, 0, 30) == []
    backend.send_message("q", "new")
    assert [m.body for m in backend.receive_message("q", 10, 0, 30)] == ["new"]


def test_what_the_emulators_sqs_costs_does_not_grow_with_the_queue(sqs_model, monkeypatch):
    """A receive of 10 from a queue of 2,000 computes no queue-wide attributes (moto 5.2.5 computed
    them all three times per message returned: 0.85 s of CPU with 1,500 waiting), and a send or a
    GetQueueAttributes computes them at most once."""
    from moto.sqs import models

    backend = sqs_model
    backend.create_queue("q", tags=None)
    for i in range(2000):
        backend.send_message("q", f"m{i}")
    computed = []
    attributes = models.Queue.attributes

    def counted(self):
        computed.append(self.name)
        return attributes.fget(self)

    monkeypatch.setattr(models.Queue, "attributes", property(counted))
    assert len(backend.receive_message("q", 10, 0, 30)) == 10
    assert computed == []
    backend.send_message("q", "one more")
    assert backend.get_queue_attributes("q", COUNTS) == dict(zip(COUNTS, [1991, 10, 0], strict=True))
    assert computed == ["q", "q"]  # the send's ContentBasedDeduplication, then the three counts
