"""local/moto_dynamodb.py: UpdateTable changes a table's encryption, as DynamoDB does."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from local.emulator import running

pytestmark = pytest.mark.slow


def test_update_table_switches_between_the_aws_owned_managed_and_customer_keys():
    """DynamoDB lets a table switch between the AWS owned key, the AWS managed key and a
    customer managed key at any time (UpdateTable SSESpecification); DescribeTable shows
    SSEDescription only for the two KMS keys. Terraform's server_side_encryption relies
    on it when an existing table's encryption changes."""
    with running() as emu:
        ddb, kms = emu.client("dynamodb"), emu.client("kms")
        ddb.create_table(
            TableName="images",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},  # the AWS managed key aws/dynamodb
        )
        assert ddb.describe_table(TableName="images")["Table"]["SSEDescription"]["Status"] == "ENABLED"

        ddb.update_table(TableName="images", SSESpecification={"Enabled": False})
        assert "SSEDescription" not in ddb.describe_table(TableName="images")["Table"]

        key_arn = kms.create_key()["KeyMetadata"]["Arn"]
        ddb.update_table(
            TableName="images",
            SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn},
        )
        described = ddb.describe_table(TableName="images")["Table"]["SSEDescription"]
        assert (described["Status"], described["KMSMasterKeyArn"]) == ("ENABLED", key_arn)

        ddb.update_table(TableName="images", BillingMode="PAY_PER_REQUEST")  # no SSESpecification
        assert ddb.describe_table(TableName="images")["Table"]["SSEDescription"]["KMSMasterKeyArn"] == key_arn


def test_concurrent_writes_to_one_item_are_applied_one_at_a_time():
    """AWS: "Individual write operations such as UpdateItem are atomic and always operate on the
    most recent version of the item, regardless of concurrency" (DynamoDB developer guide, "Best
    practices for handling concurrent updates"): an UpdateItem's ReturnValues ALL_OLD is the item
    as the write before it left it. The resize function relies on it to publish one completion
    event per image when two deliveries finish at once (docs/events.md): moto's threaded server
    interleaved such writes, and both deliveries saw the record unsettled."""
    with running() as emu:
        ddb = emu.client("dynamodb")
        ddb.create_table(
            TableName="images",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        writers, rounds = 16, 5

        def settle(item: str, writer: int) -> dict:
            return ddb.update_item(
                TableName="images",
                Key={"id": {"S": item}},
                UpdateExpression="SET settled = :mine, n = if_not_exists(n, :zero) + :one",
                ExpressionAttributeValues={
                    ":mine": {"S": f"done:{writer}"},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})

        with ThreadPoolExecutor(writers) as pool:
            for r in range(rounds):
                olds = list(pool.map(lambda w, r=r: settle(f"image-{r}", w), range(writers)))
                # Exactly one writer found the item unsettled, and no write was lost.
                assert sum("settled" not in old for old in olds) == 1, olds
                item = ddb.get_item(TableName="images", Key={"id": {"S": f"image-{r}"}})["Item"]
                assert item["n"] == {"N": str(writers)}
                assert sorted(int(old["n"]["N"]) for old in olds if old) == list(range(1, writers))
