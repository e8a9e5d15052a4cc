"""The upload API's public contract, driven through the Lambda handler with moto.

Each test sends an API Gateway HTTP API (payload 2.0) event, as the real API
does, and checks the response, the S3 object and the DynamoDB record.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import boto3
import pytest
import requests
from PIL import Image
from upload_api import (
    assert_error,
    decoded_policy,
    delete_image,
    get_image,
    image_bytes,
    multipart,
    padded_png,
    post_images,
    post_uploads,
    record,
    removed,
    resize,
    table_items,
    uploaded_objects,
    versions_of,
)

from conftest import RESIZED, TABLE, UPLOADS, load_event
from imgpipe import id_secret


@pytest.fixture
def logs(api):
    """What the function logs (Powertools' JSON lines), as parsed entries."""
    stream = io.StringIO()
    handler = api.logger.registered_handler
    previous = handler.setStream(stream)

    def entries() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    entries.text = stream.getvalue
    yield entries
    handler.setStream(previous)


# POST /images ---------------------------------------------------------------


def test_raw_upload_stores_original_with_type_metadata_and_pending_record(call):
    png = image_bytes("PNG")
    status, headers, body = call(post_images(png, "image/png", {"filename": "red square.png"}))

    assert status == 201
    image_id = body["id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", image_id)
    assert headers["Location"] == f"/images/{image_id}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    key = f"originals/{image_id}/red square.png"
    assert body == {
        "id": image_id,
        "status": "pending",
        "original": {"key": key, "size": len(png), "content_type": "image/png", "filename": "red square.png"},
        "links": {"self": f"/images/{image_id}"},
    }
    obj = boto3.client("s3").get_object(Bucket=UPLOADS, Key=key)
    assert obj["Body"].read() == png
    assert obj["ContentType"] == "image/png"
    assert obj["Metadata"] == {"image-id": image_id, "filename": "red%20square.png"}
    item = record(image_id)
    assert item["status"] == "pending"
    assert item["original"]["key"] == key
    assert item["original"]["size"] == len(png)
    assert item["created_at"] == item["updated_at"]
    assert item["created_at"].endswith("Z")


def test_plain_text_body_declared_as_jpeg_is_refused_and_nothing_is_stored(call):
    event = post_images(b"", "image/jpeg")
    event["body"] = "hello, I am not a picture"
    event["isBase64Encoded"] = False
    assert_error(call(event), "unsupported_media_type")
    assert uploaded_objects() == []
    assert table_items() == []


def test_png_bytes_declared_as_jpeg_are_stored_as_png(call):
    png = image_bytes("PNG")
    status, _, body = call(post_images(png, "image/jpeg", {"filename": "photo.jpg"}))
    assert status == 201
    assert body["original"]["content_type"] == "image/png"
    obj = boto3.client("s3").head_object(Bucket=UPLOADS, Key=body["original"]["key"])
    assert obj["ContentType"] == "image/png"
    assert record(body["id"])["original"]["content_type"] == "image/png"


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif"), ("TIFF", "image/tiff")],
)
def test_each_allowed_format_is_accepted_with_its_sniffed_type(call, fmt, mime):
    data = image_bytes(fmt)
    status, _, body = call(post_images(data, "image/whatever"))
    assert status == 201
    assert body["original"]["content_type"] == mime
    assert boto3.client("s3").head_object(Bucket=UPLOADS, Key=body["original"]["key"])["ContentType"] == mime


def test_filename_with_path_traversal_never_reaches_the_key(call):
    status, _, body = call(
        post_images(image_bytes("JPEG"), "image/jpeg", {"filename": "../../etc/passwd.jpg"})
    )
    assert status == 201
    image_id = body["id"]
    assert body["original"]["key"] == f"originals/{image_id}/passwd.jpg"
    assert body["original"]["filename"] == "passwd.jpg"
    assert uploaded_objects() == [f"originals/{image_id}/passwd.jpg"]
    meta = boto3.client("s3").head_object(Bucket=UPLOADS, Key=body["original"]["key"])["Metadata"]
    assert meta["filename"] == "passwd.jpg"


def test_filename_with_control_characters_and_unicode_is_sanitised(call):
    name = "ca\x00fé\r\n/..\\evil\x7f.png"
    status, _, body = call(post_images(image_bytes("PNG"), "image/png", {"filename": name}))
    assert status == 201
    filename = body["original"]["filename"]
    assert "/" not in filename and ".." not in filename and "\\" not in filename
    assert all(32 <= ord(ch) < 127 for ch in filename)
    assert body["original"]["key"] == f"originals/{body['id']}/{filename}"


