"""local/moto_cloudfront.py: a distribution reads back with its origin access control, as on AWS."""

from __future__ import annotations

import pytest

from local.emulator import running

pytestmark = pytest.mark.slow

CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"  # AWS's managed cache policy, a fixed id


def test_an_s3_origin_keeps_its_oac_a_cache_policy_has_no_forwarded_values_and_no_ssl_method_is_made_up():
    """CloudFront returns an origin's OriginAccessControlId and S3OriginConfig as they were
    set, and a cache behaviour that names a CachePolicyId has no legacy ForwardedValues
    (a behaviour uses a cache policy or legacy cache settings, not both), and a distribution on
    CloudFront's own certificate has only the fields it was given (ViewerCertificate). Terraform's
    second plan of the CDN (cdn.tf) is clean only if the emulator answers the same."""
    with running() as emu:
        cloudfront = emu.client("cloudfront")
        oac = cloudfront.create_origin_access_control(
            OriginAccessControlConfig={
                "Name": "renditions",
                "OriginAccessControlOriginType": "s3",
                "SigningBehavior": "always",
                "SigningProtocol": "sigv4",
            }
        )["OriginAccessControl"]["Id"]
        created = cloudfront.create_distribution(
            DistributionConfig={
                "CallerReference": "test",
                "Comment": "renditions",
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "resized",
                            "DomainName": "resized.s3.us-east-1.amazonaws.com",
                            "OriginAccessControlId": oac,
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "resized",
                    "ViewerProtocolPolicy": "https-only",
                    "CachePolicyId": CACHING_OPTIMIZED,
                },
                "ViewerCertificate": {
                    "CloudFrontDefaultCertificate": True,
                    "MinimumProtocolVersion": "TLSv1",
                },
            }
        )["Distribution"]
        for config in (
            cloudfront.get_distribution(Id=created["Id"])["Distribution"]["DistributionConfig"],
            cloudfront.get_distribution_config(Id=created["Id"])["DistributionConfig"],
        ):
            (origin,) = config["Origins"]["Items"]
            assert origin["OriginAccessControlId"] == oac
            assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
            behaviour = config["DefaultCacheBehavior"]
            assert behaviour["CachePolicyId"] == CACHING_OPTIMIZED
            assert "ForwardedValues" not in behaviour
            certificate = config["ViewerCertificate"]
            assert certificate["CloudFrontDefaultCertificate"] is True
            assert "SSLSupportMethod" not in certificate
