"""The upload API under hostile or careless use: what it never reveals, whose images
it shows, what malformed input gets, and which bodies can reach it at all.

Driven through the Lambda handler with payload 2.0 events, as API Gateway sends
them (a JWT authorizer adds ``requestContext.authorizer.jwt.claims``), against
moto; direct S3 uploads go through the resize handler as the pipeline does.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import boto3
import pytest
from upload_api import (
    assert_error,
    delete_image,
    get_image,
    image_bytes,
    multipart,
    padded_png,
    post_images,
    post_uploads,
    resize,
    versions_of,
)

from conftest import RESIZED, TABLE, UPLOADS

ACCOUNT = "123456789012"
# What a failed image says when its recorded message would reveal internals.
PUBLIC_MESSAGES = {
    "corrupt_image": "the image data is corrupt or truncated",
    "unsupported_format": "the image format is not supported",
    "too_many_pixels": "the image has more pixels than this service decodes",
}


def as_user(event: dict, claims: dict | None) -> dict:
    """The event as API Gateway passes it through a JWT authorizer (payload 2.0)."""
    event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event


def sub(subject: str) -> dict:
    return {"sub": subject, "aud": "web-client", "iss": "https://issuer.example.com"}


def table():
    return boto3.resource("dynamodb").Table(TABLE)


def direct_s3_upload(lambda_context, key: str, metadata: dict | None = None) -> dict:
    """Put an object in the uploads bucket without the API, resize it, return its record."""
    boto3.client("s3").put_object(
        Bucket=UPLOADS, Key=key, Body=image_bytes("PNG", (64, 48)), Metadata=metadata or {}
    )
    resize(lambda_context, key)
    # The table also holds the id secret's item (docs/ids.md), which has no original.
    (item,) = [i for i in table().scan()["Items"] if i.get("original", {}).get("key") == key]
    return item


# 12.9: malformed input is a 4xx with a stable code, never a 500 ----------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(nested(100_000), id="array-100000-deep"),
        pytest.param('{"filename": ' + nested(100_000) + "}", id="field-100000-deep"),
        pytest.param('{"a":' * 100_000 + "1" + "}" * 100_000, id="object-100000-deep"),
    ],
)
@pytest.mark.parametrize("b64", [False, True], ids=["text", "base64"])
def test_json_nested_100000_deep_is_400_bad_request_not_500(call, body, b64):
    # Python's JSON decoder recurses per nesting level and raises RecursionError.
    assert_error(call(post_uploads(body, b64=b64)), "bad_request", contains="JSON")
    assert table().scan()["Items"] == []


# 12.7: no bucket, account id, ARN or path in any public message ---------------

LEAKY_MESSAGES = [
    f"get s3://imgpipe-local-uploads-{ACCOUNT}-us-east-1/originals/x/a.png: NoSuchKey",
    f"arn:aws:s3:::imgpipe-local-uploads-{ACCOUNT}-us-east-1/originals/x/a.png",
    f"AccessDenied for account {ACCOUNT}",
    "An error occurred (AccessDenied) when calling the GetObject operation: Access Denied",
    'Traceback (most recent call last): File "/var/task/imgpipe/engine.py", line 3',
    "cannot open /tmp/tmpa1b2c3/source.png",
    f"the object in {UPLOADS} is gone",
    f"the table {TABLE} refused the write",
    "https://imgpipe-resized.s3.us-east-1.amazonaws.com/x/thumb.webp",
]
INTERNALS = (UPLOADS, RESIZED, TABLE, ACCOUNT, "s3://", "arn:", "/tmp", "/var/task", "Traceback")


def failed(image_id: str, code: str, message: str) -> None:
    from imgpipe import aws, records

    records.mark_failed(aws.table(TABLE), image_id, {"key": "k"}, code, message)


@pytest.mark.parametrize("message", LEAKY_MESSAGES)
def test_recorded_error_naming_internals_is_replaced_by_the_codes_public_message(call, message):
    _, _, created = call(post_images(image_bytes("PNG"), "image/png"))
    failed(created["id"], "source_not_found", message)

    status, _, body = call(get_image(created["id"]))

    assert status == 200
    assert body["error"] == {"code": "source_not_found", "message": "the uploaded file no longer exists"}
    text = json.dumps(body["error"])
    assert not [secret for secret in INTERNALS if secret in text]


def test_recorded_error_with_an_unknown_code_and_leaky_message_shows_a_generic_message(call):
    _, _, created = call(post_images(image_bytes("PNG"), "image/png"))
    failed(created["id"], "Boto/ClientError 123456789012", LEAKY_MESSAGES[0])
    _, _, body = call(get_image(created["id"]))
    assert body["error"] == {"code": "internal", "message": "the image could not be processed"}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("corrupt_image", "the image data is truncated"),
        ("unsupported_format", "image/x-icon is not a supported format"),
        ("too_many_pixels", "the image has 200000000 pixels; the limit (MAX_PIXELS) is 100,000,000"),
    ],
)
def test_only_messages_naming_internals_are_replaced(call, code, message):
    _, _, clean = call(post_images(image_bytes("PNG"), "image/png"))
    _, _, leaky = call(post_images(image_bytes("PNG"), "image/png"))
    failed(clean["id"], code, message)
    failed(leaky["id"], code, f"{message} (s3://{UPLOADS}/{leaky['original']['key']})")
    assert call(get_image(clean["id"]))[2]["error"] == {"code": code, "message": message}
    public = call(get_image(leaky["id"]))[2]["error"]
    assert public == {"code": code, "message": PUBLIC_MESSAGES[code]}


def error_requests() -> list:
    png = image_bytes("PNG")
    no_boundary = post_images(png, "multipart/form-data")
    bad_b64 = post_images(png, "image/png")
    bad_b64["body"] = "%%%"
    return [
        pytest.param(lambda: post_images(b"just text", "image/png"), id="415-not-an-image"),
        pytest.param(lambda: post_images(png, "text/plain"), id="415-content-type"),
        pytest.param(lambda: no_boundary, id="400-no-boundary"),
        pytest.param(lambda: bad_b64, id="400-base64"),
        pytest.param(lambda: post_uploads("{nope"), id="400-json"),
        pytest.param(lambda: post_uploads(nested(5000)), id="400-deep-json"),
        pytest.param(
            lambda: post_uploads({"filename": "a", "content_type": "image/png", "size": 10**12}), id="413"
        ),
        pytest.param(lambda: get_image("A" * 22), id="404-unknown-id"),
        pytest.param(lambda: get_image("x/../y"), id="400-id"),
    ]


def test_every_error_answer_is_a_4xx_naming_no_bucket_account_arn_or_path(call):
    from imgpipe.api import reveals_internals

    for param in error_requests():
        (make_event,) = param.values
        status, _, body = call(make_event())
        assert 400 <= status < 500, param.id
        assert not reveals_internals(body["error"]["message"], (UPLOADS, RESIZED, TABLE)), param.id
        assert not [secret for secret in INTERNALS if secret in json.dumps(body)], param.id


# 12.8: records belong to the JWT subject that uploaded them -------------------


def create(call, route: str, claims: dict | None) -> str:
    if route == "images":
        event = post_images(image_bytes("PNG"), "image/png", {"filename": "a.png"})
    else:
        event = post_uploads({"filename": "a.png", "content_type": "image/png", "size": 10})
    status, _, body = call(as_user(event, claims) if claims else event)
    assert status == 201
    return body["id"]


def unknown_id_answer(call, image_id: str, claims: dict | None) -> tuple:
    """What the same request gets once no record with this id exists."""
    table().delete_item(Key={"id": image_id})
    event = get_image(image_id)
    return call(as_user(event, claims) if claims else event)


@pytest.mark.parametrize("route", ["images", "uploads"])
def test_with_jwt_auth_the_uploader_owns_the_record_and_sees_it(call, route):
    image_id = create(call, route, sub("alice"))
    assert table().get_item(Key={"id": image_id})["Item"]["owner"] == "alice"
    status, _, body = call(as_user(get_image(image_id), sub("alice")))
    assert status == 200
    assert body["id"] == image_id
    assert "owner" not in body


@pytest.mark.parametrize("route", ["images", "uploads"])
@pytest.mark.parametrize("reader", [sub("bob"), None], ids=["other-subject", "no-token"])
def test_someone_elses_image_answers_exactly_like_an_unknown_id(call, route, reader):
    image_id = create(call, route, sub("alice"))
    event = get_image(image_id)
    seen = call(as_user(event, reader) if reader else event)
    assert_error(seen, "not_found")
    assert seen == unknown_id_answer(call, image_id, reader)


def test_on_an_open_api_images_have_no_owner_and_owned_ones_stay_hidden(call):
    open_id = create(call, "images", None)
    owned_id = create(call, "images", sub("alice"))
    assert "owner" not in table().get_item(Key={"id": open_id})["Item"]
    assert call(get_image(open_id))[0] == 200
    assert_error(call(get_image(owned_id)), "not_found")


def test_a_direct_s3_upload_is_hidden_behind_jwt_auth_and_shown_on_an_open_api(call, lambda_context):
    item = direct_s3_upload(lambda_context, "incoming/cat.png")
    assert "owner" not in item
    assert call(get_image(item["id"]))[0] == 200
    behind_auth = call(as_user(get_image(item["id"]), sub("alice")))
    assert_error(behind_auth, "not_found")
    assert behind_auth == unknown_id_answer(call, item["id"], sub("alice"))


@pytest.mark.parametrize("route", ["images", "uploads"])
@pytest.mark.parametrize("caller", [sub("bob"), None], ids=["other-subject", "no-token"])
def test_deleting_someone_elses_image_answers_like_an_unknown_id_and_deletes_nothing(
    call, lambda_context, route, caller
):
    image_id = create(call, route, sub("alice"))
    key = table().get_item(Key={"id": image_id})["Item"]["original"]["key"]
    if route == "images":
        resize(lambda_context, key)
    before = table().get_item(Key={"id": image_id})["Item"]
    event = delete_image(image_id)
    refused = call(as_user(event, caller) if caller else event)
    assert_error(refused, "not_found")
    assert table().get_item(Key={"id": image_id})["Item"] == before
    assert len(versions_of(key)) == (1 if route == "images" else 0)
    assert call(as_user(get_image(image_id), sub("alice")))[0] == 200
    assert refused == unknown_id_answer_to_delete(call, image_id, caller)


def unknown_id_answer_to_delete(call, image_id: str, claims: dict | None) -> tuple:
    table().delete_item(Key={"id": image_id})
    event = delete_image(image_id)
    return call(as_user(event, claims) if claims else event)


def test_the_owner_deletes_their_image_and_then_it_is_404_for_them_too(call, api, lambda_context):
    image_id = create(call, "images", sub("alice"))
    key = table().get_item(Key={"id": image_id})["Item"]["original"]["key"]
    response = api.handler(as_user(delete_image(image_id), sub("alice")), lambda_context)
    assert response["statusCode"] == 204
    assert versions_of(key) == []
    seen = call(as_user(get_image(image_id), sub("alice")))
    assert_error(seen, "not_found")
    assert_error(call(as_user(delete_image(image_id), sub("alice"))), "not_found")
    assert seen == unknown_id_answer(call, image_id, sub("alice"))  # exactly like an unknown id


@pytest.mark.parametrize("route", ["images", "uploads", "get", "delete"])
def test_a_token_without_a_subject_is_403_and_stores_nothing(call, route):
    claims = {"aud": "web-client", "iss": "https://issuer.example.com", "client_id": "web-client"}
    if route == "delete":
        event = delete_image("A" * 22)
    elif route == "get":
        event = get_image("A" * 22)
    elif route == "images":
        event = post_images(image_bytes("PNG"), "image/png")
    else:
        event = post_uploads({"filename": "a.png", "content_type": "image/png", "size": 10})
    status, _, body = call(as_user(event, claims))
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    assert "sub" in body["error"]["message"]
    assert table().scan()["Items"] == []


# 12.10: one filename rule for API and direct uploads --------------------------

HOSTILE_NAME = "<script>alert(1)</script>/../../etc/passwd"


def test_a_direct_uploads_filename_metadata_comes_back_sanitised(call, lambda_context):
    from imgpipe.keys import sanitize_filename

    item = direct_s3_upload(lambda_context, "incoming/a.png", {"filename": quote(HOSTILE_NAME, safe="")})
    status, _, body = call(get_image(item["id"]))
    assert status == 200
    assert body["original"]["filename"] == sanitize_filename(HOSTILE_NAME) == "passwd"
    assert item["original"]["filename"] == "passwd"


def test_a_direct_uploads_key_name_comes_back_sanitised_as_the_api_would(call, lambda_context):
    item = direct_s3_upload(lambda_context, "incoming/<img src=x onerror=alert(1)>.png")
    _, _, body = call(get_image(item["id"]))
    _, _, via_api = call(
        post_images(image_bytes("PNG"), "image/png", {"filename": "<img src=x onerror=alert(1)>.png"})
    )
    assert (
        body["original"]["filename"] == via_api["original"]["filename"] == "_img src_x onerror_alert_1_.png"
    )


def test_a_record_stored_with_a_raw_filename_is_shown_sanitised(call):
    from imgpipe import aws, records

    image_id = create(call, "images", None)
    records.mark_processing(aws.table(TABLE), image_id, {"key": "k", "filename": HOSTILE_NAME})
    _, _, body = call(get_image(image_id))
    assert body["original"]["filename"] == "passwd"


# 11.12: every direct upload the API accepts reaches the function on AWS ------

LAMBDA_SYNC_REQUEST_LIMIT = 6 * 1024 * 1024  # "Request must be smaller than 6291456 bytes"


def largest_event(body: bytes, content_type: str) -> dict:
    """The event API Gateway builds for ``body`` with request line and headers at
    the HTTP API's 10240-byte quota (a long bearer token, say)."""
    event = as_user(post_images(body, content_type), sub("a" * 36))
    event["headers"]["authorization"] = "Bearer " + "x" * 9000
    return event


