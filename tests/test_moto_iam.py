"""The strict emulator (``local.emulator`` with ``strict=True``, ``local.moto_iam``) decides as IAM does.

Each test states the AWS behaviour it checks. Roles here are written by hand,
each with the one grant in question; the roles Terraform declares are checked
against the running local stack in test_local_stack.py.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from botocore.exceptions import ClientError

from local.emulator import client, lambda_credentials, running

pytestmark = pytest.mark.slow  # a strict emulator server in a child process, on a port

BUCKET, TABLE, QUEUE = "strict-uploads", "strict-images", "strict-resize"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture(scope="module")
def strict():
    with running(strict=True) as emu:
        s3, ddb, sqs = emu.client("s3"), emu.client("dynamodb"), emu.client("sqs")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="present.txt", Body=b"here")
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs.create_queue(QueueName=QUEUE)
        yield emu


def role(emu, name: str, statements: list[dict], trust: dict = LAMBDA_TRUST) -> dict[str, str]:
    """A role with these statements, assumed as Lambda assumes a function's role: its credentials."""
    iam = emu.client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    document = {"Version": "2012-10-17", "Statement": statements}
    iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(document))
    return lambda_credentials(emu.endpoint, arn, name)


def code_of(exc: ClientError) -> tuple[int, str]:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]


def allow(actions: list[str], resource: str) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


def test_unknown_keys_are_refused_once_iam_is_enforced(strict):
    # AWS: a request signed with an access key that does not exist is refused (InvalidAccessKeyId).
    with pytest.raises(ClientError) as caught:
        client(strict.endpoint, "s3").list_objects_v2(Bucket=BUCKET)
    assert code_of(caught.value) == (403, "InvalidAccessKeyId")
    assert strict.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1  # the administrator may


def test_a_missing_key_is_403_without_list_bucket_and_404_with_it(strict):
    # AWS GetObject/HeadObject: "If you don't have the s3:ListBucket permission, Amazon S3 returns
    # an HTTP status code 403 (Access Denied)"; with it, 404 (NoSuchKey).
    objects = f"arn:aws:s3:::{BUCKET}/*"
    reader = client(strict.endpoint, "s3", role(strict, "reader", [allow(["s3:GetObject"], objects)]))
    lister = client(
        strict.endpoint,
        "s3",
        role(
            strict,
            "lister",
            [allow(["s3:GetObject"], objects), allow(["s3:ListBucket"], f"arn:aws:s3:::{BUCKET}")],
        ),
    )
    assert reader.get_object(Bucket=BUCKET, Key="present.txt")["Body"].read() == b"here"
    for call in ("get_object", "head_object"):
        with pytest.raises(ClientError) as denied:
            getattr(reader, call)(Bucket=BUCKET, Key="absent.txt")
        assert code_of(denied.value)[0] == 403
        with pytest.raises(ClientError) as missing:
            getattr(lister, call)(Bucket=BUCKET, Key="absent.txt")
        assert code_of(missing.value)[0] == 404
    with pytest.raises(ClientError) as denied:
        reader.get_object(Bucket=BUCKET, Key="absent.txt")
    assert code_of(denied.value) == (403, "AccessDenied")


def test_a_statement_scoped_to_a_table_arn_allows_exactly_its_actions(strict):
    # IAM: DynamoDB item actions are authorised on the table's ARN; moto alone checks "*" and denies.
    # DynamoDB refuses with HTTP 400 AccessDeniedException.
    arn = strict.client("dynamodb").describe_table(TableName=TABLE)["Table"]["TableArn"]
    ddb = client(strict.endpoint, "dynamodb", role(strict, "records", [allow(["dynamodb:GetItem"], arn)]))
    assert "Item" not in ddb.get_item(TableName=TABLE, Key={"id": {"S": "a"}})
    with pytest.raises(ClientError) as denied:
        ddb.put_item(TableName=TABLE, Item={"id": {"S": "a"}})
    assert code_of(denied.value) == (400, "AccessDeniedException")
    assert "dynamodb:PutItem" in denied.value.response["Error"]["Message"]


