"""Newest version wins, an API image keeps its first original, and other events that must not change an image.

S3 delivers event notifications at least once and in no particular order; the
``sequencer`` of two events of one key says which happened later ("first right
pad the shorter value with zeros, and then do a lexicographical comparison",
Amazon S3 User Guide, "Event message structure"). See docs/ordering.md.
"""

from __future__ import annotations

import io
import json
from urllib.parse import unquote

import pytest
from PIL import Image

from imgpipe import keys, ordering, records, s3_events
from tests import images
from tests import test_resize_handler as base
from tests.test_resize_handler import DEFAULT_OUTPUTS, opened

pipeline = base.pipeline  # the resize handler tests' fixture: moto, the buckets, the table

RED, BLUE = (220, 20, 20), (20, 20, 220)
# Of different lengths, as S3's may be: right-padded, the shorter is the later one.
OLDER_SEQUENCER, NEWER_SEQUENCER = "0065F2A1B2C3D4E5F6A0", "0065F2A1B2C3D4E5F7"


def png(colour: tuple[int, int, int]) -> bytes:
    return images.encode(Image.new("RGB", (400, 300), colour), "PNG")


def versions(pipeline, key: str) -> tuple[dict, dict]:
    """Two versions of ``key`` (red, then blue) and their events, sequenced as S3 would."""
    old = pipeline.upload(key, png(RED))
    new = pipeline.upload(key, png(BLUE))
    return with_sequencer(old, OLDER_SEQUENCER), with_sequencer(new, NEWER_SEQUENCER)


def with_sequencer(record: dict, sequencer: str) -> dict:
    body = json.loads(record["body"])
    body["Records"][0]["s3"]["object"]["sequencer"] = sequencer
    return {**record, "body": json.dumps(body)}


def version_of(record: dict) -> str:
    return json.loads(record["body"])["Records"][0]["s3"]["object"]["versionId"]


def tag_of(record: dict) -> str:
    return base.tag_for(version_of(record))


@pytest.fixture
def outcomes(monkeypatch):
    """The per-image outcomes the resize function logs, in order."""
    import resize_handler

    stream = io.StringIO()
    # Powertools' handler holds the stdout it found at import; point it at a buffer.
    monkeypatch.setattr(resize_handler.logger.registered_handler, "stream", stream)

    def read() -> list[str]:
        lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
        return [line["outcome"] for line in lines if "outcome" in line]

    return read


@pytest.fixture
def calls(monkeypatch):
    """Counts of the S3 reads and writes the resize function makes."""
    from imgpipe import aws

    client = aws.client("s3")
    counts = {"get_object": 0, "put_object": 0, "delete_object": 0}

    def counting(name):
        real = getattr(client, name)

        def call(**kwargs):
            counts[name] += 1
            return real(**kwargs)

        return call

    for name in counts:
        monkeypatch.setattr(client, name, counting(name))
    return counts


def assert_newer_version_won(pipeline, key: str, new: dict) -> None:
    image_id = pipeline.image_id(key)
    item = pipeline.item(image_id)
    assert item["status"] == "done"
    assert item["original"]["version_id"] == version_of(new)
    tag = tag_of(new)
    assert {r["key"] for r in item["renditions"]} == {f"{image_id}/{tag}/{n}" for n in DEFAULT_OUTPUTS}
    assert set(pipeline.outputs(image_id)) == {r["key"] for r in item["renditions"]}  # nothing older left
    _, body = pipeline.get(pipeline.rendition(image_id, "thumb.jpg"))
    assert opened(body).getpixel((100, 100))[2] > 200  # blue: the newer version


# --- newest version wins ---


@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_two_versions_in_either_order_end_with_the_newer_versions_renditions_and_record(
    pipeline, outcomes, order
):
    key = "photos/overwritten twice.png"
    old, new = versions(pipeline, key)
    events = [old, new] if order == "older first" else [new, old]
    for event in events:
        assert pipeline.invoke(event) == {"batchItemFailures": []}
    assert_newer_version_won(pipeline, key, new)
    assert outcomes() == (["done", "done"] if order == "older first" else ["done", "superseded"])


def test_an_old_event_after_the_new_one_is_done_renders_nothing_and_changes_nothing(
    pipeline, outcomes, calls, capsys
):
    key = "late.png"
    old, new = versions(pipeline, key)
    assert pipeline.invoke(new) == {"batchItemFailures": []}
    before = pipeline.item(pipeline.image_id(key))
    calls.update(get_object=0, put_object=0)
    capsys.readouterr()

    assert pipeline.invoke(old) == {"batchItemFailures": []}

    assert calls["get_object"] == calls["put_object"] == 0  # not even fetched
    assert pipeline.item(pipeline.image_id(key)) == before
    assert_newer_version_won(pipeline, key, new)
    assert outcomes()[-1] == "superseded"
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["ImagesSuperseded"] == [1.0]


