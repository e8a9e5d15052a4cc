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

resource "aws_s3_bucket_ownership_controls" "resized" {
  bucket = aws_s3_bucket.resized.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "resized" {
  bucket                  = aws_s3_bucket.resized.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "resized" {
  bucket = aws_s3_bucket.resized.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "resized" {
  bucket = aws_s3_bucket.resized.id

  rule {
    bucket_key_enabled = local.use_kms

    apply_server_side_encryption_by_default {
      sse_algorithm     = local.use_kms ? "aws:kms" : "AES256"
      kms_master_key_id = var.kms_key_arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "resized" {
  bucket = aws_s3_bucket.resized.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.resized]
}

# Not against the emulator: it serves plain HTTP on loopback, where this
# TLS-only Deny would rightly refuse every request (and moto, which knows no
# aws:SecureTransport, would refuse them even over TLS). The document is still
# rendered (and checked by the tests) in every mode.
resource "aws_s3_bucket_policy" "resized" {
  count = local.emulated ? 0 : 1

  bucket = aws_s3_bucket.resized.id
  policy = data.aws_iam_policy_document.resized_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.resized]
}
