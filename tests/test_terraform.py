"""The root module, applied for real: terraform apply against the emulator, then boto3.

The module is applied once per session through pytest-terraform (the fixture in
tests/terraform/pipeline/ calls the repository's root module), with the provider
from the local mirror and fake credentials; every test then reads the applied
resources back from the emulator. A second plan must show no changes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from imgpipe import id_secret, records
from local.tf import REPO_ROOT, Terraform
from tests.conftest import require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

MIRROR = require_terraform()

from pytest_terraform import terraform  # noqa: E402  (only importable usefully with terraform)

FIXTURE_DIR = Path(__file__).parent / "terraform" / "pipeline"
DEFAULT_RENDITIONS = json.loads((REPO_ROOT / "lambda/imgpipe/default_renditions.json").read_text())
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}

terraform("pipeline", scope="session", teardown=terraform.TEARDOWN_OFF)
BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus/imgpipe-dev-events"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    from local.emulator import running

    with running(log_path=tmp_path_factory.mktemp("moto") / "moto.log") as emu:
        yield emu


@pytest.fixture(scope="session")
def applied(request, emulator, lambda_zip, tmp_path_factory):
    """Apply the fixture module (pytest-terraform) with the emulator's endpoint."""
    cli_config = tmp_path_factory.mktemp("tfcli") / "terraformrc"
    cli_config.write_text(
        f"provider_installation {{\n  filesystem_mirror {{\n    path = {json.dumps(str(MIRROR))}\n  }}\n}}\n"
    )
    env = {
        **CREDENTIALS,
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "TF_VAR_aws_endpoint_url": emulator.endpoint,
        "TF_VAR_lambda_zip_path": str(lambda_zip),
    }
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith(("AWS_", "TF_VAR_")):
                mp.delenv(var)
        for key, value in env.items():
            mp.setenv(key, value)
        started = time.monotonic()
        state = request.getfixturevalue("pipeline")
        elapsed = time.monotonic() - started
    print(f"terraform init + plan + apply against the emulator: {elapsed:.0f} s")
    runner = state.terraform
    return {"outputs": state.outputs["pipeline"]["value"], "runner": runner, "env": env}


@pytest.fixture
def out(applied) -> dict:
    return applied["outputs"]


@pytest.fixture
def client(emulator, aws_credentials):
    import boto3

    def make(service: str):
        return boto3.client(service, endpoint_url=emulator.endpoint, region_name="us-east-1")

    return make


def role_name(client, function_name: str) -> str:
    """The name of the role a function runs with."""
    return client("lambda").get_function_configuration(FunctionName=function_name)["Role"].split("/")[-1]


