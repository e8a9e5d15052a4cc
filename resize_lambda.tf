# The resize function: SQS batches of S3 events in, renditions out.

locals {
  # var.renditions cannot default to a file's content, so null falls back to
  # the defaults file shared with the handler code and the tests.
  renditions_json = (
    var.renditions == null
    ? jsonencode(jsondecode(file("${path.module}/lambda/imgpipe/default_renditions.json")))
    : jsonencode(var.renditions)
  )
}

resource "aws_cloudwatch_log_group" "resize" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; a CMK would need a logs-specific key policy and the logs hold no image data or secrets
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (30 days by default), chosen per environment
  name              = "/aws/lambda/${local.resize_function}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "resize" {
  #checkov:skip=CKV_AWS_116:failed messages go to the SQS queue's dead-letter queue; a function DLQ applies only to asynchronous invocations, which this function never gets
  #checkov:skip=CKV_AWS_117:the function reaches only S3, SQS and DynamoDB over AWS endpoints; a VPC would add NAT or endpoints and cold-start cost for no isolation gain
  #checkov:skip=CKV_AWS_173:the environment holds names and settings, no secrets; Lambda encrypts it at rest with an AWS managed key
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile this project does not own; the package is built reproducibly and its hash is pinned by source_code_hash
  function_name                  = local.resize_function
  description                    = "Makes the configured renditions of each uploaded image"
  role                           = aws_iam_role.resize.arn
  handler                        = "resize_handler.handler"
  runtime                        = var.lambda_runtime
  architectures                  = [var.lambda_architecture]
  memory_size                    = var.resize_memory_mb
  timeout                        = var.resize_timeout_seconds
  reserved_concurrent_executions = var.resize_reserved_concurrency
  filename                       = local.lambda_zip_file
  s3_bucket                      = local.lambda_from_s3 ? var.lambda_artifact_bucket : null
  s3_key                         = local.lambda_from_s3 ? var.lambda_artifact_key : null
  source_code_hash               = local.lambda_code_hash

  environment {
    variables = {
      UPLOADS_BUCKET               = aws_s3_bucket.uploads.id
      RESIZED_BUCKET               = aws_s3_bucket.resized.id
      TABLE_NAME                   = aws_dynamodb_table.images.name
      RENDITIONS                   = local.renditions_json
      MAX_PIXELS                   = tostring(var.resize_max_pixels)
      MAX_SOURCE_BYTES             = tostring(var.resize_max_source_bytes)
      MAX_RECEIVE_COUNT            = tostring(var.resize_max_receive_count)
      MAX_ANIMATION_PIXELS         = tostring(var.resize_max_animation_pixels)
      AVIF_SPEED                   = tostring(var.avif_speed)
      JPEG_BACKGROUND              = var.jpeg_background
      WATERMARK_TEXT               = var.watermark_text
      WATERMARK_KEY                = var.watermark_key
      WATERMARK_POSITION           = var.watermark_position
      WATERMARK_OPACITY            = tostring(var.watermark_opacity)
      WATERMARK_MARGIN             = tostring(var.watermark_margin)
      WATERMARK_SCALE              = tostring(var.watermark_scale)
      WATERMARK_MIN_SIZE           = tostring(var.watermark_min_size)
      LOG_LEVEL                    = var.log_level
      POWERTOOLS_SERVICE_NAME      = "resize"
      POWERTOOLS_METRICS_NAMESPACE = local.name
    }
  }

  tracing_config {
    mode = var.lambda_tracing_enabled ? "Active" : "PassThrough"
  }

  depends_on = [aws_cloudwatch_log_group.resize, aws_iam_role_policy.resize]
}

# Concurrency: the mapping's maximum_concurrency caps how many invocations SQS
# starts, without throttling (throttled SQS invocations count as receives and
# push messages towards the DLQ). Reserved concurrency is left unreserved by
# default; if both are set, reserved must be at least the maximum.
resource "aws_lambda_event_source_mapping" "resize" {
  event_source_arn                   = aws_sqs_queue.resize.arn
  function_name                      = aws_lambda_function.resize.arn
  enabled                            = var.resize_event_source_enabled
  batch_size                         = var.resize_batch_size
  maximum_batching_window_in_seconds = var.resize_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = var.resize_max_concurrency == null ? [] : [var.resize_max_concurrency]

    content {
      maximum_concurrency = scaling_config.value
    }
  }

  lifecycle {
    precondition {
      condition     = var.resize_batch_size <= 10 || var.resize_batching_window_seconds > 0
      error_message = "resize_batch_size above 10 needs resize_batching_window_seconds > 0 (an SQS rule)."
    }

    precondition {
      condition     = var.resize_reserved_concurrency < 0 || var.resize_max_concurrency == null || var.resize_reserved_concurrency >= coalesce(var.resize_max_concurrency, 0)
      error_message = "resize_reserved_concurrency must be at least resize_max_concurrency (or -1): otherwise SQS batches are throttled and land in the DLQ."
    }
  }
}
