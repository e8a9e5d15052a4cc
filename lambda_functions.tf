# Every Lambda function of the pipeline, written once. Each *_lambda.tf file
# declares its function's entry (name, handler, memory, timeout, concurrency
# and its own environment); the role is the one of the same key
# (lambda_roles.tf); the package, runtime, architecture, tracing, log group and
# shared environment are the same for all.

locals {
  lambda_functions = {
    maintenance = local.maintenance_lambda
    resize      = local.resize_lambda
    upload      = local.upload_lambda
  }

  # A function's log group ARN is this prefix, "/", its name: built from names, so the role
  # policies that grant writing to it are known at plan time (a policy document that read the
  # log group resource would be read at apply whenever another function is added, and every
  # role policy would show as changed).
  lambda_log_group_arn_prefix = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda"

  # What every function reads: where things are, how URLs are made, how it logs.
  lambda_shared_environment = {
    UPLOADS_BUCKET               = aws_s3_bucket.uploads.id
    RESIZED_BUCKET               = aws_s3_bucket.resized.id
    TABLE_NAME                   = aws_dynamodb_table.images.name
    RENDITION_URL_EXPIRY_SECONDS = tostring(var.rendition_url_expiry_seconds)
    CDN_BASE_URL                 = local.cdn_enabled ? local.cdn_base_url : ""
    LOG_LEVEL                    = var.log_level
    POWERTOOLS_METRICS_NAMESPACE = local.name
  }
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; a CMK would need a logs-specific key policy and the logs hold no image data, URLs or secrets
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (30 days by default), chosen per environment
  for_each = local.lambda_functions

  name              = "/aws/lambda/${each.value.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_116:resize failures go to its SQS queue's dead-letter queue, the upload function is invoked synchronously by API Gateway and maintenance by Step Functions (which retries and records failures); a function DLQ applies only to asynchronous invocations
  #checkov:skip=CKV_AWS_117:the functions reach only AWS endpoints (S3, SQS, DynamoDB, EventBridge); a VPC would add NAT or endpoints and cold-start cost for no isolation gain
  #checkov:skip=CKV_AWS_173:the environment holds names and settings, no secrets; Lambda encrypts it at rest with an AWS managed key
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile this project does not own; the package is built reproducibly and its hash is pinned by source_code_hash
  #checkov:skip=CKV_AWS_115:concurrency is each function's *_reserved_concurrency variable (unreserved by default); the SQS mapping's maximum concurrency, the API's throttling and the state machines' MaxConcurrency bound the rates
  for_each = local.lambda_functions

  function_name                  = each.value.name
  description                    = each.value.description
  role                           = aws_iam_role.function[each.key].arn
  handler                        = each.value.handler
  runtime                        = var.lambda_runtime
  architectures                  = [var.lambda_architecture]
  memory_size                    = each.value.memory_mb
  timeout                        = each.value.timeout_seconds
  reserved_concurrent_executions = each.value.reserved_concurrency
  filename                       = local.lambda_zip_file
  s3_bucket                      = local.lambda_from_s3 ? var.lambda_artifact_bucket : null
  s3_key                         = local.lambda_from_s3 ? var.lambda_artifact_key : null
  source_code_hash               = local.lambda_code_hash

  environment {
    variables = merge(
      local.lambda_shared_environment,
      each.value.environment,
      { POWERTOOLS_SERVICE_NAME = each.key },
    )
  }

  tracing_config {
    mode = var.lambda_tracing_enabled ? "Active" : "PassThrough"
  }

  # The log group first, so Lambda never creates one without retention; the role's
  # grants before the first invocation; the bus before the resize function publishes.
  depends_on = [
    aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function,
    aws_cloudwatch_event_bus.images,
  ]
}

moved {
  from = aws_lambda_function.resize
  to   = aws_lambda_function.function["resize"]
}

moved {
  from = aws_lambda_function.upload
  to   = aws_lambda_function.function["upload"]
}

moved {
  from = aws_cloudwatch_log_group.resize
  to   = aws_cloudwatch_log_group.function["resize"]
}

moved {
  from = aws_cloudwatch_log_group.upload
  to   = aws_cloudwatch_log_group.function["upload"]
}
