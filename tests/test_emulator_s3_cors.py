"""The emulator answers a browser's CORS preflight as S3 does (local/moto_s3_cors.py).

AWS, S3 API Reference, "Appendix: OPTIONS object": "When a browser sends this
preflight request, Amazon S3 responds by evaluating the rules that are defined
in the cors configuration. If cors is not enabled on the bucket, then Amazon S3
returns a 403 Forbidden response." User Guide, CORS: S3 "uses the first
CORSRule rule that matches": origin, requested method and every requested
header must be allowed. A preflight carries no credentials, and the emulator
here enforces IAM as the local stack's does.
"""

from __future__ import annotations

import pytest
import requests

from local.emulator import running

pytestmark = pytest.mark.slow

PAGE = "http://127.0.0.1:8080"
WITH_CORS = "cors-probe"
WITHOUT_CORS = "no-cors-probe"


@pytest.fixture(scope="module")
def strict():
    """An emulator that authenticates and authorises every request, with two buckets."""
    with running(strict=True) as emulator:
        s3 = emulator.client("s3")
        for bucket in (WITH_CORS, WITHOUT_CORS):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_cors(
            Bucket=WITH_CORS,
            CORSConfiguration={
                "CORSRules": [
                    {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "MaxAgeSeconds": 10},
                    {
                        "AllowedMethods": ["POST"],
                        "AllowedOrigins": [PAGE, "https://*.example.com"],
                        "AllowedHeaders": ["content-type", "x-amz-*"],
                        "ExposeHeaders": ["ETag", "Location"],
                        "MaxAgeSeconds": 3000,
                    },
                ]
            },
        )
        yield emulator


def preflight(emulator, bucket: str, origin: str, method: str, headers: str = "") -> requests.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return requests.options(f"{emulator.endpoint}/{bucket}", headers=asked, timeout=30)


def test_an_allowed_preflight_is_200_unauthenticated_with_the_first_matching_rule(strict):
    response = preflight(strict, WITH_CORS, PAGE, "POST", "content-type, x-amz-meta-image-id")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert response.headers["Access-Control-Allow-Methods"] == "POST"  # the POST rule, not the GET one
    assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-meta-image-id"
    assert response.headers["Access-Control-Expose-Headers"] == "ETag, Location"
    assert response.headers["Access-Control-Max-Age"] == "3000"
    wildcard = preflight(strict, WITH_CORS, "https://app.example.com", "POST")
    assert wildcard.status_code == 200
    assert wildcard.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        ("https://elsewhere.test", "POST", ""),  # origin in no rule
        (PAGE, "PUT", ""),  # method in no rule
        (PAGE, "POST", "authorization"),  # header in no rule
    ],
)
def test_a_preflight_no_rule_allows_is_403(strict, origin, method, headers):
    response = preflight(strict, WITH_CORS, origin, method, headers)
    assert response.status_code == 403
    assert "<Code>AccessForbidden</Code>" in response.text


def test_a_bucket_without_cors_refuses_every_preflight(strict):
    assert preflight(strict, WITHOUT_CORS, PAGE, "POST").status_code == 403
