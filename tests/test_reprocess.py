"""The rendition-config version at work: replays cost a read, force and reprocess messages render again.

See docs/config-version.md (the skip rule, force, outcomes) and docs/ordering.md
("Reprocess messages": a reprocess has no sequencer of its own and re-renders
only the version the record holds).
"""

from __future__ import annotations

import io
import json

import pytest

from imgpipe import config_version, ordering, s3_events
from imgpipe.errors import PermanentError
from tests import test_ordering as ordered
from tests.test_ordering import BLUE, RED, assert_newer_version_won, calls, outcomes, png, versions  # noqa: F401
from tests.test_resize_handler import DEFAULT_OUTPUTS, opened

pipeline = ordered.pipeline  # the resize handler tests' fixture: moto, the buckets, the table
SMALL = [{"name": "thumb", "width": 100, "height": 100, "fit": "cover", "formats": ["webp"]}]


def with_options(record: dict, **options) -> dict:
    """The message with ``"imgpipe": options`` beside its Records, as a reprocess would send it."""
    body = json.loads(record["body"])
    body["imgpipe"] = options
    return {**record, "messageId": f"{record['messageId']}-{sorted(options)}", "body": json.dumps(body)}


def change_config(monkeypatch) -> str:
    """Deploy another rendition config (one 100 px WebP thumb); its version."""
    import resize_handler

    monkeypatch.setenv("RENDITIONS", json.dumps(SMALL))
    resize_handler.reset()
    return resize_handler.setup().config_version


def metrics(capsys) -> dict[str, float]:
    """The metrics the function emitted (CloudWatch EMF lines on stdout), summed by name."""
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    totals: dict[str, float] = {}
    for doc in emf:
        for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(doc[metric["Name"]])
    return totals


def test_a_replayed_message_for_a_current_image_costs_a_read_not_a_render(pipeline, outcomes, calls, capsys):
    import resize_handler

    record = pipeline.upload("replay/current.png", png(RED))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    image_id = pipeline.image_id("replay/current.png")
    before = pipeline.item(image_id)
    assert before["config_version"] == resize_handler.setup().config_version
    calls.update(get_object=0, put_object=0, delete_object=0)
    capsys.readouterr()

    assert pipeline.invoke(record) == {"batchItemFailures": []}

    assert calls == {"get_object": 0, "put_object": 0, "delete_object": 0}
    assert pipeline.item(image_id) == before  # not even updated_at moved
    assert outcomes()[-1] == config_version.CURRENT
    assert metrics(capsys)["ImagesSkippedCurrent"] == 1


def test_after_a_config_change_a_replay_renders_again_and_the_image_stays_done_meanwhile(
    pipeline, outcomes, monkeypatch
):
    import resize_handler

    key = "replay/new config.png"
    record = pipeline.upload(key, png(RED))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    old = pipeline.item(image_id)
    new_version = change_config(monkeypatch)
    assert new_version != old["config_version"]
    seen = []
    real_render = resize_handler._render

    def render(*args, **kwargs):
        seen.append(pipeline.item(image_id)["status"])
        return real_render(*args, **kwargs)

    monkeypatch.setattr(resize_handler, "_render", render)
    assert pipeline.invoke(record) == {"batchItemFailures": []}

    assert seen == ["done"]  # GET /images/{id} kept serving the old renditions while it rendered
    item = pipeline.item(image_id)
    assert item["status"] == "done" and item["config_version"] == new_version
    assert [(r["name"], r["format"], r["width"]) for r in item["renditions"]] == [("thumb", "webp", 100)]
    assert set(pipeline.outputs(image_id)) == {r["key"] for r in item["renditions"]}  # the other five went
    response, body = pipeline.get(item["renditions"][0]["key"])
    assert response["Metadata"]["config-version"] == new_version
    assert opened(body).size == (100, 100)
    assert outcomes()[-1] == "done"


def test_a_record_missing_a_configured_rendition_is_rendered_again(pipeline, outcomes):
    """Current version, incomplete renditions: not current, so a replay makes them whole."""
    key = "replay/partial.png"
    record = pipeline.upload(key, png(RED))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    listed = pipeline.item(image_id)["renditions"]
    pipeline.table.update_item(
        Key={"id": image_id},
        UpdateExpression="SET renditions = :r",
        ExpressionAttributeValues={":r": listed[1:]},
    )
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    assert outcomes()[-1] == "done"
    assert len(pipeline.item(image_id)["renditions"]) == len(DEFAULT_OUTPUTS)


def test_force_renders_a_current_image_again(pipeline, outcomes, calls):
    record = pipeline.upload("replay/forced.png", png(RED))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    assert pipeline.invoke(with_options(record, force=True)) == {"batchItemFailures": []}
    assert outcomes() == ["done", "done"]
    assert calls["get_object"] == 2 and calls["put_object"] == 2 * len(DEFAULT_OUTPUTS)


# --- reprocess messages (docs/ordering.md, "Reprocess messages") ---


def test_a_reprocess_renders_the_version_the_record_holds_with_the_current_config(pipeline, monkeypatch):
    key = "reprocess/held.png"
    record = pipeline.upload(key, png(RED))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    old = pipeline.item(image_id)
    new_version = change_config(monkeypatch)

    assert pipeline.invoke(with_options(record, reprocess=True)) == {"batchItemFailures": []}

    item = pipeline.item(image_id)
    assert item["status"] == "done" and item["config_version"] == new_version
    assert item["sequencer"] == old["sequencer"] and item["version"] == old["version"]  # ranks as it did
    assert [r["name"] for r in item["renditions"]] == ["thumb"]


