# What both buckets (upload_s3.tf, resized_s3.tf) get alike, written once:
# owner-enforced objects, public access blocked, versioning, default
# encryption, lifecycle rules and the TLS-only bucket policy. Each resource
# repeats over the buckets by role; only the policy document differs.

locals {
  buckets = {
    uploads = { id = aws_s3_bucket.uploads.id, policy = data.aws_iam_policy_document.uploads_bucket.json }
    resized = { id = aws_s3_bucket.resized.id, policy = data.aws_iam_policy_document.resized_bucket.json }
  }
}

resource "aws_s3_bucket_ownership_controls" "images" {
  for_each = local.buckets

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "images" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "images" {
  for_each = local.buckets

  bucket = each.value.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "images" {
  for_each = local.buckets

  bucket = each.value.id

  rule {
    bucket_key_enabled = local.use_kms

    apply_server_side_encryption_by_default {
      sse_algorithm     = local.use_kms ? "aws:kms" : "AES256"
      kms_master_key_id = var.kms_key_arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "images" {
  for_each = local.buckets

  bucket = each.value.id

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

  depends_on = [aws_s3_bucket_versioning.images]
}

# Not against the emulator: it serves plain HTTP on loopback, where the
# TLS-only Deny would rightly refuse every request (and moto, which knows no
# aws:SecureTransport, would refuse them even over TLS). The documents are still
# rendered (and checked by the tests) in every mode.
resource "aws_s3_bucket_policy" "images" {
  for_each = { for role, bucket in local.buckets : role => bucket if !local.emulated }

  bucket = each.value.id
  policy = each.value.policy

  depends_on = [aws_s3_bucket_public_access_block.images]
}

# These were written out once per bucket (aws_s3_bucket_versioning.uploads,
# ...resized, ...): moved, so an existing deployment plans no replacement.
moved {
  from = aws_s3_bucket_ownership_controls.uploads
  to   = aws_s3_bucket_ownership_controls.images["uploads"]
}

moved {
  from = aws_s3_bucket_ownership_controls.resized
  to   = aws_s3_bucket_ownership_controls.images["resized"]
}

moved {
  from = aws_s3_bucket_public_access_block.uploads
  to   = aws_s3_bucket_public_access_block.images["uploads"]
}

moved {
  from = aws_s3_bucket_public_access_block.resized
  to   = aws_s3_bucket_public_access_block.images["resized"]
}

moved {
  from = aws_s3_bucket_versioning.uploads
  to   = aws_s3_bucket_versioning.images["uploads"]
}

moved {
  from = aws_s3_bucket_versioning.resized
  to   = aws_s3_bucket_versioning.images["resized"]
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.uploads
  to   = aws_s3_bucket_server_side_encryption_configuration.images["uploads"]
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.resized
  to   = aws_s3_bucket_server_side_encryption_configuration.images["resized"]
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.uploads
  to   = aws_s3_bucket_lifecycle_configuration.images["uploads"]
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.resized
  to   = aws_s3_bucket_lifecycle_configuration.images["resized"]
}

moved {
  from = aws_s3_bucket_policy.uploads[0]
  to   = aws_s3_bucket_policy.images["uploads"]
}

moved {
  from = aws_s3_bucket_policy.resized[0]
  to   = aws_s3_bucket_policy.images["resized"]
}
