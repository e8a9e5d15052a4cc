"""The root module's plan-time contract: names, keys, alarms, the table and the package.

Each test runs ``terraform plan`` (and reads ``terraform show -json``) against a
moto server, so the data sources (account, region) answer without AWS. Nothing
is applied except in the KMS test, which creates only what the functions'
policy documents need to be rendered. The package is a small stand-in zip with
the manifest tools/package.py writes, so no wheels are downloaded.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgpipe import records
from local.tf import Terraform, TerraformError
from tests.conftest import require_terraform
from tests.reattached_provider import reattached
from tools import package

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

require_terraform()

ACCOUNT = "123456789012"  # moto's account, the same in every region
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def write_package(directory: Path, arch: str = "arm64", runtime: str = "python3.12") -> Path:
    """A stand-in lambda.zip with the manifest beside it, as `make package` leaves them."""
    directory.mkdir(parents=True, exist_ok=True)
    zip_path = directory / "lambda.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("resize_handler.py", "def handler(event, context):\n    return {}\n")
    package.write_manifest(zip_path, arch, runtime)
    return zip_path


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    from local.emulator import running

    with running(log_path=tmp_path_factory.mktemp("moto") / "moto.log") as emu:
        yield emu


@pytest.fixture(scope="module")
def tf(tmp_path_factory) -> Iterator[Terraform]:
    """The module's wrapper; its commands share one provider process (tests/reattached_provider.py)."""
    base = tmp_path_factory.mktemp("tfplan")
    wrapper = Terraform(data_dir=base / "data", state=base / "state" / "terraform.tfstate", env=CREDENTIALS)
    wrapper.init()
    with reattached(wrapper, base / "provider.log"):
        yield wrapper


@pytest.fixture(scope="module")
def arm_package(tmp_path_factory) -> Path:
    return write_package(tmp_path_factory.mktemp("pkg-arm64"))


def planner(tf: Terraform, emulator, package: Path, directory: Path):
    """plan(**variables) -> the plan as `terraform show -json` gives it; TerraformError on failure."""

    def run(**variables) -> dict:
        variables = {
            "aws_endpoint_url": emulator.endpoint,
            "lambda_zip_path": str(package),
            "api_auth": "open",  # an explicit choice (docs/api-security.md)
            **variables,
        }
        var_file = directory / "vars.tfvars.json"
        var_file.write_text(json.dumps(variables))
        plan_file = directory / "tfplan"
        state = directory / "state" / "terraform.tfstate"
        tf.run(
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            f"-state={state}",
            f"-var-file={var_file}",
            f"-out={plan_file}",
        )
        return json.loads(tf.run("show", "-json", "-no-color", str(plan_file)).stdout)

    return run


@pytest.fixture
def plan(tf, emulator, arm_package, tmp_path):
    """plan(**variables) -> the plan as `terraform show -json` gives it; TerraformError on failure."""
    return planner(tf, emulator, arm_package, tmp_path)


@pytest.fixture(scope="class")
def default_plan(tf, emulator, arm_package, tmp_path_factory) -> dict:
    """The plan with the defaults, made once for the tests of a class that only read it."""
    return planner(tf, emulator, arm_package, tmp_path_factory.mktemp("default-plan"))()


def resources(planned: dict, type_: str, mode: str = "managed") -> dict[str, dict]:
    """Planned values (or, for data sources, values read at plan) by address."""
    found = {}
    for section in (planned.get("prior_state", {}).get("values", {}), planned["planned_values"]):
        for resource in section.get("root_module", {}).get("resources", []):
            if resource["type"] == type_ and resource["mode"] == mode:
                found[resource["address"]] = resource["values"]
    return found


def one(planned: dict, address: str) -> dict:
    type_ = address.removeprefix("data.").split(".")[0]
    mode = "data" if address.startswith("data.") else "managed"
    return resources(planned, type_, mode)[address]


def statements(policy_json: str) -> dict[str, dict]:
    return {s["Sid"]: s for s in json.loads(policy_json)["Statement"]}


def bucket_names(planned: dict) -> list[str]:
    return [values["bucket"] for values in resources(planned, "aws_s3_bucket").values()]