def test_without_filename_the_original_gets_a_name_from_its_format(call):
    status, _, body = call(post_images(image_bytes("WEBP"), "image/webp"))
    assert status == 201
    assert body["original"]["filename"] == "image.webp"


def test_multipart_upload_with_extra_fields_stores_the_file_part(call):
    jpeg = image_bytes("JPEG", (64, 48))
    payload, content_type = multipart(
        files={"file": ("beach.jpg", jpeg, "image/jpeg")}, data={"caption": "sunset", "album": "2026"}
    )
    event = post_images(payload, content_type)
    status, headers, body = call(event)

    assert status == 201
    assert headers["Location"] == f"/images/{body['id']}"
    assert body["original"] == {
        "key": f"originals/{body['id']}/beach.jpg",
        "size": len(jpeg),
        "content_type": "image/jpeg",
        "filename": "beach.jpg",
    }
    obj = boto3.client("s3").get_object(Bucket=UPLOADS, Key=body["original"]["key"])
    assert obj["Body"].read() == jpeg
    assert obj["Metadata"] == {"image-id": body["id"], "filename": "beach.jpg"}


def test_multipart_sample_event_from_api_gateway_is_accepted(call):
    status, _, body = call(load_event("http_post_images_multipart.json"))
    assert status == 201
    assert body["original"]["filename"] == "red.png"
    assert body["original"]["content_type"] == "image/png"
    stored = boto3.client("s3").get_object(Bucket=UPLOADS, Key=body["original"]["key"])["Body"].read()
    with Image.open(io.BytesIO(stored)) as im:
        assert im.size == (8, 6)
        assert im.convert("RGB").getpixel((3, 3)) == (200, 30, 30)


def test_multipart_filename_with_path_traversal_is_sanitised(call):
    payload, content_type = multipart(
        files={"file": ("../../etc/passwd.jpg", image_bytes("JPEG"), "image/jpeg")}
    )
    status, _, body = call(post_images(payload, content_type))
    assert status == 201
    assert body["original"]["key"] == f"originals/{body['id']}/passwd.jpg"


def test_multipart_part_declared_wrongly_is_corrected_by_sniffing(call):
    payload, content_type = multipart(files={"file": ("x.gif", image_bytes("PNG"), "image/gif")})
    status, _, body = call(post_images(payload, content_type))
    assert status == 201
    assert body["original"]["content_type"] == "image/png"


def test_multipart_without_file_field_is_bad_request(call):
    payload, content_type = multipart(data={"caption": "no picture here"})
    assert_error(call(post_images(payload, content_type)), "bad_request", contains="file")
    assert uploaded_objects() == []


def test_multipart_with_two_file_fields_is_bad_request(call):
    payload, content_type = multipart(
        files=[
            ("file", ("a.png", image_bytes("PNG"), "image/png")),
            ("file", ("b.png", image_bytes(), "image/png")),
        ]
    )
    assert_error(call(post_images(payload, content_type)), "bad_request")


def test_multipart_text_file_is_unsupported_media_type(call):
    payload, content_type = multipart(files={"file": ("notes.jpg", b"just some notes\n", "image/jpeg")})
    assert_error(call(post_images(payload, content_type)), "unsupported_media_type")
    assert uploaded_objects() == []


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda body: body[: len(body) // 2], id="truncated"),
        pytest.param(lambda body: body.replace(b"\r\n", b"\n"), id="bare-newlines"),
        pytest.param(lambda body: b"garbage before any boundary", id="no-boundary-in-body"),
    ],
)
def test_malformed_multipart_is_bad_request(call, mangle):
    payload, content_type = multipart(files={"file": ("a.png", image_bytes("PNG"), "image/png")})
    assert_error(call(post_images(mangle(payload), content_type)), "bad_request", contains="multipart")
    assert uploaded_objects() == []


def test_multipart_without_boundary_parameter_is_bad_request(call):
    payload, _ = multipart(files={"file": ("a.png", image_bytes("PNG"), "image/png")})
    assert_error(call(post_images(payload, "multipart/form-data")), "bad_request", contains="boundary")


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/plain", "application/json"])
def test_raw_body_without_image_content_type_is_unsupported_media_type(call, content_type):
    assert_error(call(post_images(image_bytes("PNG"), content_type)), "unsupported_media_type")
    assert uploaded_objects() == []


