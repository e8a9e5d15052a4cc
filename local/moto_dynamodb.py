"""DynamoDB's UpdateTable as AWS answers it where moto 5.2 does not: SSESpecification.

moto ignores ``SSESpecification`` in ``UpdateTable``, so a table keeps the
encryption it was created with. DynamoDB switches it (AWS owned key when
``Enabled`` is false, the AWS managed key ``aws/dynamodb`` when true without a
key, the given key otherwise; "you can switch between them at any time", says
DynamoDB's encryption-at-rest guide). Without this, a deployment that changes
``server_side_encryption`` would plan the same update on every run against the
emulator. ``local.moto_server`` calls ``patch()`` before serving.
"""

from __future__ import annotations

from typing import Any


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
