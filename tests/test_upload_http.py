"""The upload API over HTTP, as a client sees it: the local API Gateway front, the
handler, and S3/DynamoDB in the moto server.

The front turns HTTP into payload 2.0 events the way API Gateway does (binary
bodies base64-encoded, lowercased headers), so this checks the handler against
the events it really gets, with the bodies ``curl`` and browsers really send.
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
import requests
from PIL import Image

from conftest import LambdaContext, use_emulator
from local.front import Api, Front, Route
from local.functions import InvokeResult

pytestmark = pytest.mark.slow

UPLOADS = "imgpipe-front-uploads"
RESIZED = "imgpipe-front-resized"
TABLE = "imgpipe-front-images"


@pytest.fixture
def base_url(emulator, aws_credentials, monkeypatch):
    from imgpipe import aws

    monkeypatch.setenv("MAX_UPLOAD_BYTES", "100000")
    use_emulator(emulator, monkeypatch, UPLOADS, RESIZED, TABLE)
    import upload_handler

    upload_handler.settings.cache_clear()

    def invoke(function: str, event: dict) -> InvokeResult:
        context = LambdaContext(function_name=function)
        return InvokeResult(context.aws_request_id, payload=upload_handler.handler(event, context))

    routes = tuple(
        Route(key, "imgpipe-upload") for key in ("POST /images", "POST /uploads", "GET /images/{id}")
    )
    front = Front(Api("local", "imgpipe", "123456789012", routes), invoke, port=0).start()
    try:
        yield front.url
    finally:
        front.stop()
        upload_handler.settings.cache_clear()
        aws.reset()


def jpeg(size: tuple[int, int] = (120, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (250, 120, 0)).save(buf, "JPEG")
    return buf.getvalue()


def test_raw_binary_upload_then_status(base_url):
    data = jpeg()
    response = requests.post(
        f"{base_url}/images",
        params={"filename": "sun rise.jpg"},
        data=data,
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    created = response.json()
    assert response.headers["Location"] == f"/images/{created['id']}"
    assert created["original"]["filename"] == "sun rise.jpg"
    stored = boto3.client("s3").get_object(Bucket=UPLOADS, Key=created["original"]["key"])
    assert stored["Body"].read() == data

    status = requests.get(f"{base_url}{response.headers['Location']}", timeout=30)
    assert status.status_code == 200
    assert status.json()["status"] == "pending"
    assert status.json()["renditions"] == []


def test_multipart_upload_as_a_browser_form_sends_it(base_url):
    data = jpeg()
    response = requests.post(
        f"{base_url}/images",
        files={"file": ("../../etc/passwd.jpg", data, "image/jpeg")},
        data={"title": "ignored"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["original"]["key"] == f"originals/{created['id']}/passwd.jpg"
    assert created["original"]["size"] == len(data)


def test_errors_over_http_are_json_with_their_status(base_url):
    cases = [
        (
            requests.post(f"{base_url}/images", data=b"plain words", headers={"Content-Type": "image/png"}),
            415,
        ),
        (
            requests.post(
                f"{base_url}/images",
                data=jpeg((800, 800)) + b"\0" * 100_000,
                headers={"Content-Type": "image/jpeg"},
            ),
            413,
        ),
        (
            requests.post(f"{base_url}/uploads", data="{oops", headers={"Content-Type": "application/json"}),
            400,
        ),
        (requests.get(f"{base_url}/images/not-an-id"), 400),
        (requests.get(f"{base_url}/images/{'A' * 22}"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/json"
        body = response.json()
        assert set(body) == {"error"}
        assert body["error"]["code"] in {
            "bad_request",
            "not_found",
            "payload_too_large",
            "unsupported_media_type",
        }
    assert "POST /uploads" in cases[1][0].json()["error"]["message"]


def test_presigned_flow_end_to_end(base_url):
    data = jpeg((640, 480))
    response = requests.post(
        f"{base_url}/uploads",
        data=json.dumps({"filename": "big.jpg", "content_type": "image/jpeg", "size": len(data)}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    upload = created["upload"]
    posted = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("big.jpg", data)}, timeout=30
    )
    assert posted.status_code == 204, posted.text
    obj = boto3.client("s3").get_object(Bucket=UPLOADS, Key=upload["fields"]["key"])
    assert obj["Body"].read() == data
    assert obj["ContentType"] == "image/jpeg"
    assert obj["Metadata"]["image-id"] == created["id"]
    status = requests.get(f"{base_url}/images/{created['id']}", timeout=30)
    assert status.json()["status"] == "awaiting_upload"
