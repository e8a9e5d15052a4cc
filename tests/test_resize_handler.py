"""The resize Lambda end to end against moto: S3 events in, renditions, metadata and the table out."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import random
import uuid
from urllib.parse import quote, quote_plus, unquote

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from PIL import Image

from conftest import create_pipeline_resources, load_event
from imgpipe import config_version, id_secret, keys, records
from imgpipe.errors import ConfigError, SourceNotFound, TransientError
from imgpipe.resize_config import from_env
from tests import images

UPLOADS, RESIZED, TABLE = "uploads", "resized", "images"
ENV_VARS = (
    "RENDITIONS",
    "MAX_PIXELS",
    "AVIF_SPEED",
    "MAX_ANIMATION_PIXELS",
    "MAX_SOURCE_BYTES",
    "JPEG_BACKGROUND",
    "WATERMARK_TEXT",
    "WATERMARK_KEY",
    "WATERMARK_POSITION",
    "WATERMARK_OPACITY",
    "WATERMARK_MARGIN",
    "WATERMARK_SCALE",
    "WATERMARK_MIN_SIZE",
)
DEFAULT_OUTPUTS = {f"{n}.{e}" for n in ("thumb", "medium", "large") for e in ("webp", "jpg")}
# S3 sequencers grow with each event of a key; these grow with each upload of the suite.
SEQUENCERS = (f"{n:018X}" for n in itertools.count(0x0065F2A1B2C3D4E5F6))


def tag_for(version: str) -> str:
    """The tag of ``version`` rendered with the configuration in the environment now."""
    return keys.version_tag(version, config_version.version(from_env()))


class Pipeline:
    def __init__(self, context):
        self.s3 = boto3.client("s3")
        self.table = boto3.resource("dynamodb").Table(TABLE)
        self.context = context

    def upload(self, key: str, data: bytes, metadata: dict | None = None) -> dict:
        """Put an original and return the SQS record S3 would send for it."""
        response = self.s3.put_object(Bucket=UPLOADS, Key=key, Body=data, Metadata=metadata or {})
        return self.record(key, len(data), response.get("VersionId"), sequencer=next(SEQUENCERS))

    def record(
        self,
        key: str,
        size: int,
        version_id: str | None,
        event_name: str = "ObjectCreated:Put",
        sequencer: str | None = None,
    ) -> dict:
        template = load_event("s3_put_sqs.json")["Records"][0]
        body = json.loads(template["body"])
        s3 = body["Records"][0]["s3"]
        body["Records"][0]["eventName"] = event_name
        s3["bucket"]["name"] = UPLOADS
        s3["object"]["key"] = quote_plus(key)  # as S3 and moto encode keys in notifications
        s3["object"]["size"] = size
        if version_id:
            s3["object"]["versionId"] = version_id
        else:
            s3["object"].pop("versionId", None)
        if sequencer:
            s3["object"]["sequencer"] = sequencer
        return {**template, "messageId": str(uuid.uuid4()), "body": json.dumps(body)}

    def invoke(self, *sqs_records: dict) -> dict:
        import resize_handler

        return resize_handler.handler({"Records": list(sqs_records)}, self.context)

    def outputs(self, image_id: str | None = None) -> dict[str, dict]:
        listed = self.s3.list_objects_v2(Bucket=RESIZED).get("Contents", [])
        return {o["Key"]: o for o in listed if image_id is None or o["Key"].startswith(f"{image_id}/")}

    def rendition(self, image_id: str, name: str) -> str:
        """The key of one rendition (``thumb.webp``) of the image, as its record lists it."""
        (key,) = [r["key"] for r in self.item(image_id)["renditions"] if r["key"].endswith(f"/{name}")]
        return key

    def get(self, key: str) -> tuple[dict, bytes]:
        response = self.s3.get_object(Bucket=RESIZED, Key=key)
        return response, response["Body"].read()

    def item(self, image_id: str) -> dict | None:
        return records.get(self.table, image_id)

    def image_id(self, key: str) -> str:
        """The id the deployment gives ``key``: its secret is created or read as at a cold start."""
        import resize_handler

        return resize_handler.image_id(key)


@pytest.fixture
def pipeline(aws, monkeypatch, lambda_context):
    import resize_handler

    monkeypatch.setenv("UPLOADS_BUCKET", UPLOADS)
    monkeypatch.setenv("RESIZED_BUCKET", RESIZED)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    create_pipeline_resources(UPLOADS, RESIZED, TABLE)
    resize_handler.reset()
    yield Pipeline(lambda_context)
    resize_handler.reset()


def opened(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def slow_down(operation: str = "GetObject") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        },
        operation,
    )


# --- the happy path ---


def test_direct_upload_makes_every_rendition_with_headers_metadata_and_record(pipeline):
    key = "photos/2024/My Cat+1.jpg"
    data = images.oriented_jpeg(6, 1600, 800)
    record = pipeline.upload(key, data)
    version = json.loads(record["body"])["Records"][0]["s3"]["object"]["versionId"]

    assert pipeline.invoke(record) == {"batchItemFailures": []}

    image_id = pipeline.image_id(key)
    outputs = pipeline.outputs()
    # Each version of a source, with each configuration, has its own keys, {id}/{tag}/{name}:
    # every rendition is immutable.
    tag = tag_for(version)
    assert set(outputs) == {f"{image_id}/{tag}/{name}" for name in DEFAULT_OUTPUTS}
    sizes = {"thumb": (200, 200), "medium": (800, 400), "large": (1600, 800)}
    for output_key in outputs:
        name, ext = output_key.rsplit("/", 1)[1].split(".")
        response, body = pipeline.get(output_key)
        assert response["ContentType"] == {"jpg": "image/jpeg", "webp": "image/webp"}[ext]
        assert response["CacheControl"] == "public, max-age=31536000, immutable"
        assert response["Metadata"] == {
            "source-key": quote(key, safe="/"),
            "source-version": version,
            "image-id": image_id,
            "config-version": config_version.version(from_env()),  # the rendition config that made it
        }
        im = opened(body)
        assert im.format == {"jpg": "JPEG", "webp": "WEBP"}[ext]
        assert im.size == sizes[name]
        assert not im.getexif() and b"Exif" not in body
        tl = im.convert("RGB").getpixel((im.size[0] // 4, im.size[1] // 4))
        assert all(abs(a - b) <= 24 for a, b in zip(tl, images.TOP_LEFT, strict=True)), (output_key, tl)

    item = pipeline.item(image_id)
    assert item["status"] == "done"
    assert item["config_version"] == config_version.version(from_env())
    assert item["original"] == {
        "key": key,
        "size": len(data),
        "content_type": "image/jpeg",
        "filename": "My Cat_1.jpg",  # the API's rule: keys.sanitize_filename
        "version_id": version,
        "width": 1600,
        "height": 800,
        "format": "jpeg",
    }
    assert "error" not in item
    listed = {r["key"]: r for r in item["renditions"]}
    assert set(listed) == set(outputs)
    for output_key, rendition in listed.items():
        assert rendition["bytes"] == outputs[output_key]["Size"]
        assert (rendition["width"], rendition["height"]) == sizes[rendition["name"]]
        assert rendition["format"] in ("webp", "jpeg")


@pytest.mark.parametrize(
    "key",
    [
        "with space.png",
        "ünïcødé/фото 1.png",
        "plus+sign+.png",
        "100% real.png",
        "literal%2Bpercent.png",
        "deep/a/b/c/~tilde & amp=eq?.png",
    ],
)
def test_keys_with_spaces_unicode_plus_and_percent(pipeline, key):
    record = pipeline.upload(key, images.encode(images.quadrants(300, 150), "PNG"))
    assert quote_plus(key) in record["body"]
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    outputs = pipeline.outputs(image_id)
    assert {k.rsplit("/", 1)[1] for k in outputs} == DEFAULT_OUTPUTS
    response, _ = pipeline.get(pipeline.rendition(image_id, "thumb.webp"))
    assert unquote(response["Metadata"]["source-key"]) == key
    assert pipeline.item(image_id)["original"]["key"] == key


def test_api_upload_keeps_its_record_and_filename(pipeline):
    image_id = keys.new_id()
    filename = keys.sanitize_filename("Ünïcode photo (1).png")  # as the API stores it
    key = keys.original_key(image_id, filename)
    data = images.encode(images.quadrants(1000, 500), "PNG")
    records.put_new(
        pipeline.table,
        records.new_record(
            image_id,
            "pending",
            {"key": key, "size": len(data), "content_type": "image/png", "filename": filename},
        ),
    )
    created = pipeline.item(image_id)["created_at"]
    record = pipeline.upload(key, data, {"image-id": image_id, "filename": quote(filename, safe="")})

    assert pipeline.invoke(record) == {"batchItemFailures": []}

    item = pipeline.item(image_id)
    assert item["status"] == "done"
    assert item["created_at"] == created
    assert item["original"]["filename"] == filename
    assert (item["original"]["width"], item["original"]["height"], item["original"]["format"]) == (
        1000,
        500,
        "png",
    )
    tag = tag_for(item["original"]["version_id"])
    assert {r["key"] for r in item["renditions"]} == {f"{image_id}/{tag}/{name}" for name in DEFAULT_OUTPUTS}
    response, _ = pipeline.get(pipeline.rendition(image_id, "large.webp"))
    assert response["CacheControl"] == "public, max-age=31536000, immutable"


def test_sample_put_event_from_the_events_folder(pipeline):
    event = load_event("s3_put_sqs.json")
    body = json.loads(event["Records"][0]["body"])
    obj = body["Records"][0]["s3"]["object"]
    key = unquote(obj["key"].replace("+", " "))
    assert key == "photos/2024/My Cat+1.jpg"
    put = pipeline.s3.put_object(Bucket=UPLOADS, Key=key, Body=images.oriented_jpeg(1, 800, 400))
    obj["versionId"] = put["VersionId"]
    event["Records"][0]["body"] = json.dumps(body)
    assert pipeline.invoke(*event["Records"]) == {"batchItemFailures": []}
    assert len(pipeline.outputs(pipeline.image_id(key))) == 6


def test_old_version_is_rendered_from_the_version_in_the_event(pipeline):
    key = "overwritten.png"
    first = pipeline.upload(key, images.encode(Image.new("RGB", (400, 400), (255, 0, 0)), "PNG"))
    pipeline.upload(key, images.encode(Image.new("RGB", (400, 400), (0, 0, 255)), "PNG"))
    assert pipeline.invoke(first) == {"batchItemFailures": []}
    _, body = pipeline.get(pipeline.rendition(pipeline.image_id(key), "thumb.jpg"))
    assert opened(body).getpixel((100, 100))[0] > 200  # red: the version the event named


def test_unversioned_event_reads_the_current_object(pipeline):
    key = "plain.png"
    record = pipeline.upload(key, images.encode(images.quadrants(), "PNG"))
    body = json.loads(record["body"])
    del body["Records"][0]["s3"]["object"]["versionId"]
    record["body"] = json.dumps(body)
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    response, _ = pipeline.get(pipeline.rendition(pipeline.image_id(key), "thumb.jpg"))
    assert response["Metadata"]["source-version"]  # the version S3 returned


# --- skipped events, duplicates ---


def test_s3_test_event_is_skipped(pipeline):
    assert pipeline.invoke(*load_event("s3_test_event_sqs.json")["Records"]) == {"batchItemFailures": []}
    assert pipeline.outputs() == {}


def test_events_neither_created_nor_removed_are_skipped(pipeline):
    record = pipeline.upload("x.png", images.encode(images.quadrants(), "PNG"))
    tagged = pipeline.record("x.png", 0, None, event_name="ObjectTagging:Put", sequencer=next(SEQUENCERS))
    assert pipeline.invoke(tagged) == {"batchItemFailures": []}
    assert pipeline.outputs() == {}
    assert pipeline.item(pipeline.image_id("x.png")) is None
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    assert len(pipeline.outputs()) == 6


def test_duplicate_delivery_leaves_the_same_objects(pipeline):
    record = pipeline.upload("dup/photo.jpg", images.oriented_jpeg(1))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    first = pipeline.outputs()
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    second = pipeline.outputs()
    assert set(first) == set(second) and len(second) == 6
    assert {k: v["Size"] for k, v in first.items()} == {k: v["Size"] for k, v in second.items()}
    assert pipeline.item(pipeline.image_id("dup/photo.jpg"))["status"] == "done"


def test_no_key_ever_gets_new_bytes_across_an_overwrite_and_a_config_change(pipeline, monkeypatch):
    """Renditions are cached as immutable (a year, and by the CDN, docs/cdn.md), so new bytes need new keys.

    Without a table nothing is deleted, so every key written stays listable.
    """
    import resize_handler

    monkeypatch.setenv("TABLE_NAME", "")
    key = "immutable/photo.png"
    seen: dict[str, str] = {}

    def render(record: dict) -> set[str]:
        resize_handler.reset()
        assert pipeline.invoke(record) == {"batchItemFailures": []}
        listed = {k: o["ETag"] for k, o in pipeline.outputs().items()}
        for k, etag in seen.items():
            assert listed[k] == etag, f"{k} changed its bytes"
        new = set(listed) - set(seen)
        seen.update(listed)
        return new

    first = pipeline.upload(key, images.encode(images.quadrants(), "PNG"))
    assert len(render(first)) == 6
    # A new source version under the same key: six new keys.
    second = pipeline.upload(key, images.encode(images.quadrants().rotate(90), "PNG"))
    assert len(render(second)) == 6
    # The same source version with a configuration that renders other bytes: six new keys again.
    monkeypatch.setenv("WATERMARK_TEXT", "(c) imgpipe")
    watermarked = render(second)
    assert len(watermarked) == 6
    assert {k.split("/")[1] for k in watermarked} == {tag_for(version_of(second))}
    # The same version and configuration again (a replayed message): the same keys, the same bytes.
    assert render(second) == set()


def version_of(record: dict) -> str:
    return json.loads(record["body"])["Records"][0]["s3"]["object"]["versionId"]


# --- failures ---


def test_transient_s3_failure_fails_only_that_message(pipeline, monkeypatch):
    from imgpipe import aws

    good = pipeline.upload("good.png", images.encode(images.quadrants(), "PNG"))
    bad = pipeline.upload("throttled.png", images.encode(images.quadrants(), "PNG"))
    client = aws.client("s3")
    real_get = client.get_object

    def get_object(**kwargs):
        if kwargs["Key"] == "throttled.png":
            raise slow_down()
        return real_get(**kwargs)

    monkeypatch.setattr(client, "get_object", get_object)
    response = pipeline.invoke(good, bad)
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    assert len(pipeline.outputs(pipeline.image_id("good.png"))) == 6
    assert pipeline.outputs(pipeline.image_id("throttled.png")) == {}
    assert pipeline.item(pipeline.image_id("throttled.png")) is None  # nothing recorded: it will be retried

    monkeypatch.setattr(client, "get_object", real_get)  # the retry succeeds
    assert pipeline.invoke(bad) == {"batchItemFailures": []}
    assert len(pipeline.outputs(pipeline.image_id("throttled.png"))) == 6


def test_transient_failure_writing_outputs_or_table_is_retried(pipeline, monkeypatch):
    from imgpipe import aws

    record = pipeline.upload("later.png", images.encode(images.quadrants(), "PNG"))
    client = aws.client("s3")
    monkeypatch.setattr(client, "put_object", lambda **kw: (_ for _ in ()).throw(slow_down("PutObject")))
    assert pipeline.invoke(record) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    monkeypatch.undo()


def test_dynamodb_throttling_is_retried(pipeline, monkeypatch):
    from imgpipe import aws

    record = pipeline.upload("busy.png", images.encode(images.quadrants(), "PNG"))
    table = aws.table(TABLE)
    error = ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "UpdateItem",
    )
    monkeypatch.setattr(table, "update_item", lambda **kw: (_ for _ in ()).throw(error))
    assert pipeline.invoke(record) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}


def test_unexpected_errors_fail_the_message_for_the_dlq(pipeline, monkeypatch):
    from imgpipe import aws

    record = pipeline.upload("denied.png", images.encode(images.quadrants(), "PNG"))
    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject"
    )
    monkeypatch.setattr(aws.client("s3"), "get_object", lambda **kw: (_ for _ in ()).throw(denied))
    assert pipeline.invoke(record) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (random.Random(1).randbytes(4096), "not_an_image"),
        (b"", "not_an_image"),
        (images.truncated_jpeg(), "corrupt_image"),
        (images.png_claiming(40000, 40000), "too_many_pixels"),
    ],
    ids=["random", "empty", "truncated", "pixel-bomb"],
)
def test_bad_images_are_recorded_and_not_retried(pipeline, data, code):
    good = pipeline.upload("fine.png", images.encode(images.quadrants(), "PNG"))
    bad = pipeline.upload("bad/file.jpg", data)
    assert pipeline.invoke(bad, good) == {"batchItemFailures": []}
    image_id = pipeline.image_id("bad/file.jpg")
    item = pipeline.item(image_id)
    assert item["status"] == "failed"
    assert item["error"]["code"] == code
    assert item["error"]["message"]
    assert "renditions" not in item
    assert pipeline.outputs(image_id) == {}
    assert len(pipeline.outputs(pipeline.image_id("fine.png"))) == 6


def test_source_over_the_byte_limit_is_refused_before_download(pipeline, monkeypatch):
    import resize_handler

    monkeypatch.setenv("MAX_SOURCE_BYTES", "1000")
    resize_handler.reset()
    big = images.encode(images.quadrants(), "PNG") + b"\0" * 1000
    record = pipeline.upload("big/photo.png", big)
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    item = pipeline.item(pipeline.image_id("big/photo.png"))
    assert item["status"] == "failed"
    assert item["error"]["code"] == "source_too_large"
    assert "MAX_SOURCE_BYTES" in item["error"]["message"]
    assert item["original"]["size"] == len(big)
    assert pipeline.outputs(pipeline.image_id("big/photo.png")) == {}


def test_missing_source_is_recorded_and_keeps_the_api_filename(pipeline):
    image_id = keys.new_id()
    key = keys.original_key(image_id, "gone.jpg")
    records.put_new(
        pipeline.table,
        records.new_record(
            image_id, "pending", {"key": key, "filename": "gone.jpg", "content_type": "image/jpeg"}
        ),
    )
    record = pipeline.record(key, 1234, None)
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    item = pipeline.item(image_id)
    assert item["status"] == "failed"
    assert item["error"]["code"] == "source_not_found"
    assert item["original"]["filename"] == "gone.jpg"


def test_malformed_message_is_dropped(pipeline):
    record = pipeline.record("x.png", 1, None)
    record["body"] = "not json"
    assert pipeline.invoke(record) == {"batchItemFailures": []}


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (slow_down(), TransientError),
        (
            ClientError(
                {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject"
            ),
            TransientError,
        ),
        (
            ClientError({"Error": {"Code": "X"}, "ResponseMetadata": {"HTTPStatusCode": 502}}, "GetObject"),
            TransientError,
        ),
        (ClientError({"Error": {"Code": "ThrottlingException"}}, "UpdateItem"), TransientError),
        (ClientError({"Error": {"Code": "RequestTimeout"}}, "GetObject"), TransientError),
        (EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"), TransientError),
        (ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"), TransientError),
        (ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject"), SourceNotFound),
        (ClientError({"Error": {"Code": "NoSuchVersion"}}, "GetObject"), SourceNotFound),
    ],
)
def test_aws_errors_are_classified(exc, expected):
    from imgpipe import aws

    assert isinstance(aws.classify(exc, "get"), expected)


def test_unknown_aws_errors_are_left_alone():
    from imgpipe import aws

    exc = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject"
    )
    assert aws.classify(exc, "get") is exc


# --- direct-upload ids: keyed by the deployment's secret (docs/ids.md) ---


def plain_hash_id(key: str) -> str:
    """An unkeyed hash of the key: an id anyone who guessed the key could compute (what ids must not be)."""
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode()[:22]


def rendition_image_ids(pipeline) -> set[str]:
    """The ``image-id`` metadata of every rendition in the resized bucket."""
    return {
        pipeline.s3.head_object(Bucket=RESIZED, Key=key)["Metadata"]["image-id"] for key in pipeline.outputs()
    }


def test_a_direct_upload_id_cannot_be_computed_from_its_key(pipeline):
    key = "photos/2026/cat.jpg"
    assert pipeline.invoke(pipeline.upload(key, images.encode(images.quadrants(), "JPEG"))) == {
        "batchItemFailures": []
    }
    (image_id,) = rendition_image_ids(pipeline)
    assert keys.is_valid_id(image_id)
    assert image_id != plain_hash_id(key)
    assert pipeline.item(plain_hash_id(key)) is None
    assert pipeline.item(image_id)["original"]["key"] == key


def test_two_deployments_give_one_key_two_ids(pipeline, monkeypatch):
    import resize_handler

    first = pipeline.image_id("photos/2026/cat.jpg")
    create_pipeline_resources("uploads-2", "resized-2", "images-2")  # a second deployment, its own table
    monkeypatch.setenv("TABLE_NAME", "images-2")
    resize_handler.reset()
    assert pipeline.image_id("photos/2026/cat.jpg") != first


def test_one_deployment_keeps_a_key_on_one_id_across_cold_starts(pipeline):
    """Newest version wins per key (docs/ordering.md) only if each cold start derives the same id."""
    import resize_handler

    key = "photos/overwritten.png"
    assert pipeline.invoke(pipeline.upload(key, images.encode(images.quadrants(), "PNG"))) == {
        "batchItemFailures": []
    }
    first = pipeline.image_id(key)
    resize_handler.reset()  # a new execution environment: the secret is read again, not made again
    newer = pipeline.upload(key, images.encode(images.quadrants(300, 100), "PNG"))
    assert pipeline.invoke(newer) == {"batchItemFailures": []}
    assert pipeline.image_id(key) == first
    item = pipeline.item(first)
    assert item["status"] == "done" and item["original"]["width"] == 300
    assert rendition_image_ids(pipeline) == {first}


def test_cold_starts_racing_to_create_the_secret_agree_on_one(pipeline):
    """The put is conditional (attribute_not_exists): a second writer gets the first one's value."""
    table = boto3.resource("dynamodb").Table(TABLE)
    first = id_secret.load(table)
    assert len(first) == id_secret.SECRET_BYTES
    table.delete_item(Key={"id": id_secret.ITEM_ID})
    table.put_item(Item={"id": id_secret.ITEM_ID, "secret": first})
    assert id_secret.load(table) == first
    assert not keys.is_valid_id(id_secret.ITEM_ID)  # GET /images/{id} refuses it as malformed


