# The upload function's role: write and delete originals, read renditions
# (only with the CDN off: presigned GETs are signed with it), read and write the
# metadata table, log to its own group.

data "aws_iam_policy_document" "upload" {
  source_policy_documents = [data.aws_iam_policy_document.shared["upload"].json]

  # Presigned POSTs are signed with this role's credentials, so S3 checks this
  # same permission when the client posts the form.
  statement {
    sid       = "WriteOriginals"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.uploads.arn}/originals/*"]
  }

  # DELETE /images/{id} removes every version of an API original: it lists the
  # versions of the one key (ListObjectVersions is s3:ListBucketVersions, on the
  # bucket, narrowed by s3:prefix) and deletes each by id (s3:DeleteObjectVersion).
  statement {
    sid       = "ListOriginalVersions"
    effect    = "Allow"
    actions   = ["s3:ListBucketVersions"]
    resources = [aws_s3_bucket.uploads.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["originals/*"]
    }
  }

  statement {
    sid       = "DeleteOriginalVersions"
    effect    = "Allow"
    actions   = ["s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.uploads.arn}/originals/*"]
  }

  # Presigned rendition GETs are signed with this role, so S3 checks its grant;
  # with the CDN on, clients read through CloudFront and the role reads nothing.
  dynamic "statement" {
    for_each = local.cdn_enabled ? [] : ["${aws_s3_bucket.resized.arn}/*"]

    content {
      sid       = "ReadRenditions"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = [statement.value]
    }
  }

  statement {
    sid    = "ReadWriteImageRecords"
    effect = "Allow"
    # DeleteItem: POST /images writes the record before the object, and removes
    # it again when the S3 write fails, so no record is left stuck at "pending".
    # UpdateItem: DELETE /images/{id} marks the record deleted.
    actions   = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.images.arn]
  }
}

# The upload function's role in local.lambda_roles (lambda_roles.tf makes it).
locals {
  upload_lambda_role = {
    name        = local.upload_role
    description = "Upload function: writes originals, reads renditions, reads and writes image records"
    policy      = data.aws_iam_policy_document.upload.json
  }
}
