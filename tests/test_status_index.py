"""The sparse ``unfinished`` index: records.py keeps only unfinished records in it.

AWS: "For any item in a table, DynamoDB writes a corresponding index entry only
if the index sort key value is present in the item" (Amazon DynamoDB Developer
Guide, "Take advantage of sparse indexes"). records.py sets ``unfinished`` and
``unfinished_since`` while a record is awaiting_upload, pending or processing
and removes them in the same UpdateItem that makes it done, failed or deleted.
"""

from __future__ import annotations

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from conftest import create_pipeline_resources
from imgpipe import ordering, records

TABLE = "images"


@pytest.fixture
def table(aws):
    create_pipeline_resources("uploads", "resized", TABLE)
    return boto3.resource("dynamodb").Table(TABLE)


def unfinished(table, status: str) -> list[str]:
    """The ids the index lists under ``status``, oldest first (its sort key is the time of that write)."""
    response = table.query(
        IndexName=records.UNFINISHED_INDEX, KeyConditionExpression=Key("unfinished").eq(status)
    )
    return [item["id"] for item in response["Items"]]


def source(key: str) -> ordering.Source:
    return ordering.Source.of(key, "0065F2A1B2C3D4E5F6", "v1")


def test_a_query_on_the_index_returns_only_unfinished_records_by_status_oldest_first(table):
    for image_id, status in [("a", "pending"), ("b", "awaiting_upload"), ("c", "pending"), ("d", "pending")]:
        records.put_new(table, records.new_record(image_id, status, {"key": f"originals/{image_id}/x.png"}))
    records.mark_processing(table, "d", {"key": "d.png"}, source=source("d.png"))
    records.mark_done(table, "c", {"key": "c.png"}, [], source=source("c.png"))

    assert unfinished(table, "pending") == ["a"]
    assert unfinished(table, "awaiting_upload") == ["b"]
    assert unfinished(table, "processing") == ["d"]
    item = records.get(table, "d")
    assert item["unfinished"] == "processing" and item["unfinished_since"] == item["updated_at"]
    for status in ("done", "failed", "deleted"):
        assert unfinished(table, status) == []


def test_done_failed_and_deleted_records_leave_the_index(table):
    for image_id in ("done", "failed", "tombstone", "deleted-by-owner"):
        original = {"key": f"originals/{image_id}/x.png"}
        records.put_new(table, records.new_record(image_id, "pending", original))
    assert len(unfinished(table, "pending")) == 4

    records.mark_processing(table, "done", {"key": "k"}, source=source("k"))
    assert unfinished(table, "processing") == ["done"]
    records.mark_done(table, "done", {"key": "k"}, [{"name": "thumb"}], source=source("k"))
    records.mark_failed(table, "failed", {"key": "f"}, "not_an_image", "no", source=source("f"))
    marker = ordering.Source.of("t", "0065F2A1B2C3D4E5F7", "marker")
    records.mark_deleted(table, "tombstone", marker, marker=True)
    records.mark_deleted_by_owner(table, "deleted-by-owner")

    assert unfinished(table, "pending") == unfinished(table, "processing") == []
    for image_id in ("done", "failed", "tombstone", "deleted-by-owner"):
        item = records.get(table, image_id)
        assert "unfinished" not in item and "unfinished_since" not in item, item


def test_a_record_that_becomes_unfinished_again_returns_to_the_index(table):
    """A newer version of a done image is processing again: it is unfinished until its render ends."""
    records.mark_done(table, "again", {"key": "k"}, [], source=source("k"))
    assert unfinished(table, "processing") == []
    newer = ordering.Source.of("k", "0065F2A1B2C3D4E5F8", "v2")
    records.mark_processing(table, "again", {"key": "k"}, source=newer)
    assert unfinished(table, "processing") == ["again"]