def test_the_id_secret_never_appears_in_the_logs(pipeline, capsys, monkeypatch):
    import resize_handler

    log = io.StringIO()
    monkeypatch.setattr(resize_handler.logger.registered_handler, "stream", log)
    ok = pipeline.upload("logged/secret.png", images.encode(images.quadrants(), "PNG"))
    bad = pipeline.upload("logged/bad.png", b"not an image")
    capsys.readouterr()
    pipeline.invoke(ok, bad)
    out = log.getvalue() + "".join(capsys.readouterr())
    secret = resize_handler.setup().id_secret
    assert "image processed" in out
    for form in (
        secret.hex(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        repr(secret),
    ):
        assert form not in out
    assert secret.hex() not in repr(resize_handler.setup())


# --- table optional, logs and metrics ---


def test_works_without_a_table(pipeline, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "")
    import resize_handler

    resize_handler.reset()
    record = pipeline.upload("no-table.png", images.encode(images.quadrants(), "PNG"))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    assert len(pipeline.outputs()) == 6
    assert pipeline.item(pipeline.image_id("no-table.png")) is None


def test_one_json_log_line_per_image_and_emf_metrics(pipeline, capsys, monkeypatch):
    import resize_handler

    # Powertools' handler holds the stdout it found at import; point it at a buffer.
    log = io.StringIO()
    monkeypatch.setattr(resize_handler.logger.registered_handler, "stream", log)
    ok = pipeline.upload("logged.png", images.encode(images.quadrants(), "PNG"))
    bad = pipeline.upload("bad.png", b"not an image at all")
    capsys.readouterr()
    pipeline.invoke(ok, bad)
    out = log.getvalue() + capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    per_image = [line for line in lines if line.get("outcome") in ("done", "failed")]
    assert len(per_image) == 2
    done = next(line for line in per_image if line["outcome"] == "done")
    assert done["key"] == "logged.png"
    assert done["bytes"] > 0 and done["width"] == 400 and done["height"] == 200
    assert done["duration_ms"] >= 0 and done["level"] == "INFO"
    # where the image's time went, step by step, for finding what is slow (docs/performance.md)
    stages = done["stages_ms"]
    assert list(stages) == ["read_record", "fetch", "record_processing", "render", "store", "record_done"]
    assert all(ms >= 0 for ms in stages.values())
    assert sum(stages.values()) <= done["duration_ms"] + 0.1 * len(stages)  # each rounded to 0.1 ms
    failed = next(line for line in per_image if line["outcome"] == "failed")
    assert failed["key"] == "bad.png" and failed["error_code"] == "not_an_image"
    emf = [line for line in lines if "_aws" in line]
    assert len(emf) == 1
    names = {m["Name"] for m in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"ImagesProcessed", "ImagesFailed", "SourceBytes", "ProcessingMs"} <= names
    assert emf[0]["ImagesProcessed"] == [1.0] and emf[0]["ImagesFailed"] == [1.0]


# --- watermark from the uploads bucket ---


def test_watermark_image_from_the_uploads_bucket(pipeline, monkeypatch):
    mark = images.encode(Image.new("RGBA", (100, 100), (255, 0, 0, 255)), "PNG")
    mark_record = pipeline.upload("brand/mark.png", mark)
    monkeypatch.setenv("WATERMARK_KEY", "brand/mark.png")
    monkeypatch.setenv("WATERMARK_OPACITY", "1")
    monkeypatch.setenv("WATERMARK_POSITION", "top-left")
    import resize_handler

    resize_handler.reset()
    photo = pipeline.upload("grey.png", images.encode(Image.new("RGB", (1600, 1200), (128, 128, 128)), "PNG"))
    assert pipeline.invoke(mark_record, photo) == {"batchItemFailures": []}
    assert pipeline.outputs(pipeline.image_id("brand/mark.png")) == {}  # the watermark itself is skipped
    _, large = pipeline.get(pipeline.rendition(pipeline.image_id("grey.png"), "large.webp"))
    im = opened(large).convert("RGB")
    assert im.getpixel((24 + 50, 24 + 50))[0] > 230  # red mark, 2% margin of 1200
    assert im.getpixel((1500, 1100)) == pytest.approx((128, 128, 128), abs=3)
    _, thumb = pipeline.get(pipeline.rendition(pipeline.image_id("grey.png"), "thumb.webp"))
    assert opened(thumb).convert("RGB").getpixel((5, 5)) == pytest.approx((128, 128, 128), abs=3)


def test_missing_watermark_object_is_a_config_error(pipeline, monkeypatch):
    monkeypatch.setenv("WATERMARK_KEY", "brand/none.png")
    record = pipeline.upload("x.png", images.encode(images.quadrants(), "PNG"))
    with pytest.raises(ConfigError, match="WATERMARK_KEY"):
        pipeline.invoke(record)


def test_text_watermark_from_the_environment(pipeline, monkeypatch):
    monkeypatch.setenv("WATERMARK_TEXT", "© Example")
    photo = pipeline.upload("text.png", images.encode(Image.new("RGB", (1600, 1200), (128, 128, 128)), "PNG"))
    assert pipeline.invoke(photo) == {"batchItemFailures": []}
    _, large = pipeline.get(pipeline.rendition(pipeline.image_id("text.png"), "large.webp"))
    im = opened(large).convert("L")
    corner = im.crop((1200, 1000, 1600, 1200)).getextrema()
    assert corner[1] - corner[0] > 60  # text strokes in the bottom-right corner
    assert im.crop((0, 0, 400, 200)).getextrema()[1] - im.crop((0, 0, 400, 200)).getextrema()[0] <= 6


# --- formats and animation (docs/formats.md) ---


def test_avif_and_animated_renditions_are_stored_and_recorded_like_any_other(pipeline, monkeypatch):
    renditions = [
        {"name": "hero", "width": 120, "height": 90, "fit": "cover", "formats": ["avif", "webp", "jpeg"]},
    ]
    monkeypatch.setenv("RENDITIONS", json.dumps(renditions))
    monkeypatch.setenv("AVIF_SPEED", "10")
    data = images.animation(images.moving_square(6), "GIF", [40, 80, 120, 160, 200, 240], loop=0)
    assert pipeline.invoke(pipeline.upload("anim.gif", data)) == {"batchItemFailures": []}
    item = pipeline.item(pipeline.image_id("anim.gif"))
    assert item["status"] == "done" and item["original"]["format"] == "gif"
    listed = {r["format"]: r for r in item["renditions"]}
    types = {"avif": "image/avif", "webp": "image/webp", "jpeg": "image/jpeg"}
    for fmt, frames in (("avif", 6), ("webp", 6), ("jpeg", 1)):
        rendition = listed[fmt]
        response, body = pipeline.get(rendition["key"])
        assert response["ContentType"] == types[fmt]
        assert rendition["bytes"] == len(body)
        assert rendition.get("frames", 1) == frames  # recorded for animated renditions only
        im = Image.open(io.BytesIO(body))
        assert im.size == (rendition["width"], rendition["height"]) == (120, 90)
        assert getattr(im, "n_frames", 1) == frames, fmt
    import resize_handler

    options = resize_handler.setup().options  # the settings reach the engine
    assert (options.avif_speed, options.max_animation_pixels) == (10, 50_000_000)


@pytest.mark.parametrize(
    ("memory_mb", "threads"), [(128, 1), (1536, 1), (1769, 1), (1770, 2), (3538, 2), (10240, 4)]
)
def test_the_engine_runs_one_thread_per_vcpu_of_credit_the_memory_buys(monkeypatch, memory_mb, threads):
    # AWS: at 1,769 MB a function has the equivalent of one vCPU (one vCPU-second of credits per
    # second), in proportion to memory; a second thread below that costs CPU and saves no time.
    import resize_handler

    monkeypatch.setenv("RESIZED_BUCKET", "r")
    monkeypatch.setenv("UPLOADS_BUCKET", "u")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(memory_mb))
    monkeypatch.setattr("os.cpu_count", lambda: 6)  # Lambda shows 6 vCPUs at 10,240 MB
    resize_handler.reset()
    try:
        assert resize_handler.setup().options.threads == threads
    finally:
        resize_handler.reset()


