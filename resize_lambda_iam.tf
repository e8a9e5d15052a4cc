# The resize function's role: read originals, write renditions, consume its
# queue, update the metadata table, create the id secret, publish completion
# events, log to its own log group.

locals {
  # The id secret's item in the images table (lambda/imgpipe/id_secret.py,
  # ITEM_ID): never a 22-character image id.
  id_secret_item = "#image-id-secret"
}

data "aws_iam_policy_document" "resize" {
  source_policy_documents = [data.aws_iam_policy_document.shared["resize"].json]

  statement {
    sid       = "ReadOriginals"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.uploads.arn}/*"]
  }

  # Without s3:ListBucket, S3 answers a missing object (a deleted original, a
  # WATERMARK_KEY that does not exist) with 403 AccessDenied instead of 404
  # NoSuchKey (GetObject API reference), and the handler could not tell
  # "gone" from "forbidden".
  statement {
    sid       = "ListOriginals"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn]
  }

  statement {
    sid       = "WriteRenditions"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.resized.arn}/*"]
  }

  statement {
    # The renditions of a version that lost to a newer one (docs/ordering.md).
    sid       = "DeleteSupersededRenditions"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.resized.arn}/*"]
  }

  # What Lambda's SQS event source mapping does with this role (Lambda
  # developer guide, "Execution role permissions" for Amazon SQS).
  statement {
    sid       = "ConsumeResizeQueue"
    effect    = "Allow"
    actions   = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    resources = [local.queue_arn]
  }

  statement {
    sid       = "UpdateImageRecords"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.images.arn]
  }

  # The secret that keys direct uploads' ids (docs/ids.md): created once, by
  # the first cold start, in its own item. dynamodb:LeadingKeys is the item's
  # partition key ("Using IAM policy conditions for fine-grained access
  # control", DynamoDB developer guide), so this put can write no image record.
  statement {
    sid       = "CreateIdSecret"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.images.arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:LeadingKeys"
      values   = [local.id_secret_item]
    }
  }

  # Presigned rendition URLs in completion events authorise as their signer; with the
  # CDN on the events carry CDN URLs and the role reads no renditions.
  dynamic "statement" {
    for_each = var.events_enabled && !local.cdn_enabled ? ["${aws_s3_bucket.resized.arn}/*"] : []

    content {
      sid       = "ReadRenditions"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.events_enabled ? [local.event_bus_arn] : []

    content {
      sid       = "PublishImageEvents"
      effect    = "Allow"
      actions   = ["events:PutEvents"]
      resources = [statement.value]
    }
  }
}

# The resize function's role in local.lambda_roles (lambda_roles.tf makes it).
locals {
  resize_lambda_role = {
    name        = local.resize_role
    description = "Resize function: reads originals, writes renditions, consumes the resize queue"
    policy      = data.aws_iam_policy_document.resize.json
  }
}
