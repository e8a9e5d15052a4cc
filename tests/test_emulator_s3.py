"""The emulator's S3 answers as AWS's does (local/moto_s3.py): event records, removals, the metadata limit."""

from __future__ import annotations

import itertools
import json
import re
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.slow

BUCKET = "uploads-probe"


def aws_sequencer_order(a: str, b: str) -> int:
    """AWS: "first right pad the shorter value with zeros, and then do a lexicographical comparison"."""
    width = max(len(a), len(b))
    left, right = a.ljust(width, "0"), b.ljust(width, "0")
    return (left > right) - (left < right)


@pytest.fixture
def versioned_bucket_to_queue(emulator):
    """A versioned bucket whose ObjectCreated events go to a queue, as the Terraform wires it."""
    emulator.reset()
    s3, sqs = emulator.client("s3"), emulator.client("sqs")
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return s3, sqs, url


def _to_queue(arn: str) -> dict:
    return {"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]}


def _records(sqs, url: str, count: int, rounds: int = 10) -> list[dict]:
    """The S3 event records on the queue, until ``count`` (at most ``rounds`` long polls of 1 s)."""
    records: list[dict] = []
    for _ in range(rounds):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            records.extend(json.loads(message["Body"]).get("Records", []))  # not s3:TestEvent
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(records) >= count:
            break
    return records


def test_two_puts_of_one_key_give_events_with_their_version_ids_and_growing_sequencers(
    versioned_bucket_to_queue,
):
    """AWS sends versionId when versioning is on, and a sequencer that orders the events of one key."""
    s3, sqs, url = versioned_bucket_to_queue
    first = s3.put_object(Bucket=BUCKET, Key="photos/cat.jpg", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key="photos/cat.jpg", Body=b"two")["VersionId"]
    assert first != second

    records = _records(sqs, url, 2)
    assert len(records) == 2
    by_version = {r["s3"]["object"]["versionId"]: r["s3"]["object"]["sequencer"] for r in records}
    assert set(by_version) == {first, second}
    for sequencer in by_version.values():
        assert re.fullmatch(r"[0-9A-F]{16,18}", sequencer), sequencer  # AWS's shape: 0055AED6DCD90281E5
    assert aws_sequencer_order(by_version[first], by_version[second]) < 0  # the later put compares greater


def test_deletes_in_a_versioned_bucket_send_s3s_removal_events(versioned_bucket_to_queue):
    """AWS, "Supported event types": a DELETE without a version id creates a delete marker
    (s3:ObjectRemoved:DeleteMarkerCreated); a DELETE of a version by id removes it for good
    (s3:ObjectRemoved:Delete). moto 5.2.5 sends neither of these as S3 does."""
    s3, sqs, url = versioned_bucket_to_queue
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": events}]},
    )
    key = "photos/gone.jpg"
    first = s3.put_object(Bucket=BUCKET, Key=key, Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key=key, Body=b"two")["VersionId"]
    marker = s3.delete_object(Bucket=BUCKET, Key=key)
    assert marker["DeleteMarker"]
    s3.delete_object(Bucket=BUCKET, Key=key, VersionId=first)  # an older version, while others remain
    s3.delete_object(Bucket=BUCKET, Key=key, VersionId=second)
    s3.delete_object(Bucket=BUCKET, Key=key, VersionId=marker["VersionId"])  # the last one: moto sent its own

    records = _records(sqs, url, 6)
    removals = [(r["eventName"], r["s3"]["object"]) for r in records[2:]]
    assert [(name, obj["versionId"]) for name, obj in removals] == [
        ("ObjectRemoved:DeleteMarkerCreated", marker["VersionId"]),
        ("ObjectRemoved:Delete", first),
        ("ObjectRemoved:Delete", second),
        ("ObjectRemoved:Delete", marker["VersionId"]),
    ]
    for _, obj in removals:
        assert set(obj) == {"key", "versionId", "sequencer"}
    sequencers = [r["s3"]["object"]["sequencer"] for r in records]
    assert all(aws_sequencer_order(a, b) < 0 for a, b in itertools.pairwise(sequencers))
    assert s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions") is None