def role_names(planned: dict) -> list[str]:
    return [values["name"] for values in resources(planned, "aws_iam_role").values()]


# -- names ------------------------------------------------------------------


def test_two_regions_in_one_account_get_distinct_iam_role_names(plan):
    """IAM role names are unique per account, not per region (IAM quotas:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html),
    so a second region's CreateRole must not meet the first region's names."""
    east, west = plan(aws_region="us-east-1"), plan(aws_region="eu-west-1")
    assert not set(role_names(east)) & set(role_names(west))
    assert not set(bucket_names(east)) & set(bucket_names(west))
    assert sorted(role_names(east)) == [
        "imgpipe-dev-maintenance-us-east-1",
        "imgpipe-dev-resize-us-east-1",
        "imgpipe-dev-scheduler-us-east-1",
        "imgpipe-dev-states-us-east-1",
        "imgpipe-dev-upload-us-east-1",
    ]


def test_the_longest_names_the_variables_allow_fit_iam_and_s3_limits(plan):
    """IAM role names: at most 64 characters (IAM quotas); bucket names: at most 63
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
    Planned in a 14-character region (the longest today); aws_region admits 16."""
    region = "ap-southeast-5"
    planned = plan(name_prefix="a" * 12, environment="e" * 12, aws_region=region)
    headroom = 16 - len(region)
    roles, buckets = role_names(planned), bucket_names(planned)
    assert len(roles) == 5 and all(region in name for name in roles), roles
    assert max(len(name) for name in roles) + headroom <= 64, roles
    assert max(len(name) for name in buckets) + headroom == 63, buckets
    # (a region name over 16 characters is refused: TestVariablesRefusedAtPlan)


@pytest.mark.parametrize(("name_prefix", "environment"), [("amzn-s3", "demo"), ("amzn", "s3-demo")])
def test_prefix_and_environment_that_together_make_a_reserved_prefix_are_refused(
    plan, name_prefix, environment
):
    with pytest.raises(
        TerraformError, match=re.escape(f'("{name_prefix}-{environment}-") start with a prefix')
    ):
        plan(name_prefix=name_prefix, environment=environment)


# -- KMS ---------------------------------------------------------------------


def test_kms_key_policy_output_renders_what_the_users_key_needs(plan):
    # Without the CDN: its statement names the distribution's ARN, known only once it exists
    # (tests/test_terraform.py checks it on the applied module).
    planned = plan(kms_key_arn=KEY_ARN, cdn_enabled=False)
    policy = statements(planned["planned_values"]["outputs"]["kms_key_policy_json"]["value"])
    assert set(policy) == {
        "AccountAdministersKeyThroughIam",
        "CloudWatchAlarmsPublish",
        "S3NotifiesEncryptedQueue",
    }
    s3 = policy["S3NotifiesEncryptedQueue"]
    assert s3["Principal"] == {"Service": "s3.amazonaws.com"}
    assert s3["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::imgpipe-dev-uploads-{ACCOUNT}-us-east-1"},
    }
    # With kms_key_arn the topic and table use it; no alarm key is made.
    assert one(planned, "aws_sns_topic.alarms")["kms_master_key_id"] == KEY_ARN
    assert one(planned, "aws_dynamodb_table.images")["server_side_encryption"] == [
        {"enabled": True, "kms_key_arn": KEY_ARN}
    ]
    assert not resources(planned, "aws_kms_key")
    # Every queue too, with the data key reused for SQS's default 5 minutes (fewer KMS calls,
    # AWS "KmsDataKeyReusePeriodSeconds"): not SSE-SQS.
    queues = list(resources(planned, "aws_sqs_queue").values())
    assert len(queues) >= 2 and all(q["kms_master_key_id"] == KEY_ARN for q in queues), queues
    assert {q["kms_data_key_reuse_period_seconds"] for q in queues} == {300}
    assert not any(q.get("sqs_managed_sse_enabled") for q in queues)


