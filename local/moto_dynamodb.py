"""DynamoDB as AWS answers it where moto 5.2 does not: UpdateTable's SSESpecification, and
one request at a time.

moto ignores ``SSESpecification`` in ``UpdateTable``, so a table keeps the
encryption it was created with. DynamoDB switches it (AWS owned key when
``Enabled`` is false, the AWS managed key ``aws/dynamodb`` when true without a
key, the given key otherwise; "you can switch between them at any time", says
DynamoDB's encryption-at-rest guide). Without this, a deployment that changes
``server_side_encryption`` would plan the same update on every run against the
emulator.

"Individual write operations such as UpdateItem are atomic and always operate
on the most recent version of the item, regardless of concurrency" (DynamoDB
developer guide, "Best practices for handling concurrent updates"), so an
UpdateItem's ``ReturnValues`` is the item as the previous write left it. moto
5.2's backend has no lock, and its threaded server ran two UpdateItems of one
item at once: both read the old item, both returned it, one write was lost.
The resize function publishes one completion event per image on exactly that
guarantee (docs/events.md), so the emulator serves DynamoDB requests one at a
time (``serialised``): its own CPU bounds it anyway (one Python process).

``local.moto_server`` calls ``patch()`` before serving.
"""

from __future__ import annotations

import threading
from typing import Any

# One DynamoDB request at a time, in the whole emulator (re-entrant: a batch calls its items).
LOCK = threading.RLock()


def apply_sse(table: Any, spec: dict[str, Any]) -> None:
    """Set a moto table's encryption from an UpdateTable SSESpecification."""
    if not spec.get("Enabled"):
        table.sse_specification = None  # the AWS owned key: DescribeTable shows no SSEDescription
        return
    key = spec.get("KMSMasterKeyId") or table._get_default_encryption_key(table.account_id, table.region_name)
    table.sse_specification = {**spec, "KMSMasterKeyId": key}


def patch() -> None:
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.update_table

    def update_table(self: Any) -> Any:
        spec = self.body.get("SSESpecification")
        if spec is not None:
            apply_sse(self.dynamodb_backend.get_table(self.body["TableName"]), spec)
        return original(self)

    DynamoHandler.update_table = update_table
    DynamoHandler.call_action = serialised(DynamoHandler.call_action)


def serialised(call_action: Any) -> Any:
    """``call_action`` (every DynamoDB request's dispatch) run under ``LOCK``."""

    def locked(self: Any) -> Any:
        with LOCK:
            return call_action(self)

    return locked