# --- configuration ---


BASE_ENV = {"RESIZED_BUCKET": "r", "UPLOADS_BUCKET": "u"}


def test_configuration_defaults():
    config = from_env(BASE_ENV)
    assert config.max_pixels == 100_000_000
    assert config.max_source_bytes == 100 * 1024 * 1024
    assert config.background == (255, 255, 255)
    assert config.table_name is None
    assert not config.watermark_enabled
    assert (config.watermark_position, config.watermark_opacity, config.watermark_margin) == (
        "bottom-right",
        0.5,
        0.02,
    )
    assert (config.watermark_scale, config.watermark_min_size) == (0.25, 300)
    assert [r.name for r in config.renditions] == ["thumb", "medium", "large"]


def test_configuration_as_terraform_passes_it():
    env = {
        **BASE_ENV,
        "TABLE_NAME": "t",
        "RENDITIONS": json.dumps(
            [{"name": "hero", "width": 1200, "height": 600, "fit": "cover", "formats": ["avif"]}]
        ),
        "MAX_PIXELS": "50000000",
        "JPEG_BACKGROUND": "#0a0B0c",
        "WATERMARK_TEXT": "",
        "WATERMARK_KEY": "",
        "WATERMARK_POSITION": "center",
        "WATERMARK_OPACITY": "0.3",
        "WATERMARK_MARGIN": "0",
        "WATERMARK_SCALE": "1",
        "WATERMARK_MIN_SIZE": "0",
    }
    config = from_env(env)
    assert config.max_pixels == 50_000_000 and config.background == (10, 11, 12)
    assert config.renditions[0].name == "hero" and not config.watermark_enabled
    assert (config.watermark_position, config.watermark_opacity, config.watermark_scale) == (
        "center",
        0.3,
        1.0,
    )


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"UPLOADS_BUCKET": "u"}, "RESIZED_BUCKET"),
        ({"MAX_PIXELS": "lots"}, "MAX_PIXELS: 'lots'"),
        ({"MAX_PIXELS": "0"}, "MAX_PIXELS: '0'"),
        ({"MAX_PIXELS": "1.5"}, "MAX_PIXELS: '1.5'"),
        ({"MAX_SOURCE_BYTES": "0"}, "MAX_SOURCE_BYTES: '0'"),
        ({"JPEG_BACKGROUND": "white"}, "JPEG_BACKGROUND: 'white'"),
        ({"WATERMARK_POSITION": "middle"}, "WATERMARK_POSITION: 'middle'"),
        ({"WATERMARK_OPACITY": "2"}, "WATERMARK_OPACITY: '2'"),
        ({"WATERMARK_OPACITY": "half"}, "WATERMARK_OPACITY: 'half'"),
        ({"WATERMARK_MARGIN": "0.5"}, "WATERMARK_MARGIN: '0.5'"),
        ({"WATERMARK_SCALE": "0"}, "WATERMARK_SCALE: '0'"),
        ({"WATERMARK_SCALE": "nan"}, "WATERMARK_SCALE: 'nan'"),
        ({"WATERMARK_MIN_SIZE": "-1"}, "WATERMARK_MIN_SIZE: '-1'"),
        ({"WATERMARK_TEXT": "a", "WATERMARK_KEY": "b.png"}, "WATERMARK_TEXT"),
        ({"RENDITIONS": '[{"name": "x", "width": 0, "height": 1}]'}, "RENDITIONS[0].width: 0"),
    ],
)
def test_bad_configuration_names_the_variable_and_value(env, needle):
    merged = {**BASE_ENV, **env}
    if "RESIZED_BUCKET" not in env and needle == "RESIZED_BUCKET":
        merged.pop("RESIZED_BUCKET")
    with pytest.raises(ConfigError) as err:
        from_env(merged)
    assert needle in str(err.value)


