# The resize queue (the design's "resizing_queue") and its dead-letter queue.
#
# Apply time: after creating a queue or setting an attribute, the provider polls
# GetQueueAttributes until it has seen every attribute it sent come back six
# times in a row, at least five seconds apart (waitQueueAttributesPropagated in
# the provider's internal/service/sqs/queue.go): at least 25 s for every
# aws_sqs_queue, aws_sqs_queue_policy and aws_sqs_queue_redrive_policy, on AWS
# and on the emulator alike. So each queue is one resource, with every attribute
# (redrive policy, redrive allow policy, access policy) inline and sent in its
# CreateQueue call: one wait per queue. The resize queue still waits for the DLQ
# (SQS rejects a RedrivePolicy whose target does not exist): two waits, ~50 s.
# ARNs that would make a cycle (the DLQ's allow policy names the resize queue,
# the queue's access policy names itself) are computed from the names.
#
# Every attribute is set explicitly, to the value SQS reports back, so the wait
# can succeed and a second plan is empty. Against the emulator this relies on
# local/moto_server.py, which makes moto return compact RedrivePolicy JSON (the
# provider compares the queue's inline redrive_policy as text), keep a queue's
# Policy across SetQueueAttributes, and store RedriveAllowPolicy, as SQS does.

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

  sqs_managed_sse_enabled           = local.queue_sse_managed
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.queue_key_reuse_secs

  # Only the resize queue may use this queue as its dead-letter queue.
  redrive_allow_policy = jsonencode({
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

  sqs_managed_sse_enabled           = local.queue_sse_managed
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.queue_key_reuse_secs

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.resize_dlq.arn
    maxReceiveCount     = var.resize_max_receive_count
  })

  # S3 may send to it on behalf of the uploads bucket (upload_s3_iam.tf).
  policy = data.aws_iam_policy_document.resize_queue.json
}