def test_a_query_of_an_index_is_authorised_on_the_index_arn(strict):
    # IAM: Query on a secondary index needs dynamodb:Query on arn:...:table/NAME/index/INDEX.
    admin = strict.client("dynamodb")
    admin.create_table(
        TableName="indexed",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-owner",
                "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    arn = admin.describe_table(TableName="indexed")["Table"]["TableArn"]
    ddb = client(
        strict.endpoint,
        "dynamodb",
        role(strict, "by-owner", [allow(["dynamodb:Query"], f"{arn}/index/by-owner")]),
    )
    query = {
        "KeyConditionExpression": "#o = :o",
        "ExpressionAttributeNames": {"#o": "owner"},
        "ExpressionAttributeValues": {":o": {"S": "me"}},
    }
    assert ddb.query(TableName="indexed", IndexName="by-owner", **query)["Count"] == 0
    with pytest.raises(ClientError) as denied:
        ddb.query(
            TableName="indexed",
            KeyConditionExpression="id = :i",
            ExpressionAttributeValues={":i": {"S": "a"}},
        )
    assert code_of(denied.value) == (400, "AccessDeniedException")


def test_batch_deletes_are_authorised_by_sqs_delete_message(strict):
    # IAM: DeleteMessageBatch needs sqs:DeleteMessage (the SQS API permissions reference).
    sqs_admin = strict.client("sqs")
    url = sqs_admin.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    arn = sqs_admin.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs_admin.send_message(QueueUrl=url, MessageBody="m")
    sqs = client(
        strict.endpoint,
        "sqs",
        role(strict, "consumer", [allow(["sqs:ReceiveMessage", "sqs:DeleteMessage"], arn)]),
    )
    (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    entries = [{"Id": "1", "ReceiptHandle": message["ReceiptHandle"]}]
    assert sqs.delete_message_batch(QueueUrl=url, Entries=entries)["Successful"] == [{"Id": "1"}]
    with pytest.raises(ClientError) as denied:
        sqs.send_message(QueueUrl=url, MessageBody="m")
    assert code_of(denied.value)[0] == 403 and "sqs:SendMessage" in denied.value.response["Error"]["Message"]


def test_presigned_requests_carry_their_signers_permissions(strict):
    # S3: a presigned URL or POST acts with the permissions of the credentials that signed it.
    objects = f"arn:aws:s3:::{BUCKET}/*"
    keys = role(strict, "presigner", [allow(["s3:GetObject"], objects)])
    s3 = client(strict.endpoint, "s3", keys)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "present.txt"})
    assert requests.get(url, timeout=10).content == b"here"
    post = s3.generate_presigned_post(BUCKET, "originals/new.txt")
    refused = requests.post(post["url"], data=post["fields"], files={"file": b"x"}, timeout=10)
    assert refused.status_code == 403  # the signer may not s3:PutObject
    anonymous = requests.get(f"{strict.endpoint}/{BUCKET}/present.txt", timeout=10)
    assert anonymous.status_code == 403


def test_only_the_lambda_service_may_assume_a_lambda_role(strict):
    # IAM: the trust policy decides who may assume a role; a Lambda role trusts lambda.amazonaws.com only.
    iam = strict.client("iam")
    arn = iam.create_role(RoleName="lambda-only", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"][
        "Arn"
    ]
    with pytest.raises(ClientError) as denied:
        strict.client("sts").assume_role(RoleArn=arn, RoleSessionName="administrator")
    assert code_of(denied.value) == (403, "AccessDenied")
    keys = lambda_credentials(strict.endpoint, arn, "fn")
    who = client(strict.endpoint, "sts", keys).get_caller_identity()["Arn"]
    assert who.endswith(":assumed-role/lambda-only/fn")
    ec2_trust = {
        **LAMBDA_TRUST,
        "Statement": [{**LAMBDA_TRUST["Statement"][0], "Principal": {"Service": "ec2.amazonaws.com"}}],
    }
    other = iam.create_role(RoleName="ec2-only", AssumeRolePolicyDocument=json.dumps(ec2_trust))["Role"][
        "Arn"
    ]
    with pytest.raises(RuntimeError, match="cannot be assumed by Lambda"):
        lambda_credentials(strict.endpoint, other, "fn")


def test_a_signed_get_without_body_or_query_is_accepted(strict):
    # SigV4: a bodiless request signs the hash of an empty payload (Terraform reads APIs and functions so).
    api = strict.client("apigatewayv2")
    api_id = api.create_api(Name="strict", ProtocolType="HTTP")["ApiId"]
    assert api.get_api(ApiId=api_id)["Name"] == "strict"
    assert api.get_apis(MaxResults="5")["Items"]  # a bodiless GET with a query