def test_an_unversioned_bucket_sends_no_version_id_but_a_sequencer(versioned_bucket_to_queue):
    s3, sqs, url = versioned_bucket_to_queue
    s3.create_bucket(Bucket="plain")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="plain",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    s3.put_object(Bucket="plain", Key="a.jpg", Body=b"x")
    (record,) = _records(sqs, url, 1)
    assert "versionId" not in record["s3"]["object"]
    assert re.fullmatch(r"[0-9A-F]{16,18}", record["s3"]["object"]["sequencer"])


def _metadata_of(size: int) -> dict[str, str]:
    """User-defined metadata of exactly ``size`` bytes as AWS counts them (keys plus values)."""
    return {"source-key": "k" * (size - len("source-key"))}


def _assert_metadata_too_large(call) -> None:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    assert error["Error"]["Code"] == "MetadataTooLarge"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_put_object_refuses_user_metadata_over_2_kb_and_stores_nothing(versioned_bucket_to_queue):
    """AWS: "the user-defined metadata is limited to 2 KB in size" (sum of the bytes of keys and values)."""
    s3, sqs, url = versioned_bucket_to_queue
    s3.put_object(Bucket=BUCKET, Key="at-limit.jpg", Body=b"x", Metadata=_metadata_of(2048))
    assert s3.head_object(Bucket=BUCKET, Key="at-limit.jpg")["Metadata"] == _metadata_of(2048)

    _assert_metadata_too_large(
        lambda: s3.put_object(Bucket=BUCKET, Key="over.jpg", Body=b"x", Metadata=_metadata_of(2049))
    )
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=BUCKET, Key="over.jpg")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    records = _records(sqs, url, 1) + _records(sqs, url, 1, rounds=2)
    assert [r["s3"]["object"]["key"] for r in records] == ["at-limit.jpg"]  # no event for the refused put


def test_a_long_non_ascii_key_percent_encoded_into_metadata_passes_the_limit(versioned_bucket_to_queue):
    """A 400-character key of 'ü' is 2400 bytes once percent-encoded: over S3's 2 KB, refused."""
    s3, _, _ = versioned_bucket_to_queue
    metadata = {"source-key": quote("photos/" + "ü" * 400 + ".jpg", safe="/")}
    _assert_metadata_too_large(
        lambda: s3.put_object(Bucket=BUCKET, Key="r.webp", Body=b"x", Metadata=metadata)
    )


def test_copy_with_replaced_metadata_and_multipart_uploads_honour_the_limit(versioned_bucket_to_queue):
    s3, _, _ = versioned_bucket_to_queue
    s3.put_object(Bucket=BUCKET, Key="src.jpg", Body=b"x", Metadata={"a": "b"})
    source = {"Bucket": BUCKET, "Key": "src.jpg"}
    _assert_metadata_too_large(
        lambda: s3.copy_object(
            Bucket=BUCKET,
            Key="dst.jpg",
            CopySource=source,
            Metadata=_metadata_of(2049),
            MetadataDirective="REPLACE",
        )
    )
    s3.copy_object(Bucket=BUCKET, Key="dst.jpg", CopySource=source)  # COPY keeps the source's metadata
    assert s3.head_object(Bucket=BUCKET, Key="dst.jpg")["Metadata"] == {"a": "b"}
    _assert_metadata_too_large(
        lambda: s3.create_multipart_upload(Bucket=BUCKET, Key="big.jpg", Metadata=_metadata_of(2049))
    )


def test_a_browser_post_upload_honours_the_limit(versioned_bucket_to_queue, emulator):
    """The presigned POST route carries metadata as form fields; S3 counts them the same way."""
    import requests

    s3, _, _ = versioned_bucket_to_queue
    fields = {f"x-amz-meta-{k}": v for k, v in _metadata_of(2049).items()}
    post = s3.generate_presigned_post(
        BUCKET, "form.jpg", Fields=fields, Conditions=[{k: v} for k, v in fields.items()]
    )
    response = requests.post(post["url"], data=post["fields"], files={"file": ("form.jpg", b"x")}, timeout=30)
    assert response.status_code == 400 and "<Code>MetadataTooLarge</Code>" in response.text
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="form.jpg")