def test_older_render_finishing_after_the_newer_is_done_leaves_the_newer_and_deletes_its_own(
    pipeline, outcomes, monkeypatch
):
    """The race the conditional write closes: both read an empty record, the older writes last."""
    import resize_handler

    key = "race.png"
    old, new = versions(pipeline, key)
    real_mark_done = records.mark_done
    interleaved = []

    def mark_done(table, image_id, original, renditions, **kwargs):
        if not interleaved:  # the older version, its renditions written: let the newer run to done
            interleaved.append(renditions)
            (obj,) = s3_events.parse_body(new["body"])
            assert resize_handler.process_object(obj, resize_handler.setup()) == "done"
        return real_mark_done(table, image_id, original, renditions, **kwargs)

    monkeypatch.setattr(records, "mark_done", mark_done)
    assert pipeline.invoke(old) == {"batchItemFailures": []}

    (older_renditions,) = interleaved
    assert {r["key"].split("/")[1] for r in older_renditions} == {tag_of(old)}
    assert_newer_version_won(pipeline, key, new)  # and the older's renditions are gone
    assert outcomes() == ["done", "superseded"]


def test_a_newer_version_that_fails_removes_the_older_renditions(pipeline):
    key = "then-broken.png"
    good = pipeline.upload(key, png(RED))
    assert pipeline.invoke(good) == {"batchItemFailures": []}
    broken = pipeline.upload(key, b"not an image any more")
    assert pipeline.invoke(broken) == {"batchItemFailures": []}
    item = pipeline.item(pipeline.image_id(key))
    assert item["status"] == "failed" and item["error"]["code"] == "not_an_image"
    assert item["original"]["version_id"] == version_of(broken)
    assert pipeline.outputs(pipeline.image_id(key)) == {}  # no rendition of the older version is left


def test_a_duplicate_delivery_of_a_done_version_renders_once(pipeline, outcomes, calls):
    """The record shows this version done under the current rendition config: ``current``
    (docs/config-version.md), a read and no render."""
    record = pipeline.upload("dup/once.png", png(RED))
    again = {**record, "messageId": "another-delivery-of-the-same-event"}
    assert pipeline.invoke(record, again) == {"batchItemFailures": []}
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    assert calls["get_object"] == 1
    assert calls["put_object"] == len(DEFAULT_OUTPUTS)
    assert outcomes() == ["done", "current", "current"]
    assert len(pipeline.outputs(pipeline.image_id("dup/once.png"))) == len(DEFAULT_OUTPUTS)


def test_a_duplicate_that_fails_while_the_same_version_is_done_leaves_it_done(
    pipeline, outcomes, monkeypatch
):
    """Two deliveries of one version render at once; one is done, then the other fails (a deadline, say)."""
    import resize_handler
    from imgpipe.errors import CorruptImage

    key = "dup/flaky.png"
    record = pipeline.upload(key, png(RED))
    (obj,) = s3_events.parse_body(record["body"])
    real_render = resize_handler._render  # the render step (its child process cannot run a test's closure)

    def render(*args, **kwargs):
        monkeypatch.setattr(resize_handler, "_render", real_render)
        assert resize_handler.process_object(obj, resize_handler.setup()) == "done"
        raise CorruptImage("this delivery failed")

    monkeypatch.setattr(resize_handler, "_render", render)
    assert pipeline.invoke(record) == {"batchItemFailures": []}

    item = pipeline.item(pipeline.image_id(key))
    assert item["status"] == "done" and "error" not in item
    assert set(pipeline.outputs(pipeline.image_id(key))) == {r["key"] for r in item["renditions"]}
    assert len(item["renditions"]) == len(DEFAULT_OUTPUTS)
    assert outcomes() == ["done", "current"]  # the other delivery made the image current


# --- an API image keeps its first original ---


def api_image(pipeline, filename: str = "mine.png") -> tuple[str, str]:
    """An image id and key as the upload API records them before the upload."""
    image_id = keys.new_id()
    key = keys.original_key(image_id, filename)
    records.put_new(
        pipeline.table,
        records.new_record(
            image_id, "pending", {"key": key, "filename": filename, "content_type": "image/png"}
        ),
    )
    return image_id, key


