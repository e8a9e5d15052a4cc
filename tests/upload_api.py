"""The upload API's events and checks, for the tests that drive its handler.

API Gateway HTTP API (payload 2.0) events built from tests/events/, the error
body every refusal carries, the S3 notification the resize handler gets, and
what S3 and DynamoDB hold afterwards. The handler itself comes from the
``api`` and ``call`` fixtures (tests/conftest.py), which create the resources
named there (``UPLOADS``, ``RESIZED``, ``TABLE``).
"""

from __future__ import annotations

import base64
import io
import json
from urllib.parse import quote_plus

import boto3
from PIL import Image
from urllib3 import encode_multipart_formdata

from conftest import TABLE, UPLOADS, load_event

ERROR_STATUS = {
    "bad_request": 400,
    "not_found": 404,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "not_deletable": 409,
    "internal": 500,
}


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def post_images(body: bytes, content_type: str | None, query: dict | None = None) -> dict:
    event = load_event("http_post_images_raw.json")
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    event["headers"].pop("content-type", None)
    event["headers"]["content-length"] = str(len(body))
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    event.pop("queryStringParameters", None)
    event["rawQueryString"] = ""
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


def multipart(files: dict | list | None = None, data: dict | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body as an HTTP client encodes it (urllib3, under requests)."""
    fields = list((data or {}).items())
    fields += list(files.items()) if isinstance(files, dict) else list(files or [])
    return encode_multipart_formdata(fields)


def post_uploads(doc, *, b64: bool = False) -> dict:
    event = load_event("http_post_uploads.json")
    raw = doc if isinstance(doc, str) else json.dumps(doc)
    event["body"] = base64.b64encode(raw.encode()).decode() if b64 else raw
    event["isBase64Encoded"] = b64
    return event


def get_image(image_id: str) -> dict:
    event = load_event("http_get_image.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/images/{image_id}"
    event["pathParameters"] = {"id": image_id}
    return event


def assert_error(result, code: str, *, contains: str | None = None) -> None:
    status, headers, body = result
    assert status == ERROR_STATUS[code]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if contains:
        assert contains in body["error"]["message"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"


def uploaded_objects() -> list[str]:
    return [obj["Key"] for obj in boto3.client("s3").list_objects_v2(Bucket=UPLOADS).get("Contents", [])]


def table_items() -> list[dict]:
    return boto3.resource("dynamodb").Table(TABLE).scan()["Items"]


def record(image_id: str) -> dict:
    return boto3.resource("dynamodb").Table(TABLE).get_item(Key={"id": image_id})["Item"]


def padded_png(total: int) -> bytes:
    """A real PNG padded with trailing bytes to exactly ``total`` bytes (still sniffed as PNG)."""
    png = image_bytes("PNG", (16, 16))
    assert len(png) < total
    return png + b"\0" * (total - len(png))


def resize(lambda_context, key: str) -> None:
    """Run the resize Lambda on the S3 notification for ``key`` (as SQS delivers it)."""
    head = boto3.client("s3").head_object(Bucket=UPLOADS, Key=key)
    notify(
        lambda_context,
        "ObjectCreated:Put",
        {"key": quote_plus(key), "size": head["ContentLength"], "versionId": head["VersionId"]},
        "0065F2A1B2C3D4E5F6",
    )


def removed(lambda_context, key: str, version_id: str) -> None:
    """Run the resize Lambda on the ``ObjectRemoved:Delete`` event of one version of ``key``."""
    notify(
        lambda_context,
        "ObjectRemoved:Delete",
        {"key": quote_plus(key), "versionId": version_id},
        "0065F2A1B2C3D4E5F7",
    )


def notify(lambda_context, event_name: str, obj: dict, sequencer: str) -> None:
    import resize_handler

    template = load_event("s3_put_sqs.json")["Records"][0]
    body = json.loads(template["body"])
    body["Records"][0]["eventName"] = event_name
    body["Records"][0]["s3"]["bucket"] = {"name": UPLOADS, "arn": f"arn:aws:s3:::{UPLOADS}"}
    body["Records"][0]["s3"]["object"] = {**obj, "sequencer": sequencer}
    resize_handler.reset()
    try:
        outcome = resize_handler.handler(
            {"Records": [{**template, "body": json.dumps(body)}]}, lambda_context
        )
    finally:
        resize_handler.reset()
    assert outcome == {"batchItemFailures": []}


def delete_image(image_id: str) -> dict:
    event = get_image(image_id)
    event["routeKey"] = event["requestContext"]["routeKey"] = "DELETE /images/{id}"
    event["requestContext"]["http"]["method"] = "DELETE"
    return event


def versions_of(key: str) -> list[str]:
    """Every version and delete marker S3 still holds for exactly ``key``."""
    listed = boto3.client("s3").list_object_versions(Bucket=UPLOADS, Prefix=key)
    return [
        v["VersionId"]
        for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])
        if v["Key"] == key
    ]


def decoded_policy(fields: dict) -> dict:
    return json.loads(base64.b64decode(fields["policy"]))
