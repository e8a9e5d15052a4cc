# Alarms and the topic they notify. docs/operating.md says what each alarm means.
#
# CloudWatch alarms cannot publish to a topic encrypted with the AWS managed
# key (aws/sns): its key policy does not let CloudWatch use it. So the topic
# uses kms_key_arn when set (its policy must allow cloudwatch.amazonaws.com, see
# kms.tf), or a customer-managed key made here for the alarms.

locals {
  # Every alarm's name starts with this, so the key policy can name them all.
  alarm_arn_pattern = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${local.name}-*"
}

data "aws_iam_policy_document" "alarms_key" {
  # Key policies name no other resource than "*", which means this key.
  statement {
    #checkov:skip=CKV_AWS_109:AWS's default key policy statement: delegates the key's administration to this account's IAM policies
    #checkov:skip=CKV_AWS_111:AWS's default key policy statement: delegates the key's administration to this account's IAM policies
    #checkov:skip=CKV_AWS_356:in a key policy, "*" is the key itself
    sid       = "AccountAdministersKeyThroughIam"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # Confused-deputy protection: CloudWatch may use the key only for this
  # deployment's alarms in this account (AWS's key policy for services publishing
  # to encrypted topics:
  # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services,
  # and https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html).
  statement {
    #checkov:skip=CKV_AWS_356:in a key policy, "*" is the key itself
    sid       = "CloudWatchAlarmsPublish"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.alarm_arn_pattern]
    }
  }
}

resource "aws_kms_key" "alarms" {
  count = local.use_kms ? 0 : 1

  description             = "${local.name} alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.alarms_key.json
}