def test_expired_role_credentials_are_refused(strict):
    # STS: temporary credentials stop working at their expiration (S3 answers 400 ExpiredToken).
    arn = strict.client("iam").create_role(
        RoleName="short", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    strict.client("iam").put_role_policy(
        RoleName="short",
        PolicyName="short",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [allow(["s3:ListBucket"], f"arn:aws:s3:::{BUCKET}")]}
        ),
    )
    s3 = client(
        strict.endpoint, "s3", lambda_credentials(strict.endpoint, arn["Role"]["Arn"], "fn", duration=1)
    )
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1
    time.sleep(1.2)
    with pytest.raises(ClientError) as expired:
        s3.list_objects_v2(Bucket=BUCKET)
    assert code_of(expired.value) == (400, "ExpiredToken")


def test_put_events_is_authorised_on_the_event_bus_arn(strict):
    # IAM: events:PutEvents has the resource type event-bus (Service Authorization Reference,
    # "Actions defined by Amazon EventBridge"), so a grant on one bus allows it and no other; a
    # denial is EventBridge's JSON AccessDeniedException.
    strict.client("events").create_event_bus(Name="strict-bus")
    strict.client("events").create_event_bus(Name="other-bus")
    bus = "arn:aws:events:us-east-1:123456789012:event-bus/strict-bus"
    creds = role(strict, "strict-events", [allow(["events:PutEvents"], bus)])
    events = client(strict.endpoint, "events", creds)
    entry = {"Source": "imgpipe", "DetailType": "Image Processed", "Detail": "{}"}
    assert events.put_events(Entries=[{**entry, "EventBusName": "strict-bus"}])["FailedEntryCount"] == 0
    with pytest.raises(ClientError) as denied:
        events.put_events(Entries=[{**entry, "EventBusName": "other-bus"}])
    assert code_of(denied.value) == (400, "AccessDeniedException")


def test_step_functions_calls_are_authorised_on_the_arn_they_name(strict):
    # IAM: states:StartExecution has the resource type stateMachine and DescribeExecution the
    # type execution (Service Authorization Reference, "Actions defined by AWS Step Functions"),
    # so a grant on one machine allows it and no other; a denial is the JSON AccessDeniedException.
    sfn = strict.client("stepfunctions")
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    machine_role = "arn:aws:iam::123456789012:role/strict-machine"
    arns = {
        name: sfn.create_state_machine(name=name, definition=definition, roleArn=machine_role)[
            "stateMachineArn"
        ]
        for name in ("strict-granted", "strict-other")
    }
    executions = arns["strict-granted"].replace(":stateMachine:", ":execution:") + ":*"
    creds = role(
        strict,
        "strict-states",
        [
            allow(["states:StartExecution"], arns["strict-granted"]),
            allow(["states:DescribeExecution"], executions),
        ],
    )
    states = client(strict.endpoint, "stepfunctions", creds)
    started = states.start_execution(stateMachineArn=arns["strict-granted"], input="{}")
    assert (
        states.describe_execution(executionArn=started["executionArn"])["stateMachineArn"]
        == arns["strict-granted"]
    )
    with pytest.raises(ClientError) as denied:
        states.start_execution(stateMachineArn=arns["strict-other"], input="{}")
    assert code_of(denied.value) == (400, "AccessDeniedException")
    assert "states:StartExecution" in denied.value.response["Error"]["Message"]


def test_a_batch_get_of_one_table_is_authorised_on_its_arn(strict):
    # IAM: dynamodb:BatchGetItem has the resource type table (Service Authorization Reference),
    # so a grant on the table's ARN allows a batch read of it; BatchWriteItem needs its own grant.
    arn = strict.client("dynamodb").describe_table(TableName=TABLE)["Table"]["TableArn"]
    ddb = client(
        strict.endpoint, "dynamodb", role(strict, "batch-reader", [allow(["dynamodb:BatchGetItem"], arn)])
    )
    found = ddb.batch_get_item(RequestItems={TABLE: {"Keys": [{"id": {"S": "a"}}], "ConsistentRead": True}})
    assert found["Responses"] == {TABLE: []} and not found["UnprocessedKeys"]
    with pytest.raises(ClientError) as denied:
        ddb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": {"id": {"S": "b"}}}}]})
    assert code_of(denied.value) == (400, "AccessDeniedException")
    assert "dynamodb:BatchWriteItem" in denied.value.response["Error"]["Message"]
