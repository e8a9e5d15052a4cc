"""local/cdn.py: the local stack's stand-in for CloudFront in front of the resized bucket (docs/cdn.md)."""

from __future__ import annotations

import boto3
import pytest

from local.cdn import Cdn
from tests import images

BUCKET = "resized"
KEY = "q3XaaaaaaaaaaaaaaaaaZw/kP0c2Lr9QdWm/thumb.webp"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
def cdn(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    data = images.encode(images.quadrants(), "WEBP")
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=data, ContentType="image/webp", CacheControl=IMMUTABLE)
    return Cdn(s3, BUCKET), data


def test_get_and_head_serve_the_object_with_its_headers(cdn):
    server, data = cdn
    status, headers, body = server.get("GET", f"/cdn/{KEY}")
    assert (status, body) == (200, data)
    headers = dict(headers)
    assert (headers["Content-Type"], headers["Cache-Control"]) == ("image/webp", IMMUTABLE)
    assert headers["ETag"].startswith('"') and headers["Last-Modified"].endswith(" GMT")
    assert server.get("HEAD", f"/cdn/{KEY}")[0] == 200  # the front drops the body of a HEAD


def test_a_matching_if_none_match_is_304(cdn):
    server, _ = cdn
    etag = dict(server.get("GET", f"/cdn/{KEY}")[1])["ETag"]
    assert server.get("GET", f"/cdn/{KEY}", if_none_match=etag)[:1] == (304,)
    assert server.get("GET", f"/cdn/{KEY}", if_none_match='"other"')[0] == 200


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH", "OPTIONS"])
def test_methods_the_distribution_does_not_allow_are_403(cdn, method):
    """The distribution allows GET and HEAD; CloudFront answers any other method with 403."""
    server, _ = cdn
    assert server.get(method, f"/cdn/{KEY}")[0] == 403
    assert boto3.client("s3").head_object(Bucket=BUCKET, Key=KEY)["ContentLength"] > 0  # untouched


def test_a_missing_key_is_403_as_s3_answers_cloudfront_without_list_bucket(cdn):
    """The bucket policy grants CloudFront s3:GetObject only; without s3:ListBucket S3 answers a
    missing key with 403 AccessDenied, not 404, and CloudFront passes it on."""
    server, _ = cdn
    status, _, body = server.get("GET", "/cdn/q3XaaaaaaaaaaaaaaaaaZw/nothing/thumb.webp")
    assert status == 403 and b"Access Denied" in body
    assert server.handles("/cdn/x") and not server.handles("/images/x")
