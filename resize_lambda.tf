# The resize function: SQS batches of S3 events in, renditions out.

locals {
  # var.renditions cannot default to a file's content, so null falls back to
  # the defaults file shared with the handler code and the tests.
  renditions_json = (
    var.renditions == null
    ? jsonencode(jsondecode(file("${path.module}/lambda/imgpipe/default_renditions.json")))
    : jsonencode(var.renditions)
  )

  # The resize function's entry in local.lambda_functions (lambda_functions.tf makes it).
  resize_lambda = {
    name                 = local.resize_function
    description          = "Makes the configured renditions of each uploaded image"
    handler              = "resize_handler.handler"
    memory_mb            = var.resize_memory_mb
    timeout_seconds      = var.resize_timeout_seconds
    reserved_concurrency = var.resize_reserved_concurrency
    environment = {
      RENDITIONS           = local.renditions_json
      MAX_PIXELS           = tostring(var.resize_max_pixels)
      MAX_SOURCE_BYTES     = tostring(var.resize_max_source_bytes)
      MAX_RECEIVE_COUNT    = tostring(var.resize_max_receive_count)
      MAX_ANIMATION_PIXELS = tostring(var.resize_max_animation_pixels)
      AVIF_SPEED           = tostring(var.avif_speed)
      JPEG_BACKGROUND      = var.jpeg_background
      WATERMARK_TEXT       = var.watermark_text
      WATERMARK_KEY        = var.watermark_key
      WATERMARK_POSITION   = var.watermark_position
      WATERMARK_OPACITY    = tostring(var.watermark_opacity)
      WATERMARK_MARGIN     = tostring(var.watermark_margin)
      WATERMARK_SCALE      = tostring(var.watermark_scale)
      WATERMARK_MIN_SIZE   = tostring(var.watermark_min_size)
      EVENT_BUS_NAME       = var.events_enabled ? local.event_bus_name : ""
      EVENT_SOURCE         = var.event_source
    }
  }
}

# Concurrency: the mapping's maximum_concurrency caps how many invocations SQS
# starts, without throttling (throttled SQS invocations count as receives and
# push messages towards the DLQ). Reserved concurrency is left unreserved by
# default; if both are set, reserved must be at least the maximum.
resource "aws_lambda_event_source_mapping" "resize" {
  event_source_arn                   = aws_sqs_queue.resize.arn
  function_name                      = aws_lambda_function.function["resize"].arn
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
