# Completion events (docs/events.md): the resize function publishes one
# "Image Processed" or "Image Failed" per image on an EventBridge bus; an
# optional rule sends them to an SQS queue for backends and/or a webhook.

locals {
  # The bus: the one named by event_bus_name, else one made here.
  create_event_bus = var.events_enabled && var.event_bus_name == null
  event_bus_name   = coalesce(var.event_bus_name, "${local.name}-events")
  event_bus_arn    = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/${local.event_bus_name}"

  events_queue    = var.events_enabled && var.events_queue_enabled
  events_webhook  = var.events_enabled && var.events_webhook_url != null
  events_rule     = local.events_queue || local.events_webhook
  events_rule_arn = "arn:${local.partition}:events:${local.region}:${local.account_id}:rule/${local.event_bus_name}/${local.name}-images"

  # The webhook's credential: a Secrets Manager secret holding
  # {"header": "X-Api-Key", "value": "..."}, sent as that header on every call.
  webhook_auth = local.events_webhook ? jsondecode(data.aws_secretsmanager_secret_version.webhook[0].secret_string) : null
}

resource "aws_cloudwatch_event_bus" "images" {
  count = local.create_event_bus ? 1 : 0

  name = local.event_bus_name
}

resource "aws_cloudwatch_event_rule" "images" {
  count = local.events_rule ? 1 : 0

  name           = "${local.name}-images"
  description    = "Every completion event of the image pipeline (Image Processed, Image Failed)"
  event_bus_name = local.event_bus_name
  event_pattern = jsonencode({
    source        = [var.event_source]
    "detail-type" = ["Image Processed", "Image Failed"]
  })

  depends_on = [aws_cloudwatch_event_bus.images]
}

# --- the backends' queue ---

data "aws_iam_policy_document" "events_queue" {
  count = local.events_queue ? 1 : 0

  # EventBridge sends as the service, for this rule only (EventBridge User
  # Guide, "Using resource-based policies": Amazon SQS permissions).
  statement {
    sid       = "EventBridgeSendsImageEvents"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.name}-image-events"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.events_rule_arn]
    }
  }
}

resource "aws_sqs_queue" "events" {
  count = local.events_queue ? 1 : 0

  name                       = "${local.name}-image-events"
  message_retention_seconds  = 1209600 # 14 days: a backend that is down for a while loses nothing
  max_message_size           = 262144
  visibility_timeout_seconds = 30
  delay_seconds              = 0
  receive_wait_time_seconds  = 0

  # With kms_key_arn, the key policy lets EventBridge use the key (kms.tf).
  sqs_managed_sse_enabled           = local.queue_sse_managed
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.queue_key_reuse_secs

  policy = data.aws_iam_policy_document.events_queue[0].json
}

resource "aws_cloudwatch_event_target" "queue" {
  count = local.events_queue ? 1 : 0

  rule           = aws_cloudwatch_event_rule.images[0].name
  event_bus_name = local.event_bus_name
  target_id      = "queue"
  arn            = aws_sqs_queue.events[0].arn
}

# --- the webhook (an API destination) ---

data "aws_secretsmanager_secret_version" "webhook" {
  count = local.events_webhook ? 1 : 0

  secret_id = var.events_webhook_secret_arn

  lifecycle {
    precondition {
      condition     = var.events_webhook_secret_arn != null
      error_message = "events_webhook_url needs events_webhook_secret_arn: a Secrets Manager secret holding {\"header\": ..., \"value\": ...} for the webhook's API key header."
    }
  }
}