def test_kms_key_arn_must_be_a_key_arn_in_the_deployment_region(plan):
    # (an alias or a bare key id is refused by the variable itself: TestVariablesRefusedAtPlan)
    with pytest.raises(TerraformError, match="key in the region deployed to"):
        plan(kms_key_arn=KEY_ARN.replace("us-east-1", "eu-west-1"))


def test_roles_use_the_key_only_through_the_services_that_hold_their_data_and_may_send_traces(
    tf, emulator, arm_package, tmp_path
):
    """kms:ViaService limits a grant to requests a service makes on the caller's behalf
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service).
    With tracing on, each role may send traces: X-Ray's write actions support no resource-level
    permissions (Resource "*"), and Step Functions also reads the sampling rules (Step Functions
    developer guide, "IAM policies for using AWS X-Ray in Step Functions"). The documents name
    buckets and the table, so those are created (a targeted apply)."""
    variables = {
        "aws_endpoint_url": emulator.endpoint,
        "lambda_zip_path": str(arm_package),
        "api_auth": "open",
        "kms_key_arn": KEY_ARN,
        "lambda_tracing_enabled": True,
        "name_prefix": "kmscheck",
        "dynamodb_deletion_protection": False,
    }
    var_file = tmp_path / "vars.tfvars.json"
    var_file.write_text(json.dumps(variables))
    state = tmp_path / "terraform.tfstate"
    roles = ("resize", "upload", "maintenance", "states")
    targets = [f"-target=data.aws_iam_policy_document.{name}" for name in roles]
    tf.run(
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        f"-state={state}",
        f"-var-file={var_file}",
        *targets,
    )
    documents = {
        r["name"]: json.loads(r["instances"][0]["attributes"]["json"])
        for r in json.loads(state.read_text())["resources"]
        if r["type"] == "aws_iam_policy_document" and r["name"] in roles
    }
    expected = {
        "resize": [
            "dynamodb.us-east-1.amazonaws.com",
            "s3.us-east-1.amazonaws.com",
            "sqs.us-east-1.amazonaws.com",
        ],
        "upload": ["dynamodb.us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com"],
        "maintenance": ["dynamodb.us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com"],
        # the state machines: the encrypted resize queue and the run's results in the resized bucket
        "states": ["s3.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com"],
    }
    for name, services in expected.items():
        (kms,) = [s for s in documents[name]["Statement"] if s["Sid"] == "UseDataKey"]
        assert kms["Resource"] == KEY_ARN
        assert sorted(kms["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert sorted(kms["Condition"]["StringEquals"]["kms:ViaService"]) == services
    writes = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    sampling = ["xray:GetSamplingRules", "xray:GetSamplingTargets"]
    for name in roles:
        (traces,) = [s for s in documents[name]["Statement"] if s["Sid"] == "WriteTraces"]
        assert traces["Resource"] == "*"
        assert sorted(traces["Action"]) == sorted(writes + (sampling if name == "states" else []))


# -- CDN -----------------------------------------------------------------------

CERTIFICATE = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0d3e8a57-5a8c-4b8e-9c4e-1234567890ab"


def test_cdn_aliases_use_the_certificate_with_sni_and_tls_1_2(plan):
    planned = plan(
        cdn_aliases=["img.example.com"], cdn_acm_certificate_arn=CERTIFICATE, cdn_price_class="PriceClass_All"
    )
    distribution = one(planned, "aws_cloudfront_distribution.renditions[0]")
    assert distribution["aliases"] == ["img.example.com"]
    assert distribution["price_class"] == "PriceClass_All"
    (certificate,) = distribution["viewer_certificate"]
    assert certificate["acm_certificate_arn"] == CERTIFICATE
    assert (certificate["ssl_support_method"], certificate["minimum_protocol_version"]) == (
        "sni-only",
        "TLSv1.2_2021",
    )
    assert certificate["cloudfront_default_certificate"] is False
    # The URLs the API hands out name the alias, not the distribution's own domain.
    assert planned["planned_values"]["outputs"]["cdn_base_url"]["value"] == "https://img.example.com"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"cdn_aliases": ["img.example.com"]}, "cdn_aliases needs cdn_acm_certificate_arn"),
        ({"cdn_acm_certificate_arn": CERTIFICATE}, "used only with cdn_aliases"),
    ],
)
def test_cdn_settings_aws_would_refuse_fail_the_plan(plan, variables, message):
    # (a certificate outside us-east-1, a wildcard alias, an unknown price class: refused by the
    # variables themselves, TestVariablesRefusedAtPlan)
    with pytest.raises(TerraformError, match=message):
        plan(**variables)


