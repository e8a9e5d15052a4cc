"""The API's Terraform inputs, planned for real: an explicit authorization choice,
an audience whenever there is an issuer, and limits that hold on AWS.

``terraform plan`` of the root module against the emulator (so the data sources
answer and nothing reaches AWS), with the provider from the local mirror, as
tests/test_terraform.py runs it. A refused value fails the plan with our message.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from local.tf import REPO_ROOT, Terraform, TerraformError
from tests.conftest import require_terraform
from tests.reattached_provider import reattached

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

require_terraform()

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"


@pytest.fixture(scope="module")
def planner(tmp_path_factory, lambda_zip):
    """plan(**variables): terraform plan of the root module against a fresh emulator."""
    from local.emulator import running

    work = tmp_path_factory.mktemp("tf-api")
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(running(log_path=work / "moto.log"))
        tf = Terraform(REPO_ROOT, data_dir=work / "data", state=work / "state.tfstate", env=CREDENTIALS)
        tf.init()
        stack.enter_context(reattached(tf, work / "provider.log"))  # tests/reattached_provider.py
        base = {
            "aws_endpoint_url": emulator.endpoint,
            "lambda_zip_path": str(lambda_zip),
        }

        def plan(**variables) -> bool:
            return tf.plan({**base, **variables})

        yield plan


def refused(plan, **variables) -> str:
    with pytest.raises(TerraformError) as info:
        plan(**variables)
    return re.sub(r"\s+", " ", str(info.value))


def test_without_an_explicit_authorization_choice_the_plan_fails(planner):
    assert "api_auth must be set" in refused(planner)


def test_an_issuer_without_an_audience_is_refused_since_no_token_could_pass(planner):
    # API Gateway: "A valid JWT must provide an aud that matches at least one entry in this list."
    message = refused(planner, api_auth="jwt", api_jwt_issuer=ISSUER)
    assert "api_jwt_audience must name at least one audience" in message
    assert "lets no token pass" in message


def test_jwt_without_an_issuer_and_open_with_an_issuer_are_refused(planner):
    assert "needs api_jwt_issuer" in refused(planner, api_auth="jwt", api_jwt_audience=["web"])
    contradicting = refused(planner, api_auth="open", api_jwt_issuer=ISSUER, api_jwt_audience=["web"])
    assert 'api_jwt_issuer is set but api_auth = "open"' in contradicting


def test_limits_that_would_not_hold_on_aws_are_refused(planner):
    message = refused(
        planner,
        api_auth="open",
        # S3 refuses a presigned URL or form once the temporary credentials that signed it expire.
        presign_post_expiry_seconds=3601,
        rendition_url_expiry_seconds=7200,
        # Lambda: "Request must be smaller than 6291456 bytes" for a synchronous invoke.
        max_upload_bytes=4603905,
        api_jwt_audience=[""],
    )
    assert "presign_post_expiry_seconds must be 60..3600" in message
    assert "rendition_url_expiry_seconds must be 1..3600" in message
    assert "max_upload_bytes must be 1..4603904" in message
    assert "none empty" in message


def test_both_explicit_choices_plan_at_their_limits(planner):
    limits = {"presign_post_expiry_seconds": 3600, "rendition_url_expiry_seconds": 3600}
    limits["max_upload_bytes"] = 4603904
    assert planner(api_auth="open", **limits) is True
    assert planner(api_auth="jwt", api_jwt_issuer=ISSUER, api_jwt_audience=["web-client"]) is True


def test_terraform_and_the_function_share_the_direct_upload_bound():
    from imgpipe.upload_config import MAX_DIRECT_BYTES, MAX_EXPIRY_SECONDS

    text = Path(REPO_ROOT / "variables.tf").read_text()
    assert f"var.max_upload_bytes <= {MAX_DIRECT_BYTES}" in text
    assert f"var.presign_post_expiry_seconds <= {MAX_EXPIRY_SECONDS}" in text
    assert f"var.rendition_url_expiry_seconds <= {MAX_EXPIRY_SECONDS}" in text
