# The resize queue (the design's "resizing_queue") and its dead-letter queue.

locals {
  # AWS: at least six times the function timeout, plus the batching window, so a
  # message is not redelivered while a batch that holds it is still running.
  resize_visibility_timeout = min(43200, 6 * var.resize_timeout_seconds + var.resize_batching_window_seconds)
}

resource "aws_sqs_queue" "resize_dlq" {
  name                      = local.dlq_name
  message_retention_seconds = 1209600 # 14 days, the maximum: time to inspect and redrive
  max_message_size          = 262144

  # Set explicitly to the values SQS (and the emulator) report back for a new
  # queue. Left unset, the provider waits up to its propagation timeout
  # (about 25 s per queue against moto) for attributes it never sent to match.
  delay_seconds              = 0
  receive_wait_time_seconds  = 0
  visibility_timeout_seconds = 30

  sqs_managed_sse_enabled           = local.use_kms ? null : true
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.use_kms ? 300 : null
}

resource "aws_sqs_queue" "resize" {
  name                       = local.queue_name
  message_retention_seconds  = 345600 # 4 days, less than the DLQ's 14
  max_message_size           = 262144
  visibility_timeout_seconds = local.resize_visibility_timeout
  delay_seconds              = 0
  receive_wait_time_seconds  = 0

  sqs_managed_sse_enabled           = local.use_kms ? null : true
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.use_kms ? 300 : null

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.resize_dlq.arn
    maxReceiveCount     = var.resize_max_receive_count
  })
}

# Only the resize queue may use the DLQ (set apart from the DLQ itself, which
# the resize queue's redrive policy already references).
resource "aws_sqs_queue_redrive_allow_policy" "resize_dlq" {
  queue_url = aws_sqs_queue.resize_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.resize.arn]
  })
}