def test_without_the_cdn_both_roles_may_read_renditions_to_presign_them(tf, emulator, arm_package, tmp_path):
    """A presigned GET carries the signer's permissions: S3 checks the signing role's grant
    (the upload role's for GET /images/{id}, the resize role's for completion events).
    With the CDN on both grants are gone (tests/test_terraform.py); off, they come back."""
    variables = {
        "aws_endpoint_url": emulator.endpoint,
        "lambda_zip_path": str(arm_package),
        "api_auth": "open",
        "cdn_enabled": False,
        "name_prefix": "nocdn",
        "dynamodb_deletion_protection": False,
    }
    var_file = tmp_path / "vars.tfvars.json"
    var_file.write_text(json.dumps(variables))
    state = tmp_path / "terraform.tfstate"
    tf.run(
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        f"-state={state}",
        f"-var-file={var_file}",
        "-target=data.aws_iam_policy_document.upload",
        "-target=data.aws_iam_policy_document.resize",
        "-target=data.aws_iam_policy_document.resized_bucket",
    )
    documents = {
        r["name"]: json.loads(r["instances"][0]["attributes"]["json"])
        for r in json.loads(state.read_text())["resources"]
        if r["type"] == "aws_iam_policy_document" and r["name"] in ("upload", "resize", "resized_bucket")
    }
    for role in ("upload", "resize"):
        (read,) = [s for s in documents[role]["Statement"] if s["Sid"] == "ReadRenditions"]
        assert (read["Action"], read["Resource"]) == (
            "s3:GetObject",
            f"arn:aws:s3:::nocdn-dev-resized-{ACCOUNT}-us-east-1/*",
        ), role
    assert [s["Sid"] for s in documents["resized_bucket"]["Statement"]] == ["DenyInsecureTransport"]


# -- alarms --------------------------------------------------------------------


def rate_alarm(planned: dict, key: str) -> dict:
    alarm = one(planned, f'aws_cloudwatch_metric_alarm.rate["{key}"]')
    queries = {q["id"]: q for q in alarm["metric_query"]}
    return {"alarm": alarm, "queries": queries}


def test_per_message_failures_of_the_resize_handler_are_alarmed_as_rates(plan):
    """With ReportBatchItemFailures a failed record is not a Lambda Error, so the
    handler's own EMF metrics are watched. Powertools Metrics adds the dimension
    service=<POWERTOOLS_SERVICE_NAME> to every metric, in the namespace
    POWERTOOLS_METRICS_NAMESPACE (local.name here)."""
    planned = plan(alarm_image_failure_percent=7)
    failures = rate_alarm(planned, "resize-image-failures")
    metrics = {
        q["metric"][0]["metric_name"]: q["metric"][0] for q in failures["queries"].values() if q["metric"]
    }
    assert set(metrics) == {"ImagesFailed", "ImagesErrored", "BadMessages", "MessagesReceived"}
    for metric in metrics.values():
        assert metric["namespace"] == "imgpipe-dev"
        assert metric["dimensions"] == {"service": "resize"}
        assert metric["stat"] == "Sum"
    assert (
        failures["queries"]["rate"]["expression"] == "100 * (FILL(m0, 0) + FILL(m1, 0) + FILL(m2, 0)) / total"
    )
    assert failures["alarm"]["threshold"] == 7
    retries = rate_alarm(planned, "resize-image-retries")
    assert {q["metric"][0]["metric_name"] for q in retries["queries"].values() if q["metric"]} == {
        "ImagesRetried",
        "MessagesReceived",
    }
    dlq = one(planned, 'aws_cloudwatch_metric_alarm.metric["resize-dlq-messages"]')
    assert dlq["metric_name"] == "ApproximateNumberOfMessagesVisible"


