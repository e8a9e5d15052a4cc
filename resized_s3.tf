# The resized bucket (the design's "resized-images"): renditions at
# {id}/{tag}/{rendition}.{ext}, one tag per source version and rendition config
# (docs/ordering.md). Private; clients read renditions through the CDN
# (cdn.tf, docs/cdn.md), or with cdn_enabled = false through presigned GET URLs
# from the API.

data "aws_iam_policy_document" "resized_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.resized.arn, "${aws_s3_bucket.resized.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # Origin access control: CloudFront signs its requests as the service
  # principal, and aws:SourceArn names the one distribution that may read
  # ("Restrict access to an Amazon S3 origin", Amazon CloudFront Developer Guide).
  dynamic "statement" {
    for_each = local.cdn_enabled ? [aws_cloudfront_distribution.renditions[0].arn] : []

    content {
      sid       = "CloudFrontReadsRenditions"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = ["${aws_s3_bucket.resized.arn}/*"]

      principals {
        type        = "Service"
        identifiers = ["cloudfront.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceArn"
        values   = [statement.value]
      }
    }
  }
}

resource "aws_s3_bucket" "resized" {
  #checkov:skip=CKV_AWS_18:server access logs need a dedicated log bucket (itself unlogged); enable CloudTrail S3 data events for an audit trail instead
  #checkov:skip=CKV_AWS_144:cross-region replication doubles storage and transfer cost; versioning plus the noncurrent-version lifecycle covers accidental deletes
  #checkov:skip=CKV2_AWS_62:nothing reacts to new renditions; the resize function records them in the table itself
  bucket = local.resized_bucket_name
}
