# The resize queue (the design's "resizing_queue") and its dead-letter queue.
#
# Apply time: after creating a queue or setting an attribute, the provider polls
# GetQueueAttributes until it has seen every attribute it sent come back six
# times in a row, five seconds apart (waitQueueAttributesPropagated in the
# provider's internal/service/sqs): at least 25 s per queue and per policy
# resource, on AWS and on the emulator alike. An attribute that never comes back
# makes it wait out the whole 3-minute timeout and fail: that was
# RedriveAllowPolicy, which the emulator (moto 5.2) does not implement. So:
#   - every attribute is set explicitly, to the value SQS reports back;
#   - the DLQ's redrive allow policy is inline, with the queue's ARN computed
#     from its name (no cycle), and left out against the emulator;
#   - the DLQ and the queue are created in parallel; the redrive policy and then
#     the access policy (upload_s3_iam.tf) follow as their own resources. Their
#     JSON is compared as JSON (the queue's inline redrive_policy compares text,
#     and the emulator spaces its JSON differently, so a second plan would never
#     be empty), and the access policy goes last because the emulator drops a
#     queue's Policy on any SetQueueAttributes call that does not repeat it.

locals {
  queue_arn = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.queue_name}"

  # AWS: at least six times the function timeout, plus the batching window, so a
  # message is not redelivered while a batch that holds it is still running.
  resize_visibility_timeout = min(43200, 6 * var.resize_timeout_seconds + var.resize_batching_window_seconds)
}

resource "aws_sqs_queue" "resize_dlq" {
  name                       = local.dlq_name
  message_retention_seconds  = 1209600 # 14 days, the maximum: time to inspect and redrive
  max_message_size           = 262144
  visibility_timeout_seconds = 30
  delay_seconds              = 0
  receive_wait_time_seconds  = 0

  sqs_managed_sse_enabled           = local.use_kms ? null : true
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.use_kms ? 300 : null

  # Only the resize queue may use this queue as its dead-letter queue. Not
  # against the emulator: moto 5.2 does not implement RedriveAllowPolicy (it
  # drops it on CreateQueue and rejects it in GetQueueAttributes with
  # InvalidAttributeName), so the provider's wait above could never succeed.
  redrive_allow_policy = local.emulated ? null : jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [local.queue_arn]
  })
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

  lifecycle {
    # Owned by aws_sqs_queue_redrive_policy.resize below; the queue would
    # otherwise see the policy it reads back as a change of its own.
    ignore_changes = [redrive_policy]
  }
}

resource "aws_sqs_queue_redrive_policy" "resize" {
  queue_url = aws_sqs_queue.resize.id

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.resize_dlq.arn
    maxReceiveCount     = var.resize_max_receive_count
  })
}