resource "aws_kms_alias" "alarms" {
  count = local.use_kms ? 0 : 1

  name          = "alias/${local.name}-alarms"
  target_key_id = aws_kms_key.alarms[0].key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = local.use_kms ? var.kms_key_arn : aws_kms_key.alarms[0].arn

  lifecycle {
    # S3, SQS, DynamoDB and SNS use only keys in their own region.
    precondition {
      condition     = !local.use_kms || try(split(":", var.kms_key_arn)[3] == local.region, false)
      error_message = "kms_key_arn must be a key in the region deployed to (${local.region}): S3, SQS, DynamoDB and SNS use only keys of their own region."
    }
  }
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
  alarm_period  = 300
  functions     = { for key, function in aws_lambda_function.function : key => function.function_name }

  # One metric over a threshold: any message in the DLQ, a queue falling
  # behind, a function throttled (events.tf adds the completion events' alarms).
  metric_alarms = merge(
    {
      "resize-dlq-messages" = {
        description         = "Messages in the resize dead-letter queue: images that failed every retry (inspect, then redrive)."
        namespace           = "AWS/SQS"
        metric_name         = "ApproximateNumberOfMessagesVisible"
        dimensions          = { QueueName = aws_sqs_queue.resize_dlq.name }
        statistic           = "Maximum"
        period              = 60
        evaluation_periods  = 1
        datapoints_to_alarm = null
        threshold           = 0
      }
      "resize-queue-age" = {
        description         = "The oldest message in the resize queue is older than ${var.alarm_oldest_message_age_seconds} s: resizing is falling behind or failing."
        namespace           = "AWS/SQS"
        metric_name         = "ApproximateAgeOfOldestMessage"
        dimensions          = { QueueName = aws_sqs_queue.resize.name }
        statistic           = "Maximum"
        period              = 60
        evaluation_periods  = 5
        datapoints_to_alarm = null
        threshold           = var.alarm_oldest_message_age_seconds
      }
    },
    {
      for role, function_name in local.functions : "${role}-throttles" => {
        description         = "The ${role} function was throttled in ${var.alarm_datapoints_to_alarm} of the last ${var.alarm_evaluation_periods} five-minute periods."
        namespace           = "AWS/Lambda"
        metric_name         = "Throttles"
        dimensions          = { FunctionName = function_name }
        statistic           = "Sum"
        period              = local.alarm_period
        evaluation_periods  = var.alarm_evaluation_periods
        datapoints_to_alarm = var.alarm_datapoints_to_alarm
        threshold           = 0
      }
    },
  )

  # Rates over several periods, not single events: an alarm fires when
  # alarm_datapoints_to_alarm of the last alarm_evaluation_periods five-minute
  # periods breach. Each rate is 100 * sum(numerators) / denominator; a period
  # without traffic has no denominator, so no datapoint, and does not breach.
  rate_alarms = {
    "resize-image-failures" = {
      description = "Over ${var.alarm_image_failure_percent}% of resize messages ended with an image failed (ImagesFailed), errored (ImagesErrored) or an unreadable message (BadMessages)"
      namespace   = local.name
      dimensions  = { service = "resize" } # Powertools Metrics' default dimension
      numerators  = ["ImagesFailed", "ImagesErrored", "BadMessages"]
      denominator = "MessagesReceived"
      threshold   = var.alarm_image_failure_percent
    }
    "resize-image-retries" = {
      description = "Over ${var.alarm_image_retry_percent}% of resize messages were handed back to SQS for a retry (ImagesRetried: S3 or DynamoDB errors, throttling)"
      namespace   = local.name
      dimensions  = { service = "resize" }
      numerators  = ["ImagesRetried"]
      denominator = "MessagesReceived"
      threshold   = var.alarm_image_retry_percent
    }
    "api-5xx" = {
      description = "Over ${var.alarm_api_5xx_percent}% of upload API requests were answered with 5xx"
      namespace   = "AWS/ApiGateway"
      dimensions  = { ApiId = aws_apigatewayv2_api.images.id, Stage = aws_apigatewayv2_stage.default.name }
      numerators  = ["5xx"]
      denominator = "Count"
      threshold   = var.alarm_api_5xx_percent
    }
    "resize-errors" = {
      description = "Over ${var.alarm_function_error_percent}% of resize invocations failed as a whole (timeout, out of memory, configuration error): the whole batch is retried"
      namespace   = "AWS/Lambda"
      dimensions  = { FunctionName = aws_lambda_function.function["resize"].function_name }
      numerators  = ["Errors"]
      denominator = "Invocations"
      threshold   = var.alarm_function_error_percent
    }
    "upload-errors" = {
      description = "Over ${var.alarm_function_error_percent}% of upload invocations failed (unhandled error or timeout: the client got a 5xx)"
      namespace   = "AWS/Lambda"
      dimensions  = { FunctionName = aws_lambda_function.function["upload"].function_name }
      numerators  = ["Errors"]
      denominator = "Invocations"
      threshold   = var.alarm_function_error_percent
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "metric" {
  for_each = merge(local.metric_alarms, local.events_alarms, local.states_alarms)

  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "rate" {
  for_each = local.rate_alarms

  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = "${each.value.description}, in ${var.alarm_datapoints_to_alarm} of the last ${var.alarm_evaluation_periods} five-minute periods."
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = var.alarm_datapoints_to_alarm
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    label       = "percent"
    return_data = true
    # FILL: a numerator with no datapoint in a period counts as 0 there.
    expression = "100 * (${join(" + ", [for i, _ in each.value.numerators : "FILL(m${i}, 0)"])}) / total"
  }

  dynamic "metric_query" {
    for_each = { for i, name in each.value.numerators : "m${i}" => name }

    content {
      id = metric_query.key

      metric {
        namespace   = each.value.namespace
        metric_name = metric_query.value
        dimensions  = each.value.dimensions
        period      = local.alarm_period
        stat        = "Sum"
      }
    }
  }

  metric_query {
    id = "total"

    metric {
      namespace   = each.value.namespace
      metric_name = each.value.denominator
      dimensions  = each.value.dimensions
      period      = local.alarm_period
      stat        = "Sum"
    }
  }

  lifecycle {
    precondition {
      condition     = var.alarm_datapoints_to_alarm <= var.alarm_evaluation_periods
      error_message = "alarm_datapoints_to_alarm must not exceed alarm_evaluation_periods."
    }
  }
}

# The 5xx and function error alarms became rates under the same names: moved,
# so an existing deployment updates them in place.
moved {
  from = aws_cloudwatch_metric_alarm.api_5xx
  to   = aws_cloudwatch_metric_alarm.rate["api-5xx"]
}

moved {
  from = aws_cloudwatch_metric_alarm.function_errors["resize"]
  to   = aws_cloudwatch_metric_alarm.rate["resize-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.function_errors["upload"]
  to   = aws_cloudwatch_metric_alarm.rate["upload-errors"]
}

# The queue's and the functions' alarms were one resource each: moved to
# their keys of the metric alarm, so an existing deployment keeps them.
moved {
  from = aws_cloudwatch_metric_alarm.dlq_messages
  to   = aws_cloudwatch_metric_alarm.metric["resize-dlq-messages"]
}

moved {
  from = aws_cloudwatch_metric_alarm.queue_age
  to   = aws_cloudwatch_metric_alarm.metric["resize-queue-age"]
}

moved {
  from = aws_cloudwatch_metric_alarm.function_throttles["resize"]
  to   = aws_cloudwatch_metric_alarm.metric["resize-throttles"]
}

moved {
  from = aws_cloudwatch_metric_alarm.function_throttles["upload"]
  to   = aws_cloudwatch_metric_alarm.metric["upload-throttles"]
}