resource "aws_cloudwatch_event_connection" "webhook" {
  count = local.events_webhook ? 1 : 0

  name               = "${local.name}-webhook"
  description        = "The image pipeline's webhook credential (from ${var.events_webhook_secret_arn})"
  authorization_type = "API_KEY"

  auth_parameters {
    api_key {
      key   = local.webhook_auth.header
      value = local.webhook_auth.value
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "webhook" {
  count = local.events_webhook ? 1 : 0

  name                             = "${local.name}-webhook"
  description                      = "POSTs each completion event to the webhook"
  invocation_endpoint              = var.events_webhook_url
  http_method                      = "POST"
  invocation_rate_limit_per_second = 10
  connection_arn                   = aws_cloudwatch_event_connection.webhook[0].arn
}

data "aws_iam_policy_document" "events_assume_role" {
  statement {
    sid     = "EventBridgeAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "webhook" {
  count = local.events_webhook ? 1 : 0

  statement {
    sid       = "InvokeWebhook"
    effect    = "Allow"
    actions   = ["events:InvokeApiDestination"]
    resources = ["${aws_cloudwatch_event_api_destination.webhook[0].arn}/*"]
  }
}

resource "aws_iam_role" "webhook" {
  count = local.events_webhook ? 1 : 0

  name               = "${local.name}-webhook-${local.region}"
  description        = "EventBridge: calls the image pipeline's webhook"
  assume_role_policy = data.aws_iam_policy_document.events_assume_role.json
}

resource "aws_iam_role_policy" "webhook" {
  count = local.events_webhook ? 1 : 0

  name   = "webhook"
  role   = aws_iam_role.webhook[0].id
  policy = data.aws_iam_policy_document.webhook[0].json
}

data "aws_iam_policy_document" "webhook_dlq" {
  count = local.events_webhook ? 1 : 0

  statement {
    sid       = "EventBridgeSendsUndelivered"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.name}-webhook-dlq"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.events_rule_arn]
    }
  }
}

resource "aws_sqs_queue" "webhook_dlq" {
  count = local.events_webhook ? 1 : 0

  name                       = "${local.name}-webhook-dlq"
  message_retention_seconds  = 1209600 # 14 days, the maximum: time to fix the webhook and replay
  max_message_size           = 262144
  visibility_timeout_seconds = 30
  delay_seconds              = 0
  receive_wait_time_seconds  = 0

  sqs_managed_sse_enabled           = local.queue_sse_managed
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.queue_key_reuse_secs

  policy = data.aws_iam_policy_document.webhook_dlq[0].json
}

resource "aws_cloudwatch_event_target" "webhook" {
  count = local.events_webhook ? 1 : 0

  rule           = aws_cloudwatch_event_rule.images[0].name
  event_bus_name = local.event_bus_name
  target_id      = "webhook"
  arn            = aws_cloudwatch_event_api_destination.webhook[0].arn
  role_arn       = aws_iam_role.webhook[0].arn

  # EventBridge's defaults, written out: a day of retries with back-off, then the DLQ.
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.webhook_dlq[0].arn
  }
}

# --- alarms ---

# Written by the one alarm resource of monitoring.tf, with the queue's alarms.
locals {
  # EventsNotPublished, written by each function that publishes (Powertools Metrics' default
  # dimension: its service): resize for every image, maintenance for a reconcile pass's Image Failed.
  events_not_published = {
    "events-not-published" = {
      service     = "resize"
      description = "The resize function could not publish completion events (EventsNotPublished) after its retries: the images are done or failed, but consumers were not told (docs/events.md)."
    }
    "maintenance-events-not-published" = {
      service     = "maintenance"
      description = "A reconcile pass marked stuck images failed but could not publish their Image Failed events (EventsNotPublished from the maintenance function) after its retries: consumers were not told (docs/events.md)."
    }
  }

  events_alarms = {
    for key, alarm in merge({
      for key, lost in local.events_not_published : key => {
        enabled             = var.events_enabled
        description         = lost.description
        namespace           = local.name
        metric_name         = "EventsNotPublished"
        dimensions          = { service = lost.service }
        statistic           = "Sum"
        period              = local.alarm_period
        evaluation_periods  = 1
        datapoints_to_alarm = null
        threshold           = 0
      }
      }, {
      "webhook-dlq-messages" = {
        enabled             = local.events_webhook
        description         = "Events in the webhook's dead-letter queue: the webhook refused them or was down for a day (inspect, then replay)."
        namespace           = "AWS/SQS"
        metric_name         = "ApproximateNumberOfMessagesVisible"
        dimensions          = { QueueName = one(aws_sqs_queue.webhook_dlq[*].name) }
        statistic           = "Maximum"
        period              = 60
        evaluation_periods  = 1
        datapoints_to_alarm = null
        threshold           = 0
      }
    }) : key => alarm if alarm.enabled
  }
}

moved {
  from = aws_cloudwatch_metric_alarm.events_not_published[0]
  to   = aws_cloudwatch_metric_alarm.metric["events-not-published"]
}

moved {
  from = aws_cloudwatch_metric_alarm.webhook_dlq_messages[0]
  to   = aws_cloudwatch_metric_alarm.metric["webhook-dlq-messages"]
}