def test_empty_body_is_bad_request(call):
    event = post_images(b"", "image/png")
    event.pop("body")
    assert_error(call(event), "bad_request", contains="empty")
    event["body"] = ""
    assert_error(call(event), "bad_request", contains="empty")


def test_text_body_with_lone_surrogate_is_bad_request(call):
    event = post_uploads('{"filename": "a.png", "content_type": "image/png", "size": 10}')
    event["body"] = '{"filename": "\ud800.png"}'
    assert_error(call(event), "bad_request")


def test_invalid_base64_body_is_bad_request(call):
    event = post_images(image_bytes("PNG"), "image/png")
    event["body"] = "not base64 at all!"
    assert_error(call(event), "bad_request", contains="base64")


def test_raw_upload_exactly_at_the_limit_is_accepted_one_byte_over_is_413(call, monkeypatch, api):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "2000")
    api.settings.cache_clear()

    status, _, body = call(post_images(padded_png(2000), "image/png"))
    assert status == 201
    assert body["original"]["size"] == 2000

    result = call(post_images(padded_png(2001), "image/png"))
    assert_error(result, "payload_too_large", contains="POST /uploads")
    assert "2000" in result[2]["error"]["message"]
    assert len(uploaded_objects()) == 1


def test_multipart_file_exactly_at_the_limit_is_accepted_one_byte_over_is_413(call, monkeypatch, api):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "2000")
    api.settings.cache_clear()

    payload, content_type = multipart(
        files={"file": ("a.png", padded_png(2000), "image/png")}, data={"x": "y"}
    )
    assert len(payload) > 2000
    status, _, body = call(post_images(payload, content_type))
    assert status == 201
    assert body["original"]["size"] == 2000

    payload, content_type = multipart(files={"file": ("a.png", padded_png(2001), "image/png")})
    assert_error(call(post_images(payload, content_type)), "payload_too_large", contains="POST /uploads")


def test_default_direct_limit_is_4_mib(call):
    status, _, _ = call(post_images(padded_png(4 * 1024 * 1024), "image/png"))
    assert status == 201
    assert_error(call(post_images(padded_png(4 * 1024 * 1024 + 1), "image/png")), "payload_too_large")


# POST /uploads --------------------------------------------------------------


@pytest.mark.parametrize("b64", [False, True], ids=["plain", "base64"])
def test_presigned_upload_pins_key_type_metadata_and_size_range(call, b64):
    before = datetime.now(UTC).replace(microsecond=0)
    doc = {"filename": "../holiday photo.jpg", "content_type": "image/jpeg", "size": 12_000_000}
    status, headers, body = call(post_uploads(doc, b64=b64))
    after = datetime.now(UTC)

    assert status == 201
    image_id = body["id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", image_id)
    assert headers["Location"] == f"/images/{image_id}"
    assert set(body) == {"id", "status", "upload", "links"}
    assert body["status"] == "awaiting_upload"
    assert body["links"] == {"self": f"/images/{image_id}"}
    upload = body["upload"]
    assert set(upload) == {"url", "fields", "expires_at"}
    assert UPLOADS in upload["url"]
    key = f"originals/{image_id}/holiday photo.jpg"
    fields = upload["fields"]
    assert fields["key"] == key
    assert fields["Content-Type"] == "image/jpeg"
    assert fields["x-amz-meta-image-id"] == image_id
    assert fields["x-amz-meta-filename"] == "holiday%20photo.jpg"

    policy = decoded_policy(fields)
    conditions = policy["conditions"]
    assert {"key": key} in conditions
    assert {"bucket": UPLOADS} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert {"x-amz-meta-image-id": image_id} in conditions
    assert {"x-amz-meta-filename": "holiday%20photo.jpg"} in conditions
    assert ["content-length-range", 1, 50 * 1024 * 1024] in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)

    expires = datetime.fromisoformat(upload["expires_at"].replace("Z", "+00:00"))
    assert upload["expires_at"].endswith("Z")
    assert upload["expires_at"] == policy["expiration"]
    assert before + timedelta(seconds=900) <= expires <= after + timedelta(seconds=900)

    item = record(image_id)
    assert item["status"] == "awaiting_upload"
    assert item["original"] == {
        "key": key,
        "size": 12_000_000,
        "content_type": "image/jpeg",
        "filename": "holiday photo.jpg",
    }
    assert uploaded_objects() == []