def test_api_image_refuses_an_object_under_another_name_before_and_after_it_is_processed(
    pipeline, outcomes, capsys
):
    image_id, key = api_image(pipeline)
    intruder = f"originals/{image_id}/not-mine.png"
    assert pipeline.invoke(pipeline.upload(intruder, png(BLUE))) == {"batchItemFailures": []}
    assert pipeline.item(image_id)["status"] == "pending"
    assert pipeline.outputs(image_id) == {}

    mine = pipeline.upload(key, png(RED), {"image-id": image_id, "filename": "mine.png"})
    assert pipeline.invoke(mine) == {"batchItemFailures": []}
    done = pipeline.item(image_id)
    served = {k: v["ETag"] for k, v in pipeline.outputs(image_id).items()}
    assert pipeline.invoke(pipeline.upload(intruder, png(BLUE))) == {"batchItemFailures": []}

    assert pipeline.item(image_id) == done
    assert done["original"]["key"] == key
    assert {k: v["ETag"] for k, v in pipeline.outputs(image_id).items()} == served
    assert outcomes() == ["refused", "done", "refused"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert sum(doc.get("ImagesRefused", [0])[0] for doc in emf) == 2


def test_api_image_refuses_a_second_version_of_its_key(pipeline, outcomes):
    image_id, key = api_image(pipeline)
    first = pipeline.upload(key, png(RED), {"image-id": image_id, "filename": "mine.png"})
    assert pipeline.invoke(first) == {"batchItemFailures": []}
    done = pipeline.item(image_id)
    served = {k: v["ETag"] for k, v in pipeline.outputs(image_id).items()}

    # A presigned POST form can be used again until it expires: same key, a new version.
    second = pipeline.upload(key, png(BLUE), {"image-id": image_id, "filename": "mine.png"})
    assert pipeline.invoke(second) == {"batchItemFailures": []}

    assert pipeline.item(image_id) == done
    assert {k: v["ETag"] for k, v in pipeline.outputs(image_id).items()} == served
    _, body = pipeline.get(pipeline.rendition(image_id, "thumb.jpg"))
    assert opened(body).getpixel((100, 100))[0] > 200  # still the first (red) original
    assert outcomes() == ["done", "refused"]


def test_a_key_outside_the_api_layout_keeps_newest_version_wins(pipeline):
    key = f"originals/{keys.new_id()}/nested/not-the-api-layout.png"
    old, new = versions(pipeline, key)
    for event in (old, new):
        assert pipeline.invoke(event) == {"batchItemFailures": []}
    assert_newer_version_won(pipeline, key, new)


# --- deletes follow the original ---
# AWS, "Supported event types" (Amazon S3 User Guide): in a versioned bucket a DELETE without a
# version id creates a delete marker (s3:ObjectRemoved:DeleteMarkerCreated, whose versionId is the
# marker's), and a DELETE with a version id removes that version for good (s3:ObjectRemoved:Delete).
# Both carry a sequencer, ordered with the created events of the same key.


def delete_marker(pipeline, key: str) -> dict:
    """A DELETE without a version id, and the event S3 sends for it."""
    response = pipeline.s3.delete_object(Bucket=base.UPLOADS, Key=key)
    assert response["DeleteMarker"]
    return pipeline.record(
        key, 0, response["VersionId"], "ObjectRemoved:DeleteMarkerCreated", next(base.SEQUENCERS)
    )


def version_deleted(pipeline, key: str, created: dict) -> dict:
    """A DELETE of the version ``created`` announced, and the event S3 sends for it."""
    version = version_of(created)
    pipeline.s3.delete_object(Bucket=base.UPLOADS, Key=key, VersionId=version)
    return pipeline.record(key, 0, version, "ObjectRemoved:Delete", next(base.SEQUENCERS))


def assert_deleted(pipeline, image_id: str) -> dict:
    item = pipeline.item(image_id)
    assert item["status"] == "deleted"
    assert "renditions" not in item
    assert pipeline.outputs(image_id) == {}
    return item


def test_a_delete_marker_deletes_the_renditions_and_a_late_copy_of_the_created_event_renders_nothing(
    pipeline, outcomes, calls
):
    key = "photos/deleted later.png"
    created = with_sequencer(pipeline.upload(key, png(RED)), OLDER_SEQUENCER)
    assert pipeline.invoke(created) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    assert len(pipeline.outputs(image_id)) == 6

    removed = with_sequencer(delete_marker(pipeline, key), NEWER_SEQUENCER)
    assert pipeline.invoke(removed) == {"batchItemFailures": []}
    item = assert_deleted(pipeline, image_id)
    assert item["sequencer"] == ordering.padded(NEWER_SEQUENCER)  # the tombstone keeps its place in order

    calls.update(get_object=0, put_object=0)
    assert pipeline.invoke(created) == {"batchItemFailures": []}  # S3 delivers at least once
    assert calls["get_object"] == calls["put_object"] == 0
    assert_deleted(pipeline, image_id)
    assert pipeline.invoke(removed) == {"batchItemFailures": []}
    assert outcomes() == ["done", "deleted", "superseded", "duplicate"]


def test_a_delete_marker_delivered_before_the_created_event_leaves_a_tombstone(pipeline, outcomes, calls):
    key = "overtaken.png"
    created = with_sequencer(pipeline.upload(key, png(RED)), OLDER_SEQUENCER)
    removed = with_sequencer(delete_marker(pipeline, key), NEWER_SEQUENCER)
    assert pipeline.invoke(removed) == {"batchItemFailures": []}
    assert pipeline.invoke(created) == {"batchItemFailures": []}
    assert calls["get_object"] == calls["put_object"] == 0  # a deleted version is never rendered
    assert_deleted(pipeline, pipeline.image_id(key))
    assert outcomes() == ["deleted", "superseded"]


def test_a_delete_marker_older_than_the_recorded_version_changes_nothing(pipeline, outcomes):
    key = "put again after a delete.png"
    pipeline.upload(key, png(RED))
    removed = with_sequencer(delete_marker(pipeline, key), OLDER_SEQUENCER)
    new = with_sequencer(pipeline.upload(key, png(BLUE)), NEWER_SEQUENCER)
    assert pipeline.invoke(new) == {"batchItemFailures": []}
    assert pipeline.invoke(removed) == {"batchItemFailures": []}
    assert_newer_version_won(pipeline, key, new)
    assert outcomes() == ["done", "superseded"]


def test_deleting_an_older_version_changes_nothing_and_deleting_the_recorded_one_deletes_the_image(
    pipeline, outcomes
):
    key = "versions/deleted one by one.png"
    old, new = versions(pipeline, key)
    for event in (old, new):
        assert pipeline.invoke(event) == {"batchItemFailures": []}
    served = {k: v["ETag"] for k, v in pipeline.outputs(pipeline.image_id(key)).items()}

    assert pipeline.invoke(version_deleted(pipeline, key, old)) == {"batchItemFailures": []}
    assert_newer_version_won(pipeline, key, new)
    assert {k: v["ETag"] for k, v in pipeline.outputs(pipeline.image_id(key)).items()} == served

    assert pipeline.invoke(version_deleted(pipeline, key, new)) == {"batchItemFailures": []}
    assert_deleted(pipeline, pipeline.image_id(key))
    assert outcomes() == ["done", "done", "unaffected", "deleted"]


def test_a_newer_upload_of_a_deleted_direct_key_renders_again(pipeline, outcomes):
    key = "back again.png"
    assert pipeline.invoke(pipeline.upload(key, png(RED))) == {"batchItemFailures": []}
    assert pipeline.invoke(delete_marker(pipeline, key)) == {"batchItemFailures": []}
    again = pipeline.upload(key, png(BLUE))
    assert pipeline.invoke(again) == {"batchItemFailures": []}
    assert_newer_version_won(pipeline, key, again)
    assert outcomes() == ["done", "deleted", "done"]


def test_an_api_image_stays_deleted_when_its_key_is_written_again(pipeline, outcomes):
    image_id, key = api_image(pipeline)
    first = pipeline.upload(key, png(RED), {"image-id": image_id, "filename": "mine.png"})
    assert pipeline.invoke(first) == {"batchItemFailures": []}
    assert pipeline.invoke(version_deleted(pipeline, key, first)) == {"batchItemFailures": []}
    assert_deleted(pipeline, image_id)

    # A presigned POST form can be used again until it expires: the image keeps its first original only.
    again = pipeline.upload(key, png(BLUE), {"image-id": image_id, "filename": "mine.png"})
    assert pipeline.invoke(again) == {"batchItemFailures": []}
    assert_deleted(pipeline, image_id)
    assert outcomes() == ["done", "deleted", "refused"]


def test_deleting_an_object_at_another_name_under_an_api_image_changes_nothing(pipeline, outcomes):
    image_id, key = api_image(pipeline)
    mine = pipeline.upload(key, png(RED), {"image-id": image_id})
    assert pipeline.invoke(mine) == {"batchItemFailures": []}
    done = pipeline.item(image_id)
    intruder = f"originals/{image_id}/not-mine.png"
    pipeline.upload(intruder, png(BLUE))
    assert pipeline.invoke(delete_marker(pipeline, intruder)) == {"batchItemFailures": []}
    assert pipeline.item(image_id) == done
    assert len(pipeline.outputs(image_id)) == 6
    assert outcomes() == ["done", "refused"]


def test_a_render_that_finishes_after_its_original_was_deleted_removes_its_renditions(
    pipeline, outcomes, monkeypatch
):
    import resize_handler

    key = "deleted while rendering.png"
    created = pipeline.upload(key, png(RED))
    real_mark_done = records.mark_done

    def mark_done(table, image_id, original, renditions, **kwargs):
        (obj,) = s3_events.parse_body(delete_marker(pipeline, key)["body"])
        assert resize_handler.process_removal(obj, resize_handler.setup()) == "deleted"
        return real_mark_done(table, image_id, original, renditions, **kwargs)

    monkeypatch.setattr(records, "mark_done", mark_done)
    assert pipeline.invoke(created) == {"batchItemFailures": []}
    assert_deleted(pipeline, pipeline.image_id(key))
    assert outcomes() == ["deleted", "superseded"]


# --- edges ---


def test_s3_console_folder_marker_is_skipped_not_a_failed_image(pipeline, outcomes):
    record = pipeline.upload("photos/", b"")  # what the console's "Create folder" writes
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    assert pipeline.item(pipeline.image_id("photos/")) is None
    assert pipeline.outputs() == {}
    assert outcomes() == ["skipped"]


def test_a_1024_byte_non_ascii_key_gets_renditions_with_metadata_within_2_kb(pipeline):
    """AWS: keys up to 1,024 bytes of UTF-8; user metadata at most 2 KB, counted as the UTF-8
    bytes of each name and value. Percent-encoded, this key alone is 3 KB."""
    key = "albüm/" + "ж" * 506 + "a.png"
    assert len(key.encode("utf-8")) == 1024
    record = pipeline.upload(key, png(RED))
    assert pipeline.invoke(record) == {"batchItemFailures": []}

    image_id = pipeline.image_id(key)
    assert pipeline.item(image_id)["status"] == "done"
    outputs = pipeline.outputs(image_id)
    assert len(outputs) == len(DEFAULT_OUTPUTS)
    for output_key in outputs:
        meta = pipeline.get(output_key)[0]["Metadata"]
        assert sum(len(n.encode()) + len(v.encode()) for n, v in meta.items()) <= 2000
        assert meta["image-id"] == image_id and meta["source-version"] == version_of(record)
        assert meta["source-key-truncated"] == "true"
        assert len(unquote(meta["source-key"])) > 100 and key.startswith(unquote(meta["source-key"]))


# --- the rules themselves ---


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
        ("0065F2A1B2C3D4E5F6A0", "0065F2A1B2C3D4E5F7"),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E500"),
        ("FF", "0100"),
        ("", "00"),
    ],
)
def test_padded_sequencers_compare_as_s3_says(a, b):
    """ "The sequencers can be of different lengths. So, to compare these values, first right pad
    the shorter value with zeros, and then do a lexicographical comparison." (S3 User Guide)"""
    width = max(len(a), len(b))
    expected = (a.ljust(width, "0") > b.ljust(width, "0")) - (a.ljust(width, "0") < b.ljust(width, "0"))
    got = (ordering.padded(a) > ordering.padded(b)) - (ordering.padded(a) < ordering.padded(b))
    assert got == expected
    assert len(ordering.padded(a)) == ordering.SEQUENCER_WIDTH


def test_versions_without_a_version_id_get_tags_from_etag_and_sequencer():
    """Unversioned (or suspended: version id ``null``) buckets: ETag and sequencer name a version."""
    first = ordering.Source.of("k.png", "00AB", "null").identified("null", '"etag-1"')
    second = ordering.Source.of("k.png", "00AC", None).identified(None, '"etag-2"')
    assert first.tag("c0ffee") != second.tag("c0ffee")
    identified = ordering.Source.of("k.png", "00AB", None).identified("v1", '"e"')
    assert identified.tag("c0ffee") == keys.version_tag("v1", "c0ffee")
    for tag in (first.tag("c0ffee"), second.tag("c0ffee")):
        assert len(tag) == 12
        assert all(c.isalnum() or c in "-_" for c in tag)