def test_a_reprocess_of_an_older_version_never_replaces_the_newer_renditions(pipeline, outcomes, calls):
    key = "reprocess/older.png"
    old, new = versions(pipeline, key)
    assert pipeline.invoke(new) == {"batchItemFailures": []}
    before = pipeline.item(pipeline.image_id(key))
    calls.update(get_object=0, put_object=0)

    assert pipeline.invoke(with_options(old, reprocess=True, force=True)) == {"batchItemFailures": []}

    assert outcomes()[-1] == ordering.SUPERSEDED
    assert calls["get_object"] == calls["put_object"] == 0
    assert pipeline.item(pipeline.image_id(key)) == before
    assert_newer_version_won(pipeline, key, new)


def test_a_reprocess_without_a_record_renders_nothing(pipeline, outcomes):
    """Only what a record holds is reprocessed: a lost S3 event is not the reprocess's to replay."""
    record = pipeline.upload("reprocess/unknown.png", png(RED))
    assert pipeline.invoke(with_options(record, reprocess=True)) == {"batchItemFailures": []}
    assert outcomes() == [ordering.SUPERSEDED]
    assert pipeline.item(pipeline.image_id("reprocess/unknown.png")) is None
    assert pipeline.outputs() == {}


def test_a_newer_version_arriving_during_a_reprocess_wins(pipeline, outcomes, monkeypatch):
    """The reprocess carries the record's sequencer: the newer event moves it on, so its final write fails."""
    import resize_handler

    key = "reprocess/race.png"
    old, new = versions(pipeline, key)
    assert pipeline.invoke(old) == {"batchItemFailures": []}
    (newer,) = s3_events.parse_body(new["body"])
    real_render = resize_handler._render

    def render(*args, **kwargs):
        monkeypatch.setattr(resize_handler, "_render", real_render)
        assert resize_handler.process_object(newer, resize_handler.setup()) == "done"
        return real_render(*args, **kwargs)

    monkeypatch.setattr(resize_handler, "_render", render)
    assert pipeline.invoke(with_options(old, reprocess=True, force=True)) == {"batchItemFailures": []}

    assert outcomes() == ["done", "done", ordering.SUPERSEDED]
    assert_newer_version_won(pipeline, key, new)  # and the reprocess's renditions are deleted again


def test_a_rerender_that_fails_keeps_the_done_image(pipeline, outcomes, monkeypatch, capsys):
    import resize_handler
    from imgpipe.errors import CorruptImage

    key = "replay/fails.png"
    record = pipeline.upload(key, png(RED))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    image_id = pipeline.image_id(key)
    before = pipeline.item(image_id)
    served = set(pipeline.outputs(image_id))
    change_config(monkeypatch)

    def render(*args, **kwargs):
        raise CorruptImage("the re-render failed")

    monkeypatch.setattr(resize_handler, "_render", render)
    capsys.readouterr()
    assert pipeline.invoke(record) == {"batchItemFailures": []}

    assert outcomes()[-1] == config_version.KEPT
    assert metrics(capsys)["RerendersFailed"] == 1
    assert pipeline.item(image_id) == before  # done, its renditions and config version unchanged
    assert set(pipeline.outputs(image_id)) == served


# --- options are validated strictly ---


def test_options_are_parsed_beside_the_records(pipeline):
    record = pipeline.upload("options.png", png(BLUE))
    message = s3_events.parse_message(with_options(record, reprocess=True, force=True)["body"])
    assert message.options == s3_events.Options(reprocess=True, force=True)
    assert [obj.key for obj in message.objects] == ["options.png"]
    assert s3_events.parse_message(record["body"]).options == s3_events.NO_OPTIONS


@pytest.mark.parametrize(
    "options, removal",
    [
        ({"reprocess": True, "recolour": True}, False),  # an unknown option
        ({"force": "yes"}, False),  # not a boolean
        (["force"], False),  # not an object
        ({"reprocess": True}, True),  # a reprocess of a removal
    ],
)
def test_a_message_with_bad_options_is_dropped_with_a_stable_code_and_nothing_changes(
    pipeline, monkeypatch, capsys, options, removal
):
    import resize_handler

    stream = io.StringIO()
    monkeypatch.setattr(resize_handler.logger.registered_handler, "stream", stream)
    record = pipeline.upload("bad options.png", png(RED))
    if removal:
        record = pipeline.record("bad options.png", 0, "v", "ObjectRemoved:Delete", "0065F2A1B2C3D4E5F7FF")
    body = json.loads(record["body"])
    body["imgpipe"] = options
    capsys.readouterr()

    assert pipeline.invoke({**record, "body": json.dumps(body)}) == {"batchItemFailures": []}  # not retried

    (line,) = [json.loads(line) for line in stream.getvalue().splitlines() if '"outcome"' in line]
    assert line["outcome"] == "dropped" and line["error_code"] == s3_events.BAD_OPTIONS
    assert metrics(capsys)["BadMessages"] == 1
    assert pipeline.outputs() == {}
    assert pipeline.item(pipeline.image_id("bad options.png")) is None


def test_a_reprocess_without_a_version_id_is_a_bad_message(pipeline):
    """A reprocess names the version it stands for; without one it could stand for any."""
    record = pipeline.record("no version.png", 10, None, sequencer="0065F2A1B2C3D4E5F7FF")
    with pytest.raises(PermanentError) as raised:
        s3_events.parse_message(with_options(record, reprocess=True)["body"])
    assert raised.value.code == s3_events.BAD_OPTIONS
