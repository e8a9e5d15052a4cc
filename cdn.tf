# CloudFront in front of the resized bucket (docs/cdn.md): on by default
# (cdn_enabled). The bucket stays private: CloudFront signs every origin request
# with SigV4 through an origin access control, and the bucket policy
# (resized_s3.tf) lets only this distribution read. Rendition keys change
# whenever their bytes could (a new source version or a new rendition config,
# docs/ordering.md), so the objects are cached as immutable and never purged.

locals {
  cdn_enabled = var.cdn_enabled

  # AWS's managed cache policy "CachingOptimized": its id is fixed and published
  # ("Use managed cache policies", Amazon CloudFront Developer Guide). Named by
  # id rather than looked up: the policy is AWS's, the same in every account.
  caching_optimized_policy_id = "658327ea-f89d-4fab-a63d-7e88639e58f6"

  # https://<first alias> or https://<distribution domain>; null with the CDN off.
  cdn_domain   = local.cdn_enabled ? try(var.cdn_aliases[0], aws_cloudfront_distribution.renditions[0].domain_name) : null
  cdn_base_url = local.cdn_enabled ? "https://${local.cdn_domain}" : null
}

resource "aws_cloudfront_origin_access_control" "renditions" {
  count = local.cdn_enabled ? 1 : 0

  name                              = "${local.name}-renditions-${local.region}"
  description                       = "CloudFront signs its requests to the resized bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_distribution" "renditions" {
  #checkov:skip=CKV_AWS_86:access logs need a logging bucket with ACLs enabled (CloudFront standard logs); CloudFront's own metrics cover delivery
  #checkov:skip=CKV2_AWS_47:a WAF web ACL, and its rules, are the operator's, through cdn_web_acl_id (none by default): the distribution serves only immutable, unguessable keys with GET and HEAD
  #checkov:skip=CKV_AWS_310:one origin; a failover origin would be a replica bucket this module does not make
  #checkov:skip=CKV_AWS_305:no default root object: the distribution serves rendition keys, never a site root
  #checkov:skip=CKV_AWS_374:renditions are served worldwide; a geo restriction is the operator's choice
  #checkov:skip=CKV2_AWS_32:the responses are images from S3 with their own Content-Type and Cache-Control; no HTML is served for security headers to protect
  count = local.cdn_enabled ? 1 : 0

  comment             = "${local.name} renditions"
  enabled             = true
  is_ipv6_enabled     = true
  http_version        = "http2and3"
  price_class         = var.cdn_price_class
  aliases             = var.cdn_aliases
  web_acl_id          = var.cdn_web_acl_id
  wait_for_deployment = var.cdn_wait_for_deployment

  origin {
    origin_id                = "resized"
    domain_name              = aws_s3_bucket.resized.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.renditions[0].id
  }

  default_cache_behavior {
    target_origin_id = "resized"
    # https-only, not redirect-to-https: every URL the API hands out is https,
    # and a redirect would first answer a plain-HTTP request, whose path (image
    # id and tag) has already crossed the network in the clear. CloudFront
    # answers plain HTTP with 403 (CacheBehavior ViewerProtocolPolicy).
    viewer_protocol_policy = "https-only"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    cache_policy_id        = local.caching_optimized_policy_id
    compress               = false # images are compressed already
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = var.cdn_acm_certificate_arn == null
    acm_certificate_arn            = var.cdn_acm_certificate_arn
    ssl_support_method             = var.cdn_acm_certificate_arn == null ? null : "sni-only"
    minimum_protocol_version       = var.cdn_acm_certificate_arn == null ? "TLSv1" : "TLSv1.2_2021"
  }

  lifecycle {
    # CloudFront serves an alternate domain name only with a certificate that
    # covers it ("If the distribution uses Aliases ... provide the ARN of the
    # ACM certificate", ViewerCertificate).
    precondition {
      condition     = length(var.cdn_aliases) == 0 || var.cdn_acm_certificate_arn != null
      error_message = "cdn_aliases needs cdn_acm_certificate_arn: a certificate in us-east-1 that covers every alias."
    }

    precondition {
      condition     = var.cdn_acm_certificate_arn == null || length(var.cdn_aliases) > 0
      error_message = "cdn_acm_certificate_arn is used only with cdn_aliases: without an alias the distribution serves its *.cloudfront.net name with CloudFront's own certificate."
    }
  }
}
