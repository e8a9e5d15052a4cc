"""local/moto_dynamodb.py: UpdateTable changes a table's encryption, as DynamoDB does."""

from __future__ import annotations

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
