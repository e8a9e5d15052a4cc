# The maintenance function's role: read image records (by id and through the
# sparse unfinished index), update them (expire, mark stuck), look at originals
# (HeadObject), read the reprocess map's results, publish Image Failed for a
# record it marks failed, log to its own log group. It sends no messages: the state machines
# send the messages it plans (step_functions.tf).

data "aws_iam_policy_document" "maintenance" {
  source_policy_documents = [data.aws_iam_policy_document.shared["maintenance"].json]

  statement {
    sid       = "ReadAndUpdateImageRecords"
    effect    = "Allow"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.images.arn]
  }

  # Query on an index is authorised on the index's ARN (DynamoDB developer
  # guide, "Using IAM policy conditions for fine-grained access control").
  statement {
    sid       = "QueryUnfinishedIndex"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.images.arn}/index/${local.table_unfinished_index}"]
  }

  # The id secret (docs/ids.md), to tell an API key's id: read, or created by
  # the first cold start if no function made it yet, in its own item only
  # (dynamodb:LeadingKeys, as the resize role's CreateIdSecret).
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

  # HeadObject (of a key, no version) is authorised by s3:GetObject (HeadObject API reference).
  statement {
    sid       = "HeadOriginals"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.uploads.arn}/*"]
  }

  # Without s3:ListBucket S3 answers HeadObject of a missing key with 403, not
  # 404 (HeadObject API reference): a gone original would look forbidden.
  statement {
    sid       = "ListOriginals"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn]
  }

  # Reconcile publishes Image Failed for a stuck record it marks failed (docs/events.md), on
  # the resize function's bus only, and only when events are on (as the resize role).
  dynamic "statement" {
    for_each = var.events_enabled ? [local.event_bus_arn] : []

    content {
      sid       = "PublishImageEvents"
      effect    = "Allow"
      actions   = ["events:PutEvents"]
      resources = [statement.value]
    }
  }

  # The reprocess map's results (ResultWriter's manifest and result files), which
  # summarize_reprocess sums into the execution's output: that prefix only.
  statement {
    sid       = "ReadReprocessResults"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.resized.arn}/${local.reprocess_results_prefix}/*"]
  }
}

# The maintenance function's role in local.lambda_roles (lambda_roles.tf makes it).
locals {
  maintenance_lambda_role = {
    name        = local.maintenance_role
    description = "Maintenance function: reads and updates image records, looks at originals"
    policy      = data.aws_iam_policy_document.maintenance.json
  }
}