def test_watermark_key_needs_the_uploads_bucket():
    with pytest.raises(ConfigError, match=r"WATERMARK_KEY: 'm\.png' needs UPLOADS_BUCKET"):
        from_env({"RESIZED_BUCKET": "r", "WATERMARK_KEY": "m.png"})


def test_bad_configuration_fails_the_whole_invocation(pipeline, monkeypatch):
    monkeypatch.setenv("MAX_PIXELS", "many")
    record = pipeline.upload("x.png", images.encode(images.quadrants(), "PNG"))
    with pytest.raises(ConfigError, match="MAX_PIXELS: 'many'"):
        pipeline.invoke(record)
    assert pipeline.outputs() == {}


# --- event parsing ---


def test_s3_event_parsing():
    from imgpipe import s3_events

    body = load_event("s3_put_sqs.json")["Records"][0]["body"]
    (obj,) = s3_events.parse_body(body)
    assert obj.bucket == "uploads"
    assert obj.key == "photos/2024/My Cat+1.jpg"  # "My+Cat%2B1.jpg": + is a space, %2B a plus
    assert obj.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert obj.size == 24680 and obj.created
    assert s3_events.parse_body(load_event("s3_test_event_sqs.json")["Records"][0]["body"]) == []
    (removed,) = s3_events.parse_body(load_event("s3_delete_sqs.json")["Records"][0]["body"])
    assert not removed.created and removed.removed and not removed.delete_marker
    slash = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Post",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": "a%2Fb%2Fc+d.png"}},
                }
            ]
        }
    )
    assert s3_events.parse_body(slash)[0].key == "a/b/c d.png"


@pytest.mark.parametrize("body", ["not json", "[]", '{"Records": "x"}', '{"Records": [{"s3": {}}]}'])
def test_malformed_bodies_are_bad_events(body):
    from imgpipe import s3_events
    from imgpipe.errors import PermanentError

    with pytest.raises(PermanentError) as err:
        s3_events.parse_body(body)
    assert err.value.code == "bad_event"
