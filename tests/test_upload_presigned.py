"""The upload API against the emulator over real HTTP: presigned POST and rendition downloads.

The moto server runs on loopback in its own process group (``local.emulator``);
the handler reaches it through ``AWS_ENDPOINT_URL`` like the local stack does,
and the client side uses ``requests`` exactly as a browser or curl would.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json

import boto3
import pytest
import requests
from conftest import load_event
from PIL import Image

from local.emulator import running

pytestmark = pytest.mark.slow

UPLOADS = "imgpipe-http-uploads"
RESIZED = "imgpipe-http-resized"
TABLE = "imgpipe-http-images"


@pytest.fixture(scope="module")
def emulator():
    with running() as emu:
        yield emu


@pytest.fixture
def api(emulator, aws_credentials, monkeypatch):
    from imgpipe import aws

    emulator.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
    monkeypatch.setenv("UPLOADS_BUCKET", UPLOADS)
    monkeypatch.setenv("RESIZED_BUCKET", RESIZED)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    aws.reset()
    s3 = boto3.client("s3")
    for bucket in (UPLOADS, RESIZED):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    import upload_handler

    upload_handler.settings.cache_clear()
    yield upload_handler
    upload_handler.settings.cache_clear()
    aws.reset()


@pytest.fixture
def call(api, lambda_context):
    def invoke(event: dict) -> tuple[int, dict]:
        response = api.handler(event, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return invoke


def jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (20, 90, 200)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def post_uploads(doc: dict) -> dict:
    event = load_event("http_post_uploads.json")
    event["body"] = json.dumps(doc)
    return event


def get_image(image_id: str) -> dict:
    event = load_event("http_get_image.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/images/{image_id}"
    event["pathParameters"] = {"id": image_id}
    return event


def test_presigned_post_form_uploads_the_original_with_type_and_metadata(call):
    data = jpeg()
    status, created = call(
        post_uploads({"filename": "../My Holiday.jpg", "content_type": "image/jpeg", "size": len(data)})
    )
    assert status == 201
    upload = created["upload"]
    assert upload["url"].startswith("http://127.0.0.1:")

    # What `curl -F key=... -F ... -F file=@photo.jpg $url` sends: the fields, then the file last.
    response = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("photo.jpg", data, "image/jpeg")}, timeout=30
    )
    assert response.status_code == 204, response.text

    key = f"originals/{created['id']}/My Holiday.jpg"
    obj = boto3.client("s3").get_object(Bucket=UPLOADS, Key=key)
    assert obj["Body"].read() == data
    assert obj["ContentType"] == "image/jpeg"
    assert obj["Metadata"] == {"image-id": created["id"], "filename": "My%20Holiday.jpg"}

    status, view = call(get_image(created["id"]))
    assert status == 200
    assert view["status"] == "awaiting_upload"
    assert view["original"]["key"] == key


def test_presigned_post_policy_is_signed_with_the_functions_credentials(call, monkeypatch, api):
    """S3 enforces the policy only when its signature verifies: recompute SigV4 for it.

    moto's S3 server does not evaluate POST policies (no signature, condition,
    size-range or expiry check), so a too-large file is refused by real S3 only;
    what can be checked here is that the conditions are in the signed policy.
    """
    monkeypatch.setenv("MAX_PRESIGNED_BYTES", "1000")
    api.settings.cache_clear()
    status, created = call(post_uploads({"filename": "a.png", "content_type": "image/png", "size": 1000}))
    assert status == 201
    fields = created["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, 1000] in policy["conditions"]
    assert {"key": f"originals/{created['id']}/a.png"} in policy["conditions"]

    access_key, date, region, service, terminator = fields["x-amz-credential"].split("/")
    assert (access_key, region, service, terminator) == ("testing", "us-east-1", "s3", "aws4_request")
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    key = b"AWS4testing"
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, fields["policy"].encode(), hashlib.sha256).hexdigest()
    assert fields["x-amz-signature"] == expected
    expires = dt.datetime.fromisoformat(created["upload"]["expires_at"].replace("Z", "+00:00"))
    signed = dt.datetime.strptime(fields["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert expires - signed == dt.timedelta(seconds=900)


def test_get_done_image_gives_rendition_urls_that_download_over_http(call, emulator):
    """The resize outcome as the resize Lambda records it; the urls are fetched over HTTP."""
    from imgpipe import aws, records

    data = jpeg((800, 600))
    _, created = call(post_uploads({"filename": "a.jpg", "content_type": "image/jpeg", "size": len(data)}))
    fields = created["upload"]["fields"]
    requests.post(
        created["upload"]["url"], data=fields, files={"file": ("a.jpg", data, "image/jpeg")}, timeout=30
    ).raise_for_status()

    image_id = created["id"]
    s3 = boto3.client("s3")
    renditions = []
    for fmt, ext, mime in (("webp", "webp", "image/webp"), ("jpeg", "jpg", "image/jpeg")):
        buf = io.BytesIO()
        Image.new("RGB", (160, 120), (20, 90, 200)).save(buf, fmt.upper())
        key = f"{image_id}/thumb.{ext}"
        s3.put_object(Bucket=RESIZED, Key=key, Body=buf.getvalue(), ContentType=mime)
        renditions.append(
            {"name": "thumb", "format": fmt, "key": key, "width": 160, "height": 120, "bytes": buf.tell()}
        )
    original = {
        "key": fields["key"],
        "size": len(data),
        "content_type": "image/jpeg",
        "filename": "a.jpg",
        "width": 800,
        "height": 600,
        "format": "jpeg",
    }
    records.mark_done(aws.table(TABLE), image_id, original, renditions)

    status, view = call(get_image(image_id))
    assert status == 200
    assert view["status"] == "done"
    assert view["original"] == original
    assert len(view["renditions"]) == 2
    for rendition in view["renditions"]:
        assert rendition["url"].startswith(f"{emulator.endpoint}/{RESIZED}/{image_id}/thumb.")
        fetched = requests.get(rendition["url"], timeout=30)
        assert fetched.status_code == 200
        assert len(fetched.content) == rendition["bytes"]
        with Image.open(io.BytesIO(fetched.content)) as im:
            assert im.format.lower() == rendition["format"]
            assert im.size == (160, 120)