def role_policy(client, function_name: str) -> dict[str, dict]:
    """The inline policy statements, by Sid, of the role the function runs with."""
    iam = client("iam")
    role_name_ = role_name(client, function_name)
    (name,) = iam.list_role_policies(RoleName=role_name_)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role_name_, PolicyName=name)["PolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(doc)
    return {s["Sid"]: s for s in doc["Statement"]}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def grants(statement: dict) -> tuple[set[str], set[str]]:
    assert statement["Effect"] == "Allow"
    return set(as_list(statement["Action"])), set(as_list(statement["Resource"]))


def test_second_plan_shows_no_changes(applied):
    runner = applied["runner"]
    tf = Terraform(
        workdir=FIXTURE_DIR,
        data_dir=Path(runner.work_dir),
        state=Path(runner.state_path),
        env=applied["env"],
    )
    variables = {
        "aws_endpoint_url": applied["env"]["TF_VAR_aws_endpoint_url"],
        "lambda_zip_path": applied["env"]["TF_VAR_lambda_zip_path"],
    }
    assert tf.plan(variables) is False, tf.last_stdout[-4000:]


def test_outputs_name_every_resource_a_client_or_the_local_stack_needs(out):
    for name in (
        "api_url",
        "api_id",
        "uploads_bucket_name",
        "resized_bucket_name",
        "queue_url",
        "queue_arn",
        "dlq_url",
        "table_name",
        "resize_function_name",
        "upload_function_name",
        "resize_event_source_mapping_uuid",
        "cdn_base_url",
        "cdn_distribution_id",
        "cdn_domain_name",
        "event_bus_name",
        "events_queue_url",
        "maintenance_function_name",
        "reprocess_state_machine_arn",
        "reconcile_state_machine_arn",
    ):
        assert out[name], name
    assert out["uploads_bucket_name"] != out["resized_bucket_name"]
    assert "123456789012" in out["uploads_bucket_name"]  # globally unique: carries the account id


def test_uploads_bucket_notifies_the_queue_of_created_and_removed_objects(out, client):
    config = client("s3").get_bucket_notification_configuration(Bucket=out["uploads_bucket_name"])
    (queue,) = config["QueueConfigurations"]
    assert queue["QueueArn"] == out["queue_arn"]
    assert sorted(queue["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    assert not config.get("LambdaFunctionConfigurations") and not config.get("TopicConfigurations")


def test_an_uploaded_object_reaches_the_resize_queue(out, client):
    s3, sqs = client("s3"), client("sqs")
    s3.put_object(Bucket=out["uploads_bucket_name"], Key="originals/x/photo.jpg", Body=b"\xff\xd8\xff")
    records = []
    for _ in range(5):
        for message in sqs.receive_message(
            QueueUrl=out["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            sqs.delete_message(QueueUrl=out["queue_url"], ReceiptHandle=message["ReceiptHandle"])
            # S3 also sends one s3:TestEvent (no Records) when the notification is set.
            records += json.loads(message["Body"]).get("Records", [])
        if records:
            break
    (record,) = records
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == out["uploads_bucket_name"]
    # Keys in S3 events are URL-encoded, as on AWS.
    assert unquote_plus(record["s3"]["object"]["key"]) == "originals/x/photo.jpg"


def test_mapping_feeds_the_resize_function_with_partial_batch_responses(out, client):
    mapping = client("lambda").get_event_source_mapping(UUID=out["resize_event_source_mapping_uuid"])
    assert mapping["EventSourceArn"] == out["queue_arn"]
    assert mapping["FunctionArn"].endswith(f":function:{out['resize_function_name']}")
    assert mapping["BatchSize"] == 20
    assert mapping["MaximumBatchingWindowInSeconds"] == 2
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 10}
    # The fixture, like the local stack, applies resize_event_source_enabled = false.
    assert mapping["State"] == "Disabled"


def test_queue_redrives_to_the_dlq_and_outlives_the_function(out, client):
    sqs = client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=out["queue_url"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    dlq_arn = sqs.get_queue_attributes(QueueUrl=out["dlq_url"], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    assert redrive == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
    timeout = client("lambda").get_function_configuration(FunctionName=out["resize_function_name"])["Timeout"]
    assert int(attrs["VisibilityTimeout"]) == 6 * timeout + 2  # plus the batching window
    assert int(attrs["MaximumMessageSize"]) >= 65536
    assert attrs["SqsManagedSseEnabled"] == "true"
    dlq = sqs.get_queue_attributes(QueueUrl=out["dlq_url"], AttributeNames=["All"])["Attributes"]
    assert dlq["MessageRetentionPeriod"] == "1209600"
    assert dlq["SqsManagedSseEnabled"] == "true"


def test_queue_policy_lets_only_s3_send_for_the_uploads_bucket_of_this_account(out, client):
    attrs = client("sqs").get_queue_attributes(QueueUrl=out["queue_url"], AttributeNames=["Policy"])[
        "Attributes"
    ]
    (statement,) = json.loads(attrs["Policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert as_list(statement["Action"]) == ["sqs:SendMessage"]
    assert as_list(statement["Resource"]) == [out["queue_arn"]]
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{out['uploads_bucket_name']}"},
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }


@pytest.mark.parametrize("bucket", ["uploads_bucket_name", "resized_bucket_name"])
def test_buckets_are_private_versioned_and_encrypted(out, client, bucket):
    s3 = client("s3")
    name = out[bucket]
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    ownership = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert (
        rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        == 1
    )


def state_data(applied, type_: str, name: str) -> dict:
    """Attributes of a data source of the root module, from the applied state."""
    state = json.loads(Path(applied["runner"].state_path).read_text())
    (resource,) = [
        r
        for r in state["resources"]
        if r["mode"] == "data"
        and r["type"] == type_
        and r["name"] == name
        and r.get("module") == "module.pipeline"
    ]
    return resource["instances"][0]["attributes"]


@pytest.mark.parametrize(
    ("document", "bucket"), [("uploads_bucket", "uploads"), ("resized_bucket", "resized")]
)
def test_bucket_policies_deny_every_request_without_tls(applied, out, client, document, bucket):
    name = out[f"{bucket}_bucket_name"]
    statements = json.loads(state_data(applied, "aws_iam_policy_document", document)["json"])["Statement"]
    (statement,) = [s for s in statements if s["Sid"] == "DenyInsecureTransport"]
    assert statement == {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": sorted([f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"], reverse=True),
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    # Attached on AWS only: moto ignores the condition and would deny everything.
    with pytest.raises(client("s3").exceptions.ClientError, match="NoSuchBucketPolicy"):
        client("s3").get_bucket_policy(Bucket=name)


def distribution_arn(out) -> str:
    return f"arn:aws:cloudfront::123456789012:distribution/{out['cdn_distribution_id']}"


def test_only_the_distribution_may_read_the_resized_bucket(applied, out):
    """Origin access control: the bucket policy allows the CloudFront service principal
    s3:GetObject with aws:SourceArn equal to the distribution's ARN, so no other
    distribution (of any account) can read through its own OAC ("Restrict access to an
    Amazon S3 origin", CloudFront Developer Guide)."""
    document = state_data(applied, "aws_iam_policy_document", "resized_bucket")["json"]
    (cloudfront,) = [s for s in json.loads(document)["Statement"] if s["Sid"] == "CloudFrontReadsRenditions"]
    assert cloudfront == {
        "Sid": "CloudFrontReadsRenditions",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{out['resized_bucket_name']}/*",
        "Condition": {"StringEquals": {"aws:SourceArn": distribution_arn(out)}},
    }
    # The key policy a customer key needs lets the same distribution, and only it, decrypt.
    key_policy = json.loads(out["kms_key_policy_json"])["Statement"]
    (decrypt,) = [s for s in key_policy if s["Sid"] == "CloudFrontDecryptsRenditions"]
    assert decrypt["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"] == {"StringEquals": {"aws:SourceArn": distribution_arn(out)}}


def test_distribution_serves_the_resized_bucket_over_https_only_with_sigv4_and_the_managed_cache_policy(
    out, client
):
    """https-only: CloudFront answers plain HTTP with 403 (CacheBehavior ViewerProtocolPolicy);
    CachingOptimized is AWS's managed cache policy 658327ea-f89d-4fab-a63d-7e88639e58f6."""
    cloudfront = client("cloudfront")
    config = cloudfront.get_distribution_config(Id=out["cdn_distribution_id"])["DistributionConfig"]
    (origin,) = config["Origins"]["Items"]
    assert origin["DomainName"] == f"{out['resized_bucket_name']}.s3.us-east-1.amazonaws.com"
    oac = cloudfront.get_origin_access_control(Id=origin["OriginAccessControlId"])["OriginAccessControl"]
    signing = oac["OriginAccessControlConfig"]
    assert signing["OriginAccessControlOriginType"] == "s3"
    assert (signing["SigningBehavior"], signing["SigningProtocol"]) == ("always", "sigv4")
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "https-only"
    assert behaviour["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"
    assert sorted(behaviour["AllowedMethods"]["Items"]) == ["GET", "HEAD"]
    assert config["PriceClass"] == "PriceClass_100"
    assert out["cdn_base_url"] == f"https://{out['cdn_domain_name']}"


def test_role_names_carry_the_region_because_iam_names_are_account_wide(out, client):
    """IAM role names are unique in the account, across regions (IAM quotas)."""
    for function in (
        out["resize_function_name"],
        out["upload_function_name"],
        out["maintenance_function_name"],
    ):
        assert role_name(client, function) == f"{function}-us-east-1"


FUNCTION_ROLE_DESCRIPTIONS = {
    "resize": "Resize function: reads originals, writes renditions, consumes the resize queue",
    "upload": "Upload function: writes originals, reads renditions, reads and writes image records",
    "maintenance": "Maintenance function: reads and updates image records, looks at originals",
}


def test_each_function_role_is_lambdas_alone_with_one_inline_policy_named_for_the_function(out, client):
    """What the console shows of each role: its description, the default path and no
    permissions boundary, a trust policy naming only lambda.amazonaws.com (Lambda assumes the
    execution role, and its trust policy must name that service principal: Lambda developer
    guide, "Defining Lambda function permissions with an execution role"), and one inline policy
    named for the function."""
    iam = client("iam")
    for key, description in FUNCTION_ROLE_DESCRIPTIONS.items():
        name = role_name(client, out[f"{key}_function_name"])
        role = iam.get_role(RoleName=name)["Role"]
        assert (role["Path"], role.get("Description")) == ("/", description)
        assert "PermissionsBoundary" not in role
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert [(s["Sid"], s["Effect"], s["Principal"], s["Action"]) for s in trust["Statement"]] == [
            ("LambdaAssumeRole", "Allow", {"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")
        ]
        assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [key]
        assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []


def test_resize_role_grants_exactly_what_resizing_needs(out, client):
    statements = role_policy(client, out["resize_function_name"])
    uploads, resized = out["uploads_bucket_name"], out["resized_bucket_name"]
    table_arn = client("dynamodb").describe_table(TableName=out["table_name"])["Table"]["TableArn"]
    log_group = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{out['resize_function_name']}:*"
    assert {sid: grants(s) for sid, s in statements.items()} == {
        "ReadOriginals": ({"s3:GetObject", "s3:GetObjectVersion"}, {f"arn:aws:s3:::{uploads}/*"}),
        "ListOriginals": ({"s3:ListBucket"}, {f"arn:aws:s3:::{uploads}"}),
        "WriteRenditions": ({"s3:PutObject"}, {f"arn:aws:s3:::{resized}/*"}),
        "DeleteSupersededRenditions": ({"s3:DeleteObject"}, {f"arn:aws:s3:::{resized}/*"}),
        "ConsumeResizeQueue": (
            {"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
            {out["queue_arn"]},
        ),
        "UpdateImageRecords": ({"dynamodb:GetItem", "dynamodb:UpdateItem"}, {table_arn}),
        "CreateIdSecret": ({"dynamodb:PutItem"}, {table_arn}),
        "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, {log_group}),
        # No ReadRenditions: with the CDN on (the default) the events carry CDN URLs, nothing presigned.
        "PublishImageEvents": ({"events:PutEvents"}, {BUS_ARN}),  # that bus only
    }
    # PutItem is for the id secret's item only: dynamodb:LeadingKeys is the
    # partition key of the items a request touches (DynamoDB developer guide,
    # fine-grained access control), and the function writes that one id.
    (condition,) = statements["CreateIdSecret"]["Condition"].items()
    assert condition[0] == "ForAllValues:StringEquals"
    assert {k: as_list(v) for k, v in condition[1].items()} == {"dynamodb:LeadingKeys": [id_secret.ITEM_ID]}


def test_upload_role_grants_exactly_what_the_api_needs(out, client):
    statements = role_policy(client, out["upload_function_name"])
    uploads = out["uploads_bucket_name"]
    table_arn = client("dynamodb").describe_table(TableName=out["table_name"])["Table"]["TableArn"]
    log_group = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{out['upload_function_name']}:*"
    assert {sid: grants(s) for sid, s in statements.items()} == {
        "WriteOriginals": ({"s3:PutObject"}, {f"arn:aws:s3:::{uploads}/originals/*"}),
        "ListOriginalVersions": ({"s3:ListBucketVersions"}, {f"arn:aws:s3:::{uploads}"}),
        "DeleteOriginalVersions": ({"s3:DeleteObjectVersion"}, {f"arn:aws:s3:::{uploads}/originals/*"}),
        # No ReadRenditions: with the CDN on (the default) clients read through CloudFront,
        # and the role presigns nothing.
        "ReadWriteImageRecords": (
            {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
            {table_arn},
        ),
        "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, {log_group}),
    }
    # ListObjectVersions lists the whole bucket unless narrowed: s3:prefix keeps it to the API's originals
    # (the emulator treats conditions as met, so this document is what checks it).
    assert statements["ListOriginalVersions"]["Condition"] == {"StringLike": {"s3:prefix": "originals/*"}}


def test_maintenance_role_reads_and_updates_records_and_looks_at_originals_only(out, client):
    """It plans, reconciles and sums a run's results; the state machines send the messages, so it
    has no SQS grant."""
    statements = role_policy(client, out["maintenance_function_name"])
    uploads = out["uploads_bucket_name"]
    table_arn = client("dynamodb").describe_table(TableName=out["table_name"])["Table"]["TableArn"]
    log_group = (
        f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{out['maintenance_function_name']}:*"
    )
    assert {sid: grants(s) for sid, s in statements.items()} == {
        "ReadAndUpdateImageRecords": (
            {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"},
            {table_arn},
        ),
        # Query on an index is authorised on the index's ARN (DynamoDB developer guide).
        "QueryUnfinishedIndex": ({"dynamodb:Query"}, {f"{table_arn}/index/unfinished"}),
        "CreateIdSecret": ({"dynamodb:PutItem"}, {table_arn}),
        # HeadObject of a key is authorised by s3:GetObject; ListBucket makes a gone key 404, not 403.
        "HeadOriginals": ({"s3:GetObject"}, {f"arn:aws:s3:::{uploads}/*"}),
        "ListOriginals": ({"s3:ListBucket"}, {f"arn:aws:s3:::{uploads}"}),
        # Reconcile's Image Failed for a stuck record (docs/events.md): that bus only.
        "PublishImageEvents": ({"events:PutEvents"}, {BUS_ARN}),
        # summarize_reprocess reads the reprocess map's results (ResultWriter), that prefix only.
        "ReadReprocessResults": (
            {"s3:GetObject"},
            {f"arn:aws:s3:::{out['resized_bucket_name']}/reprocess-results/*"},
        ),
        "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, {log_group}),
    }
    (condition,) = statements["CreateIdSecret"]["Condition"].items()
    assert {k: as_list(v) for k, v in condition[1].items()} == {"dynamodb:LeadingKeys": [id_secret.ITEM_ID]}


def test_maintenance_function_computes_the_resize_functions_config_version(out, client):
    """Same package, runtime and architecture, and the resize function's settings (the config
    version is a hash of them), plus the reconcile thresholds: stuck = visibility timeout x
    maxReceiveCount (6 x the 60 s timeout + the fixture's 2 s batching window, x its 3)."""
    functions = client("lambda")
    config = functions.get_function_configuration(FunctionName=out["maintenance_function_name"])
    resize = functions.get_function_configuration(FunctionName=out["resize_function_name"])
    assert config["Handler"] == "maintenance_handler.handler"
    assert (config["Runtime"], config["Architectures"], config["CodeSha256"]) == (
        resize["Runtime"],
        resize["Architectures"],
        resize["CodeSha256"],
    )
    env, resize_env = config["Environment"]["Variables"], resize["Environment"]["Variables"]
    assert env == {
        **resize_env,
        "POWERTOOLS_SERVICE_NAME": "maintenance",
        "PRESIGN_POST_EXPIRY_SECONDS": "900",
        "RECONCILE_PENDING_AFTER_S": "900",
        "RECONCILE_STUCK_AFTER_S": str((6 * 60 + 2) * 3),
    }


def state_machine(client, arn: str) -> dict:
    machine = client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    machine["definition"] = json.loads(machine["definition"])
    return machine


def test_reprocess_machine_lists_originals_in_batches_and_sends_to_the_resize_queue(out, client):
    """A Distributed Map over ListObjectsV2 of the uploads bucket (ItemReader), batched (ItemBatcher),
    each batch planned by the maintenance function and sent with SendMessageBatch to the resize queue."""
    machine = state_machine(client, out["reprocess_state_machine_arn"])
    assert machine["type"] == "STANDARD"
    mapped = machine["definition"]["States"]["Reprocess"]
    assert mapped["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert mapped["ItemReader"]["Parameters"]["Bucket"] == out["uploads_bucket_name"]
    assert mapped["ItemBatcher"]["MaxItemsPerBatch"] == 100
    assert (mapped["MaxConcurrency"], mapped["ToleratedFailurePercentage"]) == (10, 10)
    assert mapped["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert mapped["ResultWriter"]["Parameters"] == {
        "Bucket": out["resized_bucket_name"],
        "Prefix": "reprocess-results",
    }
    child = mapped["ItemProcessor"]["States"]
    assert child["Plan"]["Parameters"]["FunctionName"].endswith(
        f":function:{out['maintenance_function_name']}"
    )
    assert child["Plan"]["Parameters"]["Payload"]["action"] == "plan_reprocess"
    send = child["Send"]["ItemProcessor"]["States"]["SendBatch"]
    assert send["Resource"] == "arn:aws:states:::aws-sdk:sqs:sendMessageBatch"
    assert send["Parameters"]["QueueUrl"] == out["queue_url"]
    # The map's output only says where its results are (AWS, "ResultWriter (Map)"): the last state
    # has maintenance sum them, and its answer is the execution's output.
    assert mapped["Next"] == "Summarize"
    summarize = machine["definition"]["States"]["Summarize"]
    assert summarize["Parameters"]["Payload"] == {
        "action": "summarize_reprocess",
        "MapRunArn.$": "$.MapRunArn",
        "ResultWriterDetails.$": "$.ResultWriterDetails",
    }
    assert (summarize["OutputPath"], summarize["End"]) == ("$.Payload", True)


def retried_errors(task: dict) -> set[str]:
    return {name for retrier in task.get("Retry", []) for name in retrier["ErrorEquals"]}


def test_every_maintenance_task_retries_lambdas_transient_errors_and_the_functions_own(out, client):
    """Step Functions names a function error by its errorType ("Error handling"): the maintenance
    function raises TransientError when S3 or DynamoDB throttles or answers 5xx; Lambda's own
    transient exceptions are retried as AWS recommends ("Handling transient Lambda service exceptions")."""
    reprocess = state_machine(client, out["reprocess_state_machine_arn"])["definition"]["States"]
    reconcile = state_machine(client, out["reconcile_state_machine_arn"])["definition"]["States"]
    tasks = {
        "Plan": reprocess["Reprocess"]["ItemProcessor"]["States"]["Plan"],
        "Summarize": reprocess["Summarize"],
        "Reconcile": reconcile["Reconcile"],
    }
    for name, task in tasks.items():
        assert {
            "TransientError",
            "Lambda.TooManyRequestsException",
            "Lambda.ServiceException",
        } <= retried_errors(task), name


def test_reconcile_machine_pages_until_the_maintenance_function_says_done(out, client):
    states = state_machine(client, out["reconcile_state_machine_arn"])["definition"]["States"]
    assert states["Reconcile"]["Parameters"]["Payload"] == {"action": "reconcile", "next.$": "$.next"}
    assert states["More"]["Choices"] == [{"Variable": "$.next", "IsNull": False, "Next": "Reconcile"}]
    assert (
        states["Send"]["ItemProcessor"]["States"]["SendBatch"]["Parameters"]["QueueUrl"] == out["queue_url"]
    )


def test_state_machines_log_errors_only_without_execution_data_to_their_own_group(out, client):
    groups = client("logs").describe_log_groups(logGroupNamePrefix="/aws/vendedlogs/states/")["logGroups"]
    (group,) = groups
    assert (group["logGroupName"], group.get("retentionInDays")) == ("/aws/vendedlogs/states/imgpipe-dev", 30)
    for arn in (out["reprocess_state_machine_arn"], out["reconcile_state_machine_arn"]):
        logging = state_machine(client, arn)["loggingConfiguration"]
        # The provider sends no includeExecutionData for false (AWS's default), and the emulator
        # echoes the request: absent means false.
        assert logging["level"] == "ERROR" and logging.get("includeExecutionData", False) is False
        (destination,) = logging["destinations"]
        assert destination["cloudWatchLogsLogGroup"]["logGroupArn"] == f"{group['arn'].removesuffix(':*')}:*"


def test_state_machines_role_grants_exactly_what_both_machines_call(out, client):
    iam = client("iam")
    role = state_machine(client, out["reprocess_state_machine_arn"])["roleArn"].split("/")[-1]
    assert role == "imgpipe-dev-states-us-east-1"
    assert state_machine(client, out["reconcile_state_machine_arn"])["roleArn"].endswith(f"/{role}")
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    statements = {s["Sid"]: grants(s) for s in doc["Statement"]}
    function_arn = client("lambda").get_function(FunctionName=out["maintenance_function_name"])[
        "Configuration"
    ]["FunctionArn"]
    uploads, resized = out["uploads_bucket_name"], out["resized_bucket_name"]
    assert statements == {
        "ListOriginals": ({"s3:ListBucket"}, {f"arn:aws:s3:::{uploads}"}),
        # SendMessageBatch is authorised by sqs:SendMessage.
        "SendToResizeQueue": ({"sqs:SendMessage"}, {out["queue_arn"]}),
        "InvokeMaintenance": ({"lambda:InvokeFunction"}, {function_arn, f"{function_arn}:*"}),
        # A Distributed Map runs its children as executions of its own machine.
        "StartMapRunChildren": ({"states:StartExecution"}, {out["reprocess_state_machine_arn"]}),
        "ManageMapRunChildren": (
            {"states:DescribeExecution", "states:StopExecution"},
            {"arn:aws:states:us-east-1:123456789012:execution:imgpipe-dev-reprocess/*"},
        ),
        "WriteMapRunResults": (
            {"s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"},
            {f"arn:aws:s3:::{resized}/reprocess-results/*"},
        ),
        # Log delivery actions support no resource-level permissions (Step Functions developer guide).
        "DeliverLogs": (
            {
                "logs:CreateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:DescribeLogGroups",
                "logs:DescribeResourcePolicies",
                "logs:GetLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:UpdateLogDelivery",
            },
            {"*"},
        ),
    }


def test_the_schedule_starts_reconcile_every_15_minutes_with_a_role_that_may_only_do_that(out, client):
    schedule = client("scheduler").get_schedule(Name="imgpipe-dev-reconcile")
    assert schedule["ScheduleExpression"] == "rate(15 minutes)"
    assert schedule["State"] == "ENABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Target"]["Arn"] == out["reconcile_state_machine_arn"]
    iam = client("iam")
    role = schedule["Target"]["RoleArn"].split("/")[-1]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (trusted,) = trust["Statement"]
    assert trusted["Principal"] == {"Service": "scheduler.amazonaws.com"}
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert [grants(s) for s in doc["Statement"]] == [
        ({"states:StartExecution"}, {out["reconcile_state_machine_arn"]})
    ]


def test_no_role_grants_a_wildcard_action_or_resource(out, client):
    for role in (out["resize_function_name"], out["upload_function_name"], out["maintenance_function_name"]):
        for statement in role_policy(client, role).values():
            actions, resources = grants(statement)
            assert not [a for a in actions if a == "*" or a.endswith(":*")]
            assert "*" not in resources


def test_resize_function_environment_matches_the_contract(out, client):
    config = client("lambda").get_function_configuration(FunctionName=out["resize_function_name"])
    assert config["Handler"] == "resize_handler.handler"
    assert config["Architectures"] == ["arm64"]
    assert config["Runtime"] == "python3.12"
    env = config["Environment"]["Variables"]
    assert json.loads(env.pop("RENDITIONS")) == DEFAULT_RENDITIONS
    assert env == {
        "UPLOADS_BUCKET": out["uploads_bucket_name"],
        "RESIZED_BUCKET": out["resized_bucket_name"],
        "TABLE_NAME": out["table_name"],
        "MAX_PIXELS": "100000000",
        "MAX_SOURCE_BYTES": "104857600",
        "MAX_RECEIVE_COUNT": "3",  # the fixture's resize_max_receive_count
        "MAX_ANIMATION_PIXELS": "50000000",
        "AVIF_SPEED": "8",
        "JPEG_BACKGROUND": "#ffffff",
        "WATERMARK_TEXT": "",
        "WATERMARK_KEY": "",
        "WATERMARK_POSITION": "bottom-right",
        "WATERMARK_OPACITY": "0.5",
        "WATERMARK_MARGIN": "0.02",
        "WATERMARK_SCALE": "0.25",
        "WATERMARK_MIN_SIZE": "300",
        "EVENT_BUS_NAME": "imgpipe-dev-events",
        "EVENT_SOURCE": "imgpipe",
        "RENDITION_URL_EXPIRY_SECONDS": "3600",
        "CDN_BASE_URL": out["cdn_base_url"],
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "resize",
        "POWERTOOLS_METRICS_NAMESPACE": "imgpipe-dev",
    }


def test_upload_function_environment_matches_the_contract(out, client):
    config = client("lambda").get_function_configuration(FunctionName=out["upload_function_name"])
    assert config["Handler"] == "upload_handler.handler"
    assert config["Environment"]["Variables"] == {
        "UPLOADS_BUCKET": out["uploads_bucket_name"],
        "RESIZED_BUCKET": out["resized_bucket_name"],
        "TABLE_NAME": out["table_name"],
        "MAX_UPLOAD_BYTES": "4194304",
        "MAX_PRESIGNED_BYTES": "52428800",
        "PRESIGN_POST_EXPIRY_SECONDS": "900",
        "RENDITION_URL_EXPIRY_SECONDS": "3600",
        "CDN_BASE_URL": out["cdn_base_url"],
        "API_AUTH": "open",
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "upload",
        "POWERTOOLS_METRICS_NAMESPACE": "imgpipe-dev",
    }


def test_functions_log_to_their_own_groups_with_retention(out, client):
    groups = client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    retention = {g["logGroupName"]: g.get("retentionInDays") for g in groups}
    for function in (
        out["resize_function_name"],
        out["upload_function_name"],
        out["maintenance_function_name"],
    ):
        assert retention[f"/aws/lambda/{function}"] == 30


def test_api_has_exactly_its_routes_proxied_to_the_upload_function(out, client):
    api = client("apigatewayv2")
    routes = api.get_routes(ApiId=out["api_id"])["Items"]
    assert sorted(r["RouteKey"] for r in routes) == [
        "DELETE /images/{id}",
        "GET /",
        "GET /assets/{name}",
        "GET /images/{id}",
        "GET /limits",
        "POST /images",
        "POST /uploads",
    ]
    assert {r["AuthorizationType"] for r in routes} == {"NONE"}
    (integration,) = api.get_integrations(ApiId=out["api_id"])["Items"]
    assert {r["Target"] for r in routes} == {f"integrations/{integration['IntegrationId']}"}
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert out["upload_function_name"] in integration["IntegrationUri"]
    stage = api.get_stage(ApiId=out["api_id"], StageName="$default")
    assert stage["AutoDeploy"] is True
    assert json.loads(stage["AccessLogSettings"]["Format"])["requestId"] == "$context.requestId"


def test_api_may_invoke_the_upload_function_only_for_its_routes(out, client):
    policy = json.loads(client("lambda").get_policy(FunctionName=out["upload_function_name"])["Policy"])
    arns = sorted(s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in policy["Statement"])
    base = f"arn:aws:execute-api:us-east-1:123456789012:{out['api_id']}/*"
    assert arns == [
        f"{base}/DELETE/images/*",
        f"{base}/GET/",
        f"{base}/GET/assets/*",
        f"{base}/GET/images/*",
        f"{base}/GET/limits",
        f"{base}/POST/images",
        f"{base}/POST/uploads",
    ]
    assert {s["Principal"]["Service"] for s in policy["Statement"]} == {"apigateway.amazonaws.com"}


def test_table_is_on_demand_keyed_by_id_with_point_in_time_recovery(out, client):
    ddb = client("dynamodb")
    table = ddb.describe_table(TableName=out["table_name"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # No SSEDescription: DynamoDB's AWS owned key, not the AWS managed key aws/dynamodb
    # (DescribeTable reports SSEDescription only for KMS keys, which KMS bills).
    assert "SSEDescription" not in table
    ttl = ddb.describe_time_to_live(TableName=out["table_name"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = ddb.describe_continuous_backups(TableName=out["table_name"])["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_table_has_the_sparse_unfinished_index_records_py_writes(out, client):
    """The index the in-process tests create too (tests/conftest.py). No role may Query it yet:
    the exact grants above name the table's ARN only, not ``table/.../index/*``."""
    table = client("dynamodb").describe_table(TableName=out["table_name"])["Table"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == records.UNFINISHED_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "unfinished", "KeyType": "HASH"},
        {"AttributeName": "unfinished_since", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_alarms_watch_the_dlq_queue_age_throttles_and_rates_over_several_periods(out, client):
    cloudwatch = client("cloudwatch")
    alarms = {
        a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="imgpipe-dev")["MetricAlarms"]
    }
    single = {name: (a["Namespace"], a["MetricName"]) for name, a in alarms.items() if "MetricName" in a}
    assert single == {
        "imgpipe-dev-resize-dlq-messages": ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        "imgpipe-dev-resize-queue-age": ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        "imgpipe-dev-resize-throttles": ("AWS/Lambda", "Throttles"),
        "imgpipe-dev-upload-throttles": ("AWS/Lambda", "Throttles"),
        "imgpipe-dev-maintenance-throttles": ("AWS/Lambda", "Throttles"),
        "imgpipe-dev-events-not-published": ("imgpipe-dev", "EventsNotPublished"),
        "imgpipe-dev-maintenance-events-not-published": ("imgpipe-dev", "EventsNotPublished"),
        "imgpipe-dev-reprocess-executions-failed": ("AWS/States", "ExecutionsFailed"),
        "imgpipe-dev-reconcile-executions-failed": ("AWS/States", "ExecutionsFailed"),
    }
    # Both functions that publish completion events count the ones lost after their retries under
    # the same metric, told apart by Powertools' service dimension (POWERTOOLS_SERVICE_NAME).
    for name, function in (
        ("imgpipe-dev-events-not-published", "resize"),
        ("imgpipe-dev-maintenance-events-not-published", "maintenance"),
    ):
        alarm = alarms[name]
        assert alarm["Dimensions"] == [{"Name": "service", "Value": function}], name
        assert (alarm["Statistic"], alarm["Threshold"], alarm["EvaluationPeriods"]) == ("Sum", 0, 1), name
    for machine in ("reprocess", "reconcile"):
        alarm = alarms[f"imgpipe-dev-{machine}-executions-failed"]
        assert alarm["Dimensions"] == [
            {"Name": "StateMachineArn", "Value": out[f"{machine}_state_machine_arn"]}
        ]
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Sum",
            0,
            "GreaterThanThreshold",
        )
    rates = {name: a for name, a in alarms.items() if a.get("Metrics")}
    assert sorted(rates) == [
        "imgpipe-dev-api-5xx",
        "imgpipe-dev-resize-errors",
        "imgpipe-dev-resize-image-failures",
        "imgpipe-dev-resize-image-retries",
        "imgpipe-dev-upload-errors",
    ]
    for name, alarm in rates.items():
        assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (3, 5), name
        (returned,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
        assert returned["Expression"].startswith("100 * ("), name
    failures = rates["imgpipe-dev-resize-image-failures"]["Metrics"]
    watched = {
        q["MetricStat"]["Metric"]["MetricName"]: q["MetricStat"]["Metric"]
        for q in failures
        if "MetricStat" in q
    }
    assert set(watched) == {"ImagesFailed", "ImagesErrored", "BadMessages", "MessagesReceived"}
    for metric in watched.values():
        assert metric["Namespace"] == "imgpipe-dev"
        assert metric["Dimensions"] == [{"Name": "service", "Value": "resize"}]
    topic = client("sns").get_topic_attributes(TopicArn=alarms["imgpipe-dev-api-5xx"]["AlarmActions"][0])
    assert topic["Attributes"]["KmsMasterKeyId"]
    assert {tuple(a["AlarmActions"]) for a in alarms.values()} == {(topic["Attributes"]["TopicArn"],)}


def test_the_events_rule_sends_image_events_to_the_backend_queue_and_only_it_may(out, client):
    # EventBridge delivers to an SQS target as the service events.amazonaws.com; the queue policy lets
    # it send for this rule only (aws:SourceArn), as AWS recommends against the confused deputy.
    events, sqs = client("events"), client("sqs")
    assert out["event_bus_name"] == "imgpipe-dev-events"
    (rule,) = events.list_rules(EventBusName=out["event_bus_name"])["Rules"]
    assert json.loads(rule["EventPattern"]) == {
        "source": ["imgpipe"],
        "detail-type": ["Image Processed", "Image Failed"],
    }
    url = out["events_queue_url"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    (statement,) = json.loads(attrs["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule["Arn"]}}
    assert statement["Resource"] == attrs["QueueArn"] and statement["Action"] == "sqs:SendMessage"
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=out["event_bus_name"])["Targets"]
    assert target["Arn"] == attrs["QueueArn"]
    entry = {"EventBusName": out["event_bus_name"], "Source": "imgpipe", "DetailType": "Image Processed"}
    other = {**entry, "DetailType": "Something Else"}
    sent = events.put_events(Entries=[{**entry, "Detail": '{"n": 1}'}, {**other, "Detail": '{"n": 2}'}])
    assert sent["FailedEntryCount"] == 0
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
    assert [json.loads(m["Body"])["detail"] for m in messages] == [{"n": 1}]
