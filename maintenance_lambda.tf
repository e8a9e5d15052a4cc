# The maintenance function: the reprocess and reconcile state machines'
# (step_functions.tf) decisions, one action per invocation
# (lambda/maintenance_handler.py dispatches on event["action"]). Same package,
# runtime and architecture as the other functions; it reads the resize
# function's configuration so it computes the same config version.

locals {
  # A processing record older than this was received max_receive_count times
  # and never finished: every receive's visibility timeout has run out.
  reconcile_stuck_after_seconds = local.resize_visibility_timeout * var.resize_max_receive_count
}

resource "aws_cloudwatch_log_group" "maintenance" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; a CMK would need a logs-specific key policy and the logs hold no image data or secrets
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (30 days by default), chosen per environment
  name              = "/aws/lambda/${local.maintenance_function}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "maintenance" {
  #checkov:skip=CKV_AWS_116:invoked synchronously by Step Functions, which retries and records failures; a function DLQ applies only to asynchronous invocations
  #checkov:skip=CKV_AWS_117:the function reaches only S3 and DynamoDB over AWS endpoints; a VPC would add NAT or endpoints and cold-start cost for no isolation gain
  #checkov:skip=CKV_AWS_173:the environment holds names and settings, no secrets; Lambda encrypts it at rest with an AWS managed key
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile this project does not own; the package is built reproducibly and its hash is pinned by source_code_hash
  #checkov:skip=CKV_AWS_115:the state machines' MaxConcurrency (reprocess_max_concurrency) bounds its concurrency
  function_name    = local.maintenance_function
  description      = "Reprocess and reconcile decisions for the Step Functions state machines"
  role             = aws_iam_role.maintenance.arn
  handler          = "maintenance_handler.handler"
  runtime          = var.lambda_runtime
  architectures    = [var.lambda_architecture]
  memory_size      = 256
  timeout          = 120
  filename         = local.lambda_zip_file
  s3_bucket        = local.lambda_from_s3 ? var.lambda_artifact_bucket : null
  s3_key           = local.lambda_from_s3 ? var.lambda_artifact_key : null
  source_code_hash = local.lambda_code_hash

  environment {
    # The resize function's configuration (renditions, limits, watermark: the
    # config version), then what only maintenance reads.
    variables = merge(aws_lambda_function.resize.environment[0].variables, {
      PRESIGN_POST_EXPIRY_SECONDS = tostring(var.presign_post_expiry_seconds)
      RECONCILE_PENDING_AFTER_S   = tostring(var.reconcile_pending_after_seconds)
      RECONCILE_STUCK_AFTER_S     = tostring(local.reconcile_stuck_after_seconds)
      POWERTOOLS_SERVICE_NAME     = "maintenance"
    })
  }

  tracing_config {
    mode = var.lambda_tracing_enabled ? "Active" : "PassThrough"
  }

  depends_on = [aws_cloudwatch_log_group.maintenance, aws_iam_role_policy.maintenance]
}