def test_presigned_upload_limits_and_expiry_follow_configuration(call, monkeypatch, api):
    monkeypatch.setenv("MAX_PRESIGNED_BYTES", "1000000")
    monkeypatch.setenv("PRESIGN_POST_EXPIRY_SECONDS", "60")
    api.settings.cache_clear()

    before = datetime.now(UTC).replace(microsecond=0)
    status, _, body = call(
        post_uploads({"filename": "a.webp", "content_type": "image/webp", "size": 1000000})
    )
    assert status == 201
    assert ["content-length-range", 1, 1000000] in decoded_policy(body["upload"]["fields"])["conditions"]
    expires = datetime.fromisoformat(body["upload"]["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=60) <= expires <= datetime.now(UTC) + timedelta(seconds=60)

    result = call(post_uploads({"filename": "a.webp", "content_type": "image/webp", "size": 1000001}))
    assert_error(result, "payload_too_large", contains="1000000")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{not json", id="malformed-json"),
        pytest.param("[1, 2, 3]", id="not-an-object"),
        pytest.param({"content_type": "image/png", "size": 10}, id="missing-filename"),
        pytest.param({"filename": "a.png", "size": 10}, id="missing-content-type"),
        pytest.param({"filename": "a.png", "content_type": "image/png"}, id="missing-size"),
        pytest.param({"filename": "a.png", "content_type": "image/png", "size": "10"}, id="size-string"),
        pytest.param({"filename": "a.png", "content_type": "image/png", "size": 10.5}, id="size-float"),
        pytest.param({"filename": "a.png", "content_type": "image/png", "size": True}, id="size-bool"),
        pytest.param({"filename": "a.png", "content_type": "image/png", "size": 0}, id="size-zero"),
        pytest.param({"filename": "a.png", "content_type": "image/png", "size": -5}, id="size-negative"),
        pytest.param({"filename": "", "content_type": "image/png", "size": 10}, id="empty-filename"),
        pytest.param({"filename": 7, "content_type": "image/png", "size": 10}, id="filename-number"),
        pytest.param({"filename": "a.png", "content_type": None, "size": 10}, id="content-type-null"),
    ],
)
def test_presigned_upload_request_errors_are_bad_request(call, body):
    assert_error(call(post_uploads(body)), "bad_request")
    assert table_items() == []


def test_presigned_upload_of_too_large_size_is_413(call):
    doc = {"filename": "huge.tif", "content_type": "image/tiff", "size": 50 * 1024 * 1024 + 1}
    assert_error(call(post_uploads(doc)), "payload_too_large")
    doc["size"] = 50 * 1024 * 1024
    assert call(post_uploads(doc))[0] == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/pdf", "image/svg+xml", "image/jpg", ""])
def test_presigned_upload_of_non_image_type_is_415(call, content_type):
    doc = {"filename": "x", "content_type": content_type, "size": 10}
    assert_error(call(post_uploads(doc)), "unsupported_media_type", contains="image/jpeg")
    assert table_items() == []


def test_presigned_upload_with_empty_body_is_bad_request(call):
    event = post_uploads("")
    assert_error(call(event), "bad_request", contains="empty")


def test_presigned_upload_content_type_parameters_are_dropped(call):
    doc = {"filename": "a.png", "content_type": "Image/PNG; charset=binary", "size": 10}
    status, _, body = call(post_uploads(doc))
    assert status == 201
    assert body["upload"]["fields"]["Content-Type"] == "image/png"


# GET /images/{id} -----------------------------------------------------------


def test_get_after_direct_upload_is_pending_with_no_renditions_and_no_error(call):
    _, _, created = call(post_images(image_bytes("PNG"), "image/png", {"filename": "a.png"}))
    status, headers, body = call(get_image(created["id"]))
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"] == "application/json"
    assert body["id"] == created["id"]
    assert body["status"] == "pending"
    assert body["original"] == created["original"]
    assert body["renditions"] == []
    assert "error" not in body
    assert body["created_at"] == body["updated_at"]
    assert set(body) == {"id", "status", "original", "renditions", "created_at", "updated_at"}


def test_get_after_presigned_upload_request_is_awaiting_upload(call):
    _, _, created = call(post_uploads({"filename": "a.png", "content_type": "image/png", "size": 10}))
    status, _, body = call(get_image(created["id"]))
    assert status == 200
    assert body["status"] == "awaiting_upload"
    assert body["original"]["size"] == 10


def test_an_upload_announced_but_never_sent_expires_by_the_tables_ttl_and_one_that_arrives_does_not(
    call, lambda_context
):
    # DynamoDB TTL deletes an item once the epoch seconds in its TTL attribute have passed (DynamoDB
    # Developer Guide, "Using time to live"): a record awaiting an upload whose form expired unused can
    # never complete, so it carries the attribute; the upload's arrival removes it.
    from imgpipe import records

    before = time.time()
    _, _, created = call(post_uploads({"filename": "a.png", "content_type": "image/png", "size": 10}))
    item = boto3.resource("dynamodb").Table(TABLE).get_item(Key={"id": created["id"]})["Item"]
    expires = int(item[records.TTL_ATTRIBUTE])
    form_expires = datetime.fromisoformat(created["upload"]["expires_at"].replace("Z", "+00:00"))
    assert expires == pytest.approx(form_expires.timestamp() + records.UNUSED_UPLOAD_GRACE_SECONDS, abs=2)
    assert expires > before + records.UNUSED_UPLOAD_GRACE_SECONDS

    key = created["upload"]["fields"]["key"]
    boto3.client("s3").put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"), ContentType="image/png")
    resize(lambda_context, key)
    item = boto3.resource("dynamodb").Table(TABLE).get_item(Key={"id": created["id"]})["Item"]
    assert item["status"] == "done"
    assert records.TTL_ATTRIBUTE not in item


def test_get_unknown_id_is_404(call):
    assert_error(call(get_image("A" * 22)), "not_found")


@pytest.mark.parametrize("bad_id", ["short", "A" * 23, "A" * 21 + "!", "A" * 21 + "%2F", "%00" * 8])
def test_get_malformed_id_is_400(call, bad_id):
    assert_error(call(get_image(bad_id)), "bad_request", contains="id")


@pytest.mark.parametrize("form", ["raw", "percent-encoded", "padded to 22 characters"])
def test_get_never_serves_the_id_secret_item(call, form):
    # The secret that keys direct uploads' ids lives in the images table (docs/ids.md); its item id
    # is no 22-character image id, so GET /images/{id} refuses it however the path spells it.
    secret = id_secret.load(boto3.resource("dynamodb").Table(TABLE))
    item_id = {
        "raw": id_secret.ITEM_ID,
        "percent-encoded": quote(id_secret.ITEM_ID, safe=""),
        "padded to 22 characters": id_secret.ITEM_ID.ljust(22, "A"),
    }[form]
    status, _, body = result = call(get_image(item_id))
    assert status in (400, 404)
    assert_error(result, "bad_request" if status == 400 else "not_found")
    text = json.dumps(body)
    for spelled in (
        secret.hex(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
    ):
        assert spelled not in text


def test_get_failed_image_shows_its_error(call, api):
    from imgpipe import aws, records

    _, _, created = call(post_images(image_bytes("PNG"), "image/png"))
    records.mark_failed(
        aws.table(TABLE),
        created["id"],
        {**created["original"]},
        "corrupt_image",
        "the image data is truncated",
    )
    status, _, body = call(get_image(created["id"]))
    assert status == 200
    assert body["status"] == "failed"
    assert body["error"] == {"code": "corrupt_image", "message": "the image data is truncated"}
    assert body["renditions"] == []


def test_get_after_the_resize_handler_ran_lists_renditions_with_urls_that_download(
    call, api, monkeypatch, lambda_context
):
    monkeypatch.setenv("RENDITION_URL_EXPIRY_SECONDS", "120")
    api.settings.cache_clear()
    _, _, created = call(post_images(image_bytes("PNG", (400, 300)), "image/png", {"filename": "a b.png"}))
    image_id = created["id"]
    resize(lambda_context, created["original"]["key"])

    status, _, body = call(get_image(image_id))
    assert status == 200
    assert body["status"] == "done"
    assert "error" not in body
    # The rendition-config version that made these renditions, as the record and their metadata say.
    assert re.fullmatch(r"[0-9a-f]{12}", body["config_version"])
    assert body["config_version"] == record(image_id)["config_version"]
    assert body["original"] == {**created["original"], "width": 400, "height": 300, "format": "png"}
    names = {(r["name"], r["format"]) for r in body["renditions"]}
    assert names == {(n, f) for n in ("thumb", "medium", "large") for f in ("webp", "jpeg")}
    for rendition in body["renditions"]:
        assert set(rendition) == {"name", "format", "width", "height", "bytes", "url"}
        assert "X-Amz-Signature=" in rendition["url"]
        assert "X-Amz-Expires=120" in rendition["url"]
        fetched = requests.get(rendition["url"], timeout=10)  # moto's mock answers requests too
        assert fetched.status_code == 200
        assert fetched.headers["x-amz-meta-config-version"] == body["config_version"]
        assert len(fetched.content) == rendition["bytes"]
        with Image.open(io.BytesIO(fetched.content)) as im:
            assert im.format.lower() == rendition["format"]
            assert im.size == (rendition["width"], rendition["height"])
            assert im.convert("RGB").getpixel((im.width // 2, im.height // 2)) == pytest.approx(
                (200, 30, 30), abs=12
            )


def test_get_gives_the_frame_count_of_animated_renditions(call, lambda_context):
    from tests import images

    gif = images.animation(images.moving_square(5), "GIF", [100] * 5, loop=0)
    _, _, created = call(post_images(gif, "image/gif", {"filename": "spin.gif"}))
    resize(lambda_context, created["original"]["key"])
    _, _, body = call(get_image(created["id"]))
    frames = {(r["name"], r["format"]): r.get("frames") for r in body["renditions"]}
    assert frames == {
        (n, f): 5 if f == "webp" else None for n in ("thumb", "medium", "large") for f in ("webp", "jpeg")
    }
    for rendition in body["renditions"]:
        with Image.open(io.BytesIO(requests.get(rendition["url"], timeout=10).content)) as im:
            assert getattr(im, "n_frames", 1) == rendition.get("frames", 1)


def test_get_shows_the_record_as_the_resize_lambda_wrote_it(call):
    """Fields the API does not publish (the version id, rendition keys) stay out of the view."""
    from imgpipe import aws, records

    _, _, created = call(post_images(image_bytes("PNG"), "image/png"))
    image_id = created["id"]
    renditions = [
        {
            "name": "thumb",
            "format": "webp",
            "key": f"{image_id}/thumb.webp",
            "width": 4,
            "height": 3,
            "bytes": 9,
        }
    ]
    original = {**created["original"], "width": 40, "height": 30, "format": "png", "version_id": "v1"}
    records.mark_done(aws.table(TABLE), image_id, original, renditions)
    _, _, body = call(get_image(image_id))
    assert "version_id" not in body["original"]
    assert body["renditions"][0]["url"].split("?")[0].endswith(f"/{image_id}/thumb.webp")
    assert "key" not in body["renditions"][0]


# Routing, errors, logs --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/"),
        ("GET", "/static"),
        ("DELETE", "/images/" + "A" * 22),
        ("GET", "/uploads"),
        ("PUT", "/images"),
    ],
)
def test_unknown_route_is_json_404(call, method, path):
    event = get_image("A" * 22)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    assert_error(call(event), "not_found")


def test_unexpected_failure_is_500_without_internal_detail_and_is_logged(call, logs):
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    status, headers, body = call(post_images(image_bytes("PNG"), "image/png"))
    assert_error((status, headers, body), "internal")
    text = json.dumps(body)
    for secret in (UPLOADS, RESIZED, TABLE, "Traceback", "ResourceNotFound", "dynamodb"):
        assert secret not in text
    errors = [entry for entry in logs() if entry["level"] == "ERROR"]
    assert errors
    assert "Traceback" in errors[0]["exception"]
    assert errors[0]["correlation_id"] == "Wx1YzjY2oAMEVxA="
    assert uploaded_objects() == []


def test_failed_object_write_leaves_no_pending_record(call):
    boto3.client("s3").delete_bucket(Bucket=UPLOADS)
    assert_error(call(post_images(image_bytes("PNG"), "image/png")), "internal")
    assert table_items() == []


def test_logs_are_json_with_request_ids_and_hold_no_body_or_presigned_url(call, logs, lambda_context):
    png = image_bytes("PNG")
    call(post_images(png, "image/png"))
    _, _, created = call(post_uploads({"filename": "a.png", "content_type": "image/png", "size": 10}))
    call(get_image(created["id"]))
    entries = logs()
    assert [entry["message"] for entry in entries] == ["image stored", "presigned upload created"]
    for entry in entries:
        assert entry["function_request_id"] == lambda_context.aws_request_id
        assert entry["correlation_id"] == "Wx1YzjY2oAMEVxA="
    out = logs.text()
    assert base64.b64encode(png).decode()[:40] not in out
    assert created["upload"]["fields"]["x-amz-signature"] not in out
    assert created["upload"]["fields"]["policy"] not in out
    assert "X-Amz-Signature" not in out


def test_invalid_configuration_fails_the_invocation_naming_the_variable(api, lambda_context, monkeypatch):
    from imgpipe.errors import ConfigError

    monkeypatch.setenv("MAX_UPLOAD_BYTES", "4MB")
    api.settings.cache_clear()
    with pytest.raises(ConfigError, match=r"MAX_UPLOAD_BYTES: '4MB'"):
        api.handler(post_images(image_bytes("PNG"), "image/png"), lambda_context)


# --- DELETE /images/{id} ---


@pytest.fixture
def delete(api, lambda_context):
    """DELETE /images/{id}; returns (status, headers, body bytes)."""

    def invoke(image_id: str, event: dict | None = None) -> tuple[int, dict, str]:
        response = api.handler(event or delete_image(image_id), lambda_context)
        return response["statusCode"], response["headers"], response.get("body") or ""

    return invoke


def test_delete_removes_every_version_then_the_renditions_follow_and_the_image_is_404(
    call, delete, lambda_context
):
    s3 = boto3.client("s3")
    _, _, created = call(post_images(image_bytes("PNG", (400, 300)), "image/png", {"filename": "bye.png"}))
    image_id, key = created["id"], created["original"]["key"]
    resize(lambda_context, key)
    _, _, done = call(get_image(image_id))
    held = s3.head_object(Bucket=UPLOADS, Key=key)["VersionId"]
    s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"))  # a presigned form used twice
    assert len(versions_of(key)) == 2
    assert len(s3.list_objects_v2(Bucket=RESIZED, Prefix=f"{image_id}/")["Contents"]) == 6

    status, headers, body = delete(image_id)

    assert (status, body) == (204, "")
    assert headers["Cache-Control"] == "no-store"
    # Versioned DeleteObject calls remove each version for good: no version and no delete marker is left.
    assert versions_of(key) == []
    assert_error(call(get_image(image_id)), "not_found")  # at once, before S3's events arrive
    assert requests.get(done["renditions"][0]["url"], timeout=10).status_code == 200  # not yet

    removed(lambda_context, key, held)  # S3's ObjectRemoved:Delete for the version the record holds

    assert s3.list_objects_v2(Bucket=RESIZED, Prefix=f"{image_id}/").get("KeyCount") == 0
    assert requests.get(done["renditions"][0]["url"], timeout=10).status_code == 404
    assert delete(image_id)[0] == 404  # a second DELETE finds nothing
    assert_error(call(get_image(image_id)), "not_found")


def test_deleting_an_image_still_awaiting_upload_keeps_its_form_from_bringing_it_back(
    call, delete, lambda_context
):
    _, _, created = call(post_uploads({"filename": "later.png", "content_type": "image/png", "size": 100}))
    image_id = created["id"]
    assert delete(image_id)[0] == 204
    key = f"originals/{image_id}/later.png"
    boto3.client("s3").put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"))  # the form, used late
    resize(lambda_context, key)
    assert boto3.client("s3").list_objects_v2(Bucket=RESIZED).get("KeyCount") == 0
    assert_error(call(get_image(image_id)), "not_found")


def test_delete_of_an_unknown_or_malformed_id(call):
    from imgpipe import keys

    assert_error(call(delete_image(keys.new_id())), "not_found")
    assert_error(call(delete_image("not-an-id")), "bad_request")


def test_delete_of_an_image_put_straight_into_the_bucket_is_refused_and_deletes_nothing(
    call, delete, lambda_context
):
    import resize_handler

    key = "incoming/not through the api.png"
    boto3.client("s3").put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"))
    resize(lambda_context, key)
    image_id = resize_handler.image_id(key)  # keyed by the deployment's secret (docs/ids.md)
    refused = call(delete_image(image_id))
    assert_error(refused, "not_deletable")
    assert "incoming" not in json.dumps(refused[2])
    assert len(versions_of(key)) == 1
    assert call(get_image(image_id))[0] == 200