def test_the_largest_accepted_multipart_upload_fits_a_lambda_invoke_and_is_stored(call, monkeypatch, api):
    from imgpipe.upload_config import MAX_DIRECT_BYTES

    monkeypatch.setenv("MAX_UPLOAD_BYTES", str(MAX_DIRECT_BYTES))
    api.settings.cache_clear()
    payload, content_type = multipart(files={"file": ("big.png", padded_png(MAX_DIRECT_BYTES), "image/png")})
    event = largest_event(payload, content_type)
    assert len(json.dumps(event).encode()) < LAMBDA_SYNC_REQUEST_LIMIT
    status, _, body = call(event)
    assert status == 201
    assert body["original"]["size"] == MAX_DIRECT_BYTES


def test_a_body_just_over_the_limit_still_reaches_the_function_and_gets_its_413(call, monkeypatch, api):
    from imgpipe.upload_config import MAX_DIRECT_BODY_BYTES, MAX_DIRECT_BYTES

    monkeypatch.setenv("MAX_UPLOAD_BYTES", str(MAX_DIRECT_BYTES))
    api.settings.cache_clear()
    event = largest_event(padded_png(MAX_DIRECT_BODY_BYTES), "image/png")
    assert len(json.dumps(event).encode()) < LAMBDA_SYNC_REQUEST_LIMIT
    assert_error(call(event), "payload_too_large", contains="POST /uploads")
