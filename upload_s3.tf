# The uploads bucket (the design's "uploaded-images"): originals from the API
# (originals/{id}/{filename}) and any object put there directly. Every created
# object is announced to the resize queue.

data "aws_iam_policy_document" "uploads_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.uploads.arn, "${aws_s3_bucket.uploads.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    # Presigned POSTs from browsers and curl go to the bucket's HTTPS endpoint,
    # so they satisfy this condition like every SDK call does.
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket" "uploads" {
  #checkov:skip=CKV_AWS_18:server access logs need a dedicated log bucket (itself unlogged); enable CloudTrail S3 data events for an audit trail instead
  #checkov:skip=CKV_AWS_144:cross-region replication doubles storage and transfer cost; versioning plus the noncurrent-version lifecycle covers accidental deletes
  bucket = local.uploads_bucket_name
}

# Browsers POST the presigned form straight to the bucket, so the bucket (not
# the API) must answer their CORS preflight: for the API's own origin, where
# the upload page is served (docs/browser.md), and the configured origins.
resource "aws_s3_bucket_cors_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  cors_rule {
    allowed_methods = ["POST"]
    allowed_origins = distinct(concat([aws_apigatewayv2_api.images.api_endpoint], var.api_cors_allowed_origins))
    allowed_headers = ["*"]
    expose_headers  = ["ETag", "Location"]
    max_age_seconds = 3000
  }
}

moved {
  from = aws_s3_bucket_cors_configuration.uploads[0]
  to   = aws_s3_bucket_cors_configuration.uploads
}

# Every created and every removed object (API originals, presigned POSTs,
# direct puts, and their deletes) goes to the resize queue; the handler skips
# the watermark key and derives ids itself. A removal deletes the renditions of
# the version it removes (docs/ordering.md, "Deletes"): ObjectRemoved:Delete
# for a version deleted by id, ObjectRemoved:DeleteMarkerCreated for a DELETE
# without one (Amazon S3 User Guide, "Supported event types").
resource "aws_s3_bucket_notification" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  # S3 checks on this PUT that the queue policy lets it send: the policy is the
  # queue's own argument, set when the queue is created.
  queue {
    id        = "resize"
    queue_arn = aws_sqs_queue.resize.arn
    events    = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
  }
}
