"""The per-deployment secret that keys the ids of direct uploads (docs/ids.md).

It is one item of the images table, ``{"id": ITEM_ID, "secret": <32 random
bytes>}``, created by the first resize cold start that finds none. The put is
conditional (``attribute_not_exists(id)``), so cold starts racing each other
agree on the first value written; every later cold start reads it once. The
item's id is not a 22-character image id, so ``GET /images/{id}`` (and any route
that validates ids with ``keys.is_valid_id``) can never serve it. The value is
never logged.
"""

from __future__ import annotations

import secrets
from typing import Any

ITEM_ID = "#image-id-secret"
SECRET_BYTES = 32


def load(table: Any) -> bytes:
    """The deployment's secret, created on first use; the same bytes for every caller after."""
    found = _read(table)
    if found is not None:
        return found
    candidate = secrets.token_bytes(SECRET_BYTES)
    try:
        table.put_item(
            Item={"id": ITEM_ID, "secret": candidate},
            ConditionExpression="attribute_not_exists(id)",
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        found = _read(table)  # another cold start won the race: its value is the one
        if found is None:
            raise RuntimeError("the id secret item vanished after a conditional put failed") from None
        return found
    return candidate


def _read(table: Any) -> bytes | None:
    item = table.get_item(Key={"id": ITEM_ID}, ConsistentRead=True).get("Item")
    if not item:
        return None
    value = item["secret"]
    # boto3's resource layer returns DynamoDB's binary type as boto3.dynamodb.types.Binary.
    secret = bytes(value.value if hasattr(value, "value") else value)
    if len(secret) != SECRET_BYTES:
        raise RuntimeError("the id secret item holds a value of the wrong length")
    return secret
