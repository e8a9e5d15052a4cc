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
import re
import uuid
from urllib.parse import quote_plus

import boto3
import pytest
import requests
from PIL import Image
from upload_api import get_image, post_uploads

from conftest import load_event, use_emulator
from imgpipe.renditions import default_renditions

pytestmark = pytest.mark.slow

UPLOADS = "imgpipe-http-uploads"
RESIZED = "imgpipe-http-resized"
TABLE = "imgpipe-http-images"


@pytest.fixture
def api(emulator, aws_credentials, monkeypatch):
    from imgpipe import aws

    use_emulator(emulator, monkeypatch, UPLOADS, RESIZED, TABLE)
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


def s3_notification(key: str, size: int, version_id: str | None) -> dict:
    """The SQS record carrying the S3 notification for a new object, as the resize Lambda gets it."""
    template = load_event("s3_put_sqs.json")["Records"][0]
    body = json.loads(template["body"])
    obj = body["Records"][0]["s3"]
    obj["bucket"] = {"name": UPLOADS, "arn": f"arn:aws:s3:::{UPLOADS}"}
    obj["object"] = {"key": quote_plus(key), "size": size, "sequencer": "0065F2A1B2C3D4E5F6"}
    if version_id:
        obj["object"]["versionId"] = version_id
    return {**template, "messageId": str(uuid.uuid4()), "body": json.dumps(body)}


def upload_and_resize(call, lambda_context, data: bytes, filename: str, content_type: str) -> str:
    """POST /uploads, post the form to S3, then run the resize Lambda on S3's notification."""
    import resize_handler

    status, created = call(
        post_uploads({"filename": filename, "content_type": content_type, "size": len(data)})
    )
    assert status == 201
    upload = created["upload"]
    requests.post(
        upload["url"], data=upload["fields"], files={"file": (filename, data, content_type)}, timeout=30
    ).raise_for_status()
    key = upload["fields"]["key"]
    head = boto3.client("s3").head_object(Bucket=UPLOADS, Key=key)
    resize_handler.reset()
    try:
        outcome = resize_handler.handler(
            {"Records": [s3_notification(key, len(data), head.get("VersionId"))]}, lambda_context
        )
    finally:
        resize_handler.reset()
    assert outcome == {"batchItemFailures": []}
    return created["id"]


def test_get_after_the_resize_handler_ran_gives_rendition_urls_that_download(call, emulator, lambda_context):
    data = jpeg((1200, 900))
    image_id = upload_and_resize(call, lambda_context, data, "Big Photo.jpg", "image/jpeg")

    status, view = call(get_image(image_id))
    assert status == 200
    assert view["status"] == "done"
    assert "error" not in view
    assert view["original"] == {
        "key": f"originals/{image_id}/Big Photo.jpg",
        "size": len(data),
        "content_type": "image/jpeg",
        "filename": "Big Photo.jpg",
        "width": 1200,
        "height": 900,
        "format": "jpeg",
    }
    expected = {(r.name, fmt) for r in default_renditions() for fmt in r.formats}
    assert {(r["name"], r["format"]) for r in view["renditions"]} == expected
    for rendition in view["renditions"]:
        assert set(rendition) == {"name", "format", "width", "height", "bytes", "url"}
        # {id}/{tag}/{name}.{ext}: the tag names the source version (docs/ordering.md)
        path = rendition["url"].split("?", 1)[0]
        prefix = re.escape(f"{emulator.endpoint}/{RESIZED}/{image_id}/")
        assert re.fullmatch(prefix + rf"[A-Za-z0-9_-]{{12}}/{rendition['name']}\.\w+", path), path
        fetched = requests.get(rendition["url"], timeout=30)
        assert fetched.status_code == 200
        assert len(fetched.content) == rendition["bytes"]
        with Image.open(io.BytesIO(fetched.content)) as im:
            assert im.format.lower() == rendition["format"]
            assert im.size == (rendition["width"], rendition["height"])
            assert max(im.size) <= 1600
    thumb = next(r for r in view["renditions"] if r["name"] == "thumb")
    assert (thumb["width"], thumb["height"]) == (200, 200)


def test_with_a_cdn_rendition_urls_are_the_cdn_base_url_and_the_key(call, api, lambda_context, monkeypatch):
    """CDN_BASE_URL (Terraform sets it from the distribution, docs/cdn.md): each URL is
    {CDN_BASE_URL}/{key}, permanent and unsigned; CloudFront reads that key from the bucket."""
    base = "https://d111111abcdef8.cloudfront.net"
    monkeypatch.setenv("CDN_BASE_URL", base + "/")
    api.settings.cache_clear()
    image_id = upload_and_resize(call, lambda_context, jpeg((900, 600)), "cdn.jpg", "image/jpeg")

    status, view = call(get_image(image_id))
    assert status == 200 and view["renditions"]
    s3 = boto3.client("s3")
    for rendition in view["renditions"]:
        url = rendition["url"]
        assert re.fullmatch(
            re.escape(f"{base}/{image_id}/") + rf"[A-Za-z0-9_-]{{12}}/{rendition['name']}\.\w+", url
        ), url
        assert "?" not in url  # no signature, no expiry: the URL never goes stale
        stored = s3.get_object(Bucket=RESIZED, Key=url.removeprefix(base + "/"))
        assert stored["ContentLength"] == rendition["bytes"]
        assert stored["CacheControl"] == "public, max-age=31536000, immutable"


def test_get_after_the_resize_handler_refused_the_upload_shows_the_error(call, lambda_context):
    """A presigned upload is checked only by S3's policy: bytes that are no image fail in the resizer."""
    image_id = upload_and_resize(call, lambda_context, b"%PDF-1.7 not a picture", "doc.png", "image/png")

    status, view = call(get_image(image_id))
    assert status == 200
    assert view["status"] == "failed"
    assert view["error"]["code"] == "not_an_image"
    assert view["error"]["message"]
    assert view["renditions"] == []
    assert view["original"]["filename"] == "doc.png"