def test_no_alarm_fires_on_a_single_request_or_image(plan):
    """The 5xx alarm was threshold 0 over one period: one request paged the on-call.
    Now every rate alarm needs M of N five-minute periods over a percentage."""
    planned = plan(alarm_api_5xx_percent=2, alarm_datapoints_to_alarm=4, alarm_evaluation_periods=6)
    api = rate_alarm(planned, "api-5xx")
    assert api["queries"]["rate"]["expression"] == "100 * (FILL(m0, 0)) / total"
    assert api["queries"]["m0"]["metric"][0]["metric_name"] == "5xx"
    assert api["queries"]["total"]["metric"][0]["metric_name"] == "Count"
    assert api["alarm"]["threshold"] == 2
    for address, alarm in resources(planned, "aws_cloudwatch_metric_alarm").items():
        if address.endswith(
            (
                '["resize-dlq-messages"]',
                '["resize-queue-age"]',
                '["events-not-published"]',
                '["maintenance-events-not-published"]',
                '["reprocess-executions-failed"]',
                '["reconcile-executions-failed"]',
            )
        ):
            # a dead-lettered image, a queue backed up for 5 minutes, a completion event lost
            # after its retries (a backend never hears of that image: docs/events.md), or a state
            # machine run that failed after its own retries (docs/reprocess.md) is not one request
            continue
        assert (alarm["datapoints_to_alarm"], alarm["evaluation_periods"]) == (4, 6), address
    with pytest.raises(TerraformError, match="must not exceed alarm_evaluation_periods"):
        plan(alarm_datapoints_to_alarm=6, alarm_evaluation_periods=5)


# -- renditions: formats and crops (docs/formats.md) -------------------------------


def test_an_attention_crop_and_the_avif_speed_bounds_plan(plan):
    """The values the handler accepts pass the variable's validation too (the environment itself is
    unknown until apply: test_terraform checks it)."""
    thumb = {"name": "thumb", "width": 200, "height": 200, "fit": "cover", "crop": "attention"}
    for speed in (0, 10):
        planned = plan(renditions=[thumb], avif_speed=speed, resize_max_animation_pixels=0)
        assert one(planned, 'aws_lambda_function.function["resize"]')["function_name"].endswith("-resize")


# -- DynamoDB ------------------------------------------------------------------


# -- the defaults: one plan, read by each test ------------------------------------


class TestTheDefaults:
    """What a deployment with every variable at its default plans (one plan for the class)."""

    def test_alarm_key_lets_cloudwatch_publish_only_for_this_deployments_alarms(self, default_plan):
        """Confused-deputy protection: a service principal's grant carries aws:SourceAccount
        and aws:SourceArn (https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html;
        SNS's key policy for AWS services publishing to encrypted topics)."""
        planned = default_plan
        policy = statements(one(planned, "data.aws_iam_policy_document.alarms_key")["json"])
        cloudwatch = policy["CloudWatchAlarmsPublish"]
        assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
        assert cloudwatch["Condition"] == {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:imgpipe-dev-*"},
        }
        alarm_names = [a["alarm_name"] for a in resources(planned, "aws_cloudwatch_metric_alarm").values()]
        assert alarm_names and all(name.startswith("imgpipe-dev-") for name in alarm_names)

    def test_the_cdn_is_on_by_default_and_off_leaves_presigned_urls(self, default_plan, plan):
        on, off = default_plan, plan(cdn_enabled=False)
        assert set(resources(on, "aws_cloudfront_distribution")) == {
            "aws_cloudfront_distribution.renditions[0]"
        }
        assert set(resources(on, "aws_cloudfront_origin_access_control")) == {
            "aws_cloudfront_origin_access_control.renditions[0]"
        }
        assert not resources(off, "aws_cloudfront_distribution")
        assert not resources(off, "aws_cloudfront_origin_access_control")
        # Off: the outputs say there is no CDN (the upload function then presigns, with the grant the
        # next-but-one test checks).
        outputs = off["planned_values"]["outputs"]
        assert all(outputs[name].get("value") is None for name in ("cdn_base_url", "cdn_distribution_id"))

    def test_table_expires_records_by_ttl_and_uses_the_aws_owned_key_by_default(self, default_plan):
        """SSESpecification Enabled=false is DynamoDB's AWS owned key; true without a key is
        the AWS managed key aws/dynamodb, with KMS charges (CloudFormation's SSESpecification,
        the provider's server_side_encryption)."""
        planned = default_plan
        table = one(planned, "aws_dynamodb_table.images")
        assert table["ttl"] == [{"attribute_name": "expires_at", "enabled": True}]
        (encryption,) = table["server_side_encryption"]
        assert encryption["enabled"] is False and not encryption.get("kms_key_arn")
        assert planned["planned_values"]["outputs"]["table_ttl_attribute"]["value"] == "expires_at"
        assert records.TTL_ATTRIBUTE == "expires_at"  # what the upload API writes (lambda/imgpipe/records.py)


