"""CloudFront distributions as AWS returns them where moto 5.2 does not: OAC, S3 origins, cache policies.

moto keeps a distribution's origins, cache behaviours and certificate settings
in its own objects and differs from what CloudFront returns
(``GetDistribution``, ``GetDistributionConfig``) in four ways:

1. an origin's ``OriginAccessControlId``, the origin access control that signs
   CloudFront's requests to an S3 origin with SigV4;
2. an origin's ``S3OriginConfig`` (``OriginAccessIdentity`` empty with an OAC);
3. and it adds legacy ``ForwardedValues`` to a cache behaviour that names a
   ``CachePolicyId``: CloudFront returns none there ("A cache behavior can use
   either a cache policy or legacy cache settings", ``ForwardedValues``: "we
   recommend that you use a cache policy");
4. it answers ``SSLSupportMethod`` ``sni-only`` for a distribution that uses
   CloudFront's own certificate, where none was set ("If the distribution
   doesn't use Aliases ... set CloudFrontDefaultCertificate to true and leave
   all other fields empty", ``ViewerCertificate``).

Without this, the provider reads the distribution back without its OAC and with
forwarded values, and a second ``terraform plan`` would replace the origin and
drop the forwarded values and the support method on every run. ``local.moto_server`` calls ``patch()``
before serving. moto does not sign anything or serve any content: the local
stack serves renditions itself (``local.front``, docs/cdn.md).
"""

from __future__ import annotations

from typing import Any


def patch() -> None:
    from moto.cloudfront import models

    origin_init = models.Origin.__init__
    behaviour_init = models.DefaultCacheBehaviour.__init__
    certificate_init = models.ViewerCertificate.__init__

    def origin(self: Any, config: dict[str, Any]) -> None:
        origin_init(self, config)
        self.origin_access_control_id = config.get("OriginAccessControlId") or ""
        self.s3_origin_config = config.get("S3OriginConfig")

    def behaviour(self: Any, config: dict[str, Any]) -> None:
        behaviour_init(self, config)
        if config.get("CachePolicyId") and "ForwardedValues" not in config:
            self.forwarded_values = None

    def certificate(self: Any, config: dict[str, Any]) -> None:
        certificate_init(self, config)
        self.ssl_support_method = config.get("SSLSupportMethod") or None

    models.Origin.__init__ = origin
    models.ViewerCertificate.__init__ = certificate
    models.DefaultCacheBehaviour.__init__ = behaviour