# -- values a variable's own validation refuses -----------------------------------


@dataclass(frozen=True)
class Refused:
    """A value a variable's validation refuses: ``subject`` is that variable, ``message`` what the
    plan's error says about it."""

    id: str
    variables: dict
    subject: str
    message: str


REFUSED = [
    # aws_region admits 16 characters, so that bucket names stay within 63 (S3 naming rules)
    Refused(
        "aws_region-too-long", {"aws_region": "ap-southeastxxx-9"}, "aws_region", "at most 16 characters"
    ),
    # S3 bucket names must not start with xn--, sthree- or amzn-s3-demo- (S3 naming rules)
    *(
        Refused(
            f"name_prefix-{prefix}",
            {"name_prefix": prefix, "environment": "dev"},
            "name_prefix",
            "prefix S3 reserves",
        )
        for prefix in ("xn-", "xn--a", "sthree", "sthree-x", "amzn-s3-demo")
    ),
    Refused(
        "kms-alias-arn",
        {"kms_key_arn": f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/images"},
        "kms_key_arn",
        "not an alias",
    ),
    Refused(
        "kms-key-id", {"kms_key_arn": "1234abcd-12ab-34cd-56ef-1234567890ab"}, "kms_key_arn", "not an alias"
    ),
    # "CloudFront only supports ACM certificates in the US East (N. Virginia) Region" (ViewerCertificate)
    Refused(
        "cdn-certificate-outside-us-east-1",
        {
            "cdn_aliases": ["img.example.com"],
            "cdn_acm_certificate_arn": CERTIFICATE.replace("us-east-1", "eu-west-1"),
        },
        "cdn_acm_certificate_arn",
        "in us-east-1",
    ),
    Refused(
        "cdn-wildcard-alias",
        {"cdn_aliases": ["*.example.com"], "cdn_acm_certificate_arn": CERTIFICATE},
        "cdn_aliases",
        "must be lowercase domain names",
    ),
    Refused(
        "cdn-price-class",
        {"cdn_price_class": "PriceClass_300"},
        "cdn_price_class",
        "PriceClass_100, PriceClass_200 or PriceClass_All",
    ),
    Refused(
        "attention-crop-with-contain",
        {"renditions": [{"name": "a", "width": 9, "height": 9, "crop": "attention"}]},
        "renditions",
        "attention only",
    ),
    Refused(
        "unknown-crop",
        {"renditions": [{"name": "a", "width": 9, "height": 9, "fit": "cover", "crop": "faces"}]},
        "renditions",
        "crop",
    ),
    Refused("avif_speed-11", {"avif_speed": 11}, "avif_speed", "avif_speed must be"),
    Refused("avif_speed-fraction", {"avif_speed": 7.5}, "avif_speed", "avif_speed must be"),
]


def refusal_groups(cases: list[Refused]) -> list[list[Refused]]:
    """The cases in groups that set disjoint variables (first fit, in order): each group is one plan."""
    groups: list[list[Refused]] = []
    for case in cases:
        for group in groups:
            if not any(set(case.variables) & set(other.variables) for other in group):
                group.append(case)
                break
        else:
            groups.append([case])
    return groups


REFUSAL_GROUPS = refusal_groups(REFUSED)


@pytest.fixture(scope="class")
def refusals(tf, emulator, arm_package, tmp_path_factory):
    """refusals(case) -> the errors (one text each) of the plan made for the group holding ``case``."""
    run = planner(tf, emulator, arm_package, tmp_path_factory.mktemp("refused"))
    errors: dict[int, str] = {}

    def errors_of(case: Refused) -> list[str]:
        (index,) = [i for i, group in enumerate(REFUSAL_GROUPS) if case in group]
        if index not in errors:
            variables = {k: v for member in REFUSAL_GROUPS[index] for k, v in member.variables.items()}
            with pytest.raises(TerraformError) as caught:
                run(**variables)
            errors[index] = str(caught.value)
        return errors[index].split("Error: ")[1:]

    return errors_of


class TestVariablesRefusedAtPlan:
    """A value AWS would refuse fails the plan with the variable's own message.

    Terraform checks every input variable's validation in one plan and reports each failure as
    its own "Invalid value for variable" error, naming the variable (``var.NAME is ...``). So cases
    on different variables share one plan, and each case finds its message in the error about its
    own variable: five plans instead of fifteen."""

    @pytest.mark.parametrize("case", REFUSED, ids=[case.id for case in REFUSED])
    def test_the_plan_fails_naming_the_variable_and_why(self, refusals, case):
        about = [error for error in refusals(case) if f"var.{case.subject} is" in error]
        assert about, f"no error about var.{case.subject}"
        assert any(re.search(case.message, error) for error in about), about


# -- the package ---------------------------------------------------------------


def test_a_zip_built_for_x86_64_fails_the_plan_for_arm64_functions(plan, tmp_path):
    x86 = write_package(tmp_path / "x86", arch="x86_64")
    with pytest.raises(TerraformError) as caught:
        plan(lambda_zip_path=str(x86), lambda_architecture="arm64")
    message = " ".join(str(caught.value).split())
    assert "built for x86_64 and python3.12, but lambda_architecture = arm64" in message
    assert "make package ARCH=arm64 LAMBDA_RUNTIME=python3.12" in message
    plan(lambda_zip_path=str(x86), lambda_architecture="x86_64")  # matching: plans


def test_a_zip_built_for_another_python_fails_the_plan(plan, tmp_path):
    py313 = write_package(tmp_path / "py313", runtime="python3.13")
    with pytest.raises(TerraformError, match=re.escape("built for arm64 and python3.13")):
        plan(lambda_zip_path=str(py313))


def test_a_zip_without_its_manifest_or_with_a_stale_one_fails_the_plan(plan, tmp_path):
    zip_path = write_package(tmp_path / "pkg")
    manifest = package.manifest_path(zip_path)
    with zipfile.ZipFile(zip_path, "a") as zf:
        zf.writestr("upload_handler.py", "")  # rebuilt without its manifest
    with pytest.raises(TerraformError, match="describes another build"):
        plan(lambda_zip_path=str(zip_path))
    manifest.unlink()
    with pytest.raises(TerraformError, match="has no manifest beside it"):
        plan(lambda_zip_path=str(zip_path))


def test_an_artifact_bucket_package_must_say_what_it_was_built_for(plan):
    artifact = {"lambda_artifact_bucket": "artifacts", "lambda_artifact_sha256": "A" * 43 + "="}
    with pytest.raises(TerraformError, match="lambda_artifact_manifest is required"):
        plan(**artifact)
    with pytest.raises(TerraformError, match="built for x86_64"):
        plan(**artifact, lambda_artifact_manifest={"architecture": "x86_64", "runtime": "python3.12"})
    plan(**artifact, lambda_artifact_manifest={"architecture": "arm64", "runtime": "python3.12"})


# -- completion events (docs/events.md) ----------------------------------------


def webhook_secret(emulator) -> str:
    import boto3

    client = boto3.client(
        "secretsmanager", endpoint_url=emulator.endpoint, region_name="us-east-1", **_keys()
    )
    secret = json.dumps({"header": "X-Api-Key", "value": "s3cret"})
    try:
        return client.create_secret(Name="imgpipe-webhook", SecretString=secret)["ARN"]
    except client.exceptions.ResourceExistsException:
        return client.describe_secret(SecretId="imgpipe-webhook")["ARN"]


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def test_the_webhook_calls_with_the_secrets_key_retries_a_day_then_its_own_dlq(plan, emulator):
    # EventBridge: an API destination target needs a role EventBridge assumes with
    # events:InvokeApiDestination; undelivered events go to the target's DLQ, whose policy must let
    # events.amazonaws.com send for the rule (User Guide, "Using dead-letter queues").
    planned = plan(
        events_webhook_url="https://hooks.example.com/images",
        events_webhook_secret_arn=webhook_secret(emulator),
        kms_key_arn=KEY_ARN,
        cdn_enabled=False,  # else the key policy names the distribution's ARN, unknown at plan
    )
    rule_arn = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/imgpipe-dev-events/imgpipe-dev-images"
    connection = one(planned, "aws_cloudwatch_event_connection.webhook[0]")
    assert connection["authorization_type"] == "API_KEY"
    assert connection["auth_parameters"][0]["api_key"][0]["key"] == "X-Api-Key"
    destination = one(planned, "aws_cloudwatch_event_api_destination.webhook[0]")
    assert (destination["invocation_endpoint"], destination["http_method"]) == (
        "https://hooks.example.com/images",
        "POST",
    )
    target = one(planned, "aws_cloudwatch_event_target.webhook[0]")
    assert target["retry_policy"] == [{"maximum_event_age_in_seconds": 86400, "maximum_retry_attempts": 185}]
    dlq = statements(one(planned, "data.aws_iam_policy_document.webhook_dlq[0]")["json"])
    assert dlq["EventBridgeSendsUndelivered"]["Principal"] == {"Service": "events.amazonaws.com"}
    assert dlq["EventBridgeSendsUndelivered"]["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}
    role = statements(one(planned, "data.aws_iam_policy_document.events_assume_role")["json"])
    assert role["EventBridgeAssumeRole"]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    key = statements(planned["planned_values"]["outputs"]["kms_key_policy_json"]["value"])
    assert key["EventBridgeSendsToEncryptedQueues"]["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}
    alarms = [a["alarm_name"] for a in resources(planned, "aws_cloudwatch_metric_alarm").values()]
    assert {
        "imgpipe-dev-events-not-published",
        "imgpipe-dev-maintenance-events-not-published",
        "imgpipe-dev-webhook-dlq-messages",
    } <= set(alarms)
    webhook_alarm = one(planned, 'aws_cloudwatch_metric_alarm.metric["webhook-dlq-messages"]')
    assert webhook_alarm["dimensions"] == {"QueueName": one(planned, "aws_sqs_queue.webhook_dlq[0]")["name"]}
    assert not resources(planned, "aws_sqs_queue").get(
        "aws_sqs_queue.events[0]"
    )  # the queue is its own choice


def test_a_webhook_without_its_secret_is_refused(plan):
    with pytest.raises(TerraformError, match="events_webhook_url needs events_webhook_secret_arn"):
        plan(events_webhook_url="https://hooks.example.com/images")


def test_an_existing_bus_is_used_not_made(plan):
    # (the grant and the function's environment are unknown until the buckets exist:
    # tests/test_terraform.py checks them applied)
    planned = plan(event_bus_name="company-bus")
    assert not resources(planned, "aws_cloudwatch_event_bus")
    assert planned["planned_values"]["outputs"]["event_bus_name"]["value"] == "company-bus"


def test_events_off_means_no_bus_and_no_alarm(plan):
    planned = plan(events_enabled=False)
    assert not resources(planned, "aws_cloudwatch_event_bus")
    assert planned["planned_values"]["outputs"]["event_bus_name"].get("value") is None
    alarms = [a["alarm_name"] for a in resources(planned, "aws_cloudwatch_metric_alarm").values()]
    assert "imgpipe-dev-events-not-published" not in alarms
    assert "imgpipe-dev-maintenance-events-not-published" not in alarms
