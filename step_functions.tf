# The reprocess and reconcile state machines (docs/reprocess.md), their role,
# log group and alarm. Both are STANDARD; the reprocess machine's Distributed
# Map runs STANDARD child executions too (EXPRESS children would be cheaper on
# AWS, but the emulator refuses them and the same HCL runs in both places).
#
# The machines' ARNs are built from their names where the role needs them: the
# role is an argument of the machines, so referring back would be a cycle.

locals {
  reprocess_machine_arn = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.reprocess_machine}"
  reconcile_machine_arn = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.reconcile_machine}"
  # Distributed Map results (one manifest and the children's outputs per run):
  # in the resized bucket, whose objects nothing announces (every object created
  # in the uploads bucket is announced to the resize queue).
  reprocess_results_prefix = "reprocess-results"

  # AWS's recommended retry for the Lambda Invoke integration (Step Functions
  # developer guide, "Handling transient Lambda service exceptions").
  lambda_retry = [{
    ErrorEquals     = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException"]
    IntervalSeconds = 1
    MaxAttempts     = 3
    BackoffRate     = 2
  }]
  # The maintenance tasks: Lambda's own transient errors, and the function's
  # TransientError (throttling, 5xx from S3 or DynamoDB). A Lambda function
  # error is named by its errorType (Step Functions developer guide, "Error handling").
  maintenance_retry = concat(local.lambda_retry, [{
    ErrorEquals     = ["TransientError"]
    IntervalSeconds = 2
    MaxAttempts     = 3
    BackoffRate     = 2
  }])

  # SendMessageBatch of up to ten planned messages; the queue URL is fixed here.
  # aws-sdk integration errors are named Sqs.<exception> and Sqs.SqsException
  # matches them all (throttling, 5xx). Entries SQS refused come back in Failed.
  send_batches = {
    Type           = "Map"
    MaxConcurrency = 10
    ItemProcessor = {
      ProcessorConfig = { Mode = "INLINE" }
      StartAt         = "SendBatch"
      States = {
        SendBatch = {
          Type       = "Task"
          Resource   = "arn:aws:states:::aws-sdk:sqs:sendMessageBatch"
          Parameters = { QueueUrl = aws_sqs_queue.resize.url, "Entries.$" = "$" }
          Retry = [{
            ErrorEquals     = ["Sqs.SqsException", "States.Timeout"]
            IntervalSeconds = 1
            MaxAttempts     = 5
            BackoffRate     = 2
          }]
          ResultSelector = { "Failed.$" = "$.Failed" }
          End            = true
        }
      }
    }
  }

  reprocess_definition = jsonencode({
    Comment = "Re-enqueue stored originals whose renditions are stale (docs/reprocess.md). Input: {\"prefix\": \"originals/\", \"all\": false, \"force\": false}"
    StartAt = "Defaults"
    States = {
      Defaults = {
        Type       = "Pass"
        Parameters = { defaults = { prefix = "originals/", all = false, force = false }, "input.$" = "$" }
        Next       = "Options"
      }
      Options = {
        Type       = "Pass"
        Parameters = { "options.$" = "States.JsonMerge($.defaults, $.input, false)" }
        OutputPath = "$.options"
        Next       = "Reprocess"
      }
      Reprocess = {
        Type  = "Map"
        Label = "reprocess"
        ItemReader = {
          Resource   = "arn:aws:states:::s3:listObjectsV2"
          Parameters = { Bucket = aws_s3_bucket.uploads.id, "Prefix.$" = "$.prefix" }
        }
        ItemSelector = { "key.$" = "$$.Map.Item.Value.Key" }
        ItemBatcher = {
          MaxItemsPerBatch = var.reprocess_batch_size
          BatchInput       = { "all.$" = "$.all", "force.$" = "$.force" }
        }
        MaxConcurrency             = var.reprocess_max_concurrency
        ToleratedFailurePercentage = var.reprocess_tolerated_failure_percent
        ResultWriter = {
          Resource   = "arn:aws:states:::s3:putObject"
          Parameters = { Bucket = aws_s3_bucket.resized.id, Prefix = local.reprocess_results_prefix }
        }
        ItemProcessor = {
          ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" }
          StartAt         = "Plan"
          States = {
            Plan = {
              Type     = "Task"
              Resource = "arn:aws:states:::lambda:invoke"
              Parameters = {
                FunctionName = aws_lambda_function.function["maintenance"].arn
                Payload      = { action = "plan_reprocess", "Items.$" = "$.Items", "BatchInput.$" = "$.BatchInput" }
              }
              Retry          = local.maintenance_retry
              ResultSelector = { "plan.$" = "$.Payload" }
              Next           = "Send"
            }
            Send = merge(local.send_batches, { ItemsPath = "$.plan.batches", ResultPath = "$.sent", Next = "Counts" })
            # What the run's results hold per batch: the plan's counts and
            # SendMessageBatch's Failed entries (enqueued = enqueue - failed sends).
            Counts = {
              Type = "Pass"
              Parameters = {
                "listed.$"          = "$.plan.listed"
                "skipped_current.$" = "$.plan.skipped_current"
                "enqueue.$"         = "$.plan.enqueue"
                "failed.$"          = "$.plan.failed"
                "failures.$"        = "$.plan.failures"
                "sent.$"            = "$.sent"
              }
              End = true
            }
          }
        }
        Next = "Summarize"
      }
      # The map's output is only where its results are (AWS, "ResultWriter (Map)":
      # {MapRunArn, ResultWriterDetails: {Bucket, Key}}): maintenance sums them
      # into the execution's output (listed, enqueued, skipped, failed ...).
      Summarize = {
        Type     = "Task"
        Resource = "arn:aws:states:::lambda:invoke"
        Parameters = {
          FunctionName = aws_lambda_function.function["maintenance"].arn
          Payload = {
            action                  = "summarize_reprocess"
            "MapRunArn.$"           = "$.MapRunArn"
            "ResultWriterDetails.$" = "$.ResultWriterDetails"
          }
        }
        Retry      = local.maintenance_retry
        OutputPath = "$.Payload"
        End        = true
      }
    }
  })

  reconcile_definition = jsonencode({
    Comment = "Finish what S3 events and SQS left unfinished, one bounded page at a time (docs/reprocess.md)"
    StartAt = "Start"
    States = {
      Start = {
        Type   = "Pass"
        Result = { next = null }
        Next   = "Reconcile"
      }
      Reconcile = {
        Type     = "Task"
        Resource = "arn:aws:states:::lambda:invoke"
        Parameters = {
          FunctionName = aws_lambda_function.function["maintenance"].arn
          Payload      = { action = "reconcile", "next.$" = "$.next" }
        }
        Retry      = local.maintenance_retry
        OutputPath = "$.Payload"
        Next       = "Send"
      }
      # A message SQS refuses leaves its record as it was: the next pass finds it again.
      Send = merge(local.send_batches, { ItemsPath = "$.batches", ResultPath = null, Next = "More" })
      More = {
        Type    = "Choice"
        Choices = [{ Variable = "$.next", IsNull = false, Next = "Reconcile" }]
        Default = "Done"
      }
      Done = { Type = "Succeed" }
    }
  })

  state_machines = {
    reprocess = { name = local.reprocess_machine, definition = local.reprocess_definition }
    reconcile = { name = local.reconcile_machine, definition = local.reconcile_definition }
  }
}

resource "aws_cloudwatch_log_group" "states" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; a CMK would need a logs-specific key policy and the logs hold errors only, no execution data
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (30 days by default), chosen per environment
  # Step Functions delivers through CloudWatch vended logs: AWS's docs use this
  # prefix so the log group's resource policy stays short.
  name              = "/aws/vendedlogs/states/${local.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_sfn_state_machine" "machines" {
  #checkov:skip=CKV_AWS_285:logged at level ERROR without execution data on purpose: inputs and outputs name every key of the bucket, and ALL would log every state of every child execution
  #checkov:skip=CKV_AWS_284:tracing follows lambda_tracing_enabled (off by default: X-Ray bills per trace recorded)
  for_each = local.state_machines

  name       = each.value.name
  type       = "STANDARD"
  role_arn   = aws_iam_role.states.arn
  definition = each.value.definition

  # Errors only and no execution data: inputs and outputs name every key.
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.states.arn}:*"
    include_execution_data = false
    level                  = "ERROR"
  }

  tracing_configuration {
    enabled = var.lambda_tracing_enabled
  }

  depends_on = [aws_iam_role_policy.states]
}

data "aws_iam_policy_document" "states_assume_role" {
  statement {
    sid     = "StepFunctionsAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    # Confused-deputy protection: only this account's machines.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "states" {
  source_policy_documents = [data.aws_iam_policy_document.shared["states"].json]

  # ItemReader s3:listObjectsV2 (Step Functions developer guide, "IAM policies
  # for using Distributed Map states").
  statement {
    sid       = "ListOriginals"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn]
  }

  # SendMessageBatch is authorised by sqs:SendMessage (SQS API permissions reference).
  statement {
    sid       = "SendToResizeQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [local.queue_arn]
  }

  statement {
    sid       = "InvokeMaintenance"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.function["maintenance"].arn, "${aws_lambda_function.function["maintenance"].arn}:*"]
  }

  # A Distributed Map starts its children as executions of its own machine,
  # and describes and stops them (AWS: "IAM policies for using Distributed Map states").
  statement {
    sid       = "StartMapRunChildren"
    effect    = "Allow"
    actions   = ["states:StartExecution"]
    resources = [local.reprocess_machine_arn]
  }

  statement {
    sid       = "ManageMapRunChildren"
    effect    = "Allow"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = ["arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${local.reprocess_machine}/*"]
  }

  # ResultWriter (AWS: "IAM policies for using Distributed Map states", ResultWriter):
  # the results prefix only.
  statement {
    sid       = "WriteMapRunResults"
    effect    = "Allow"
    actions   = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]
    resources = ["${aws_s3_bucket.resized.arn}/${local.reprocess_results_prefix}/*"]
  }

  statement {
    #checkov:skip=CKV_AWS_111:CloudWatch Logs delivery actions support no resource-level permissions (Step Functions developer guide, "IAM policies for logging to CloudWatch Logs")
    #checkov:skip=CKV_AWS_356:CloudWatch Logs delivery actions support no resource-level permissions
    sid    = "DeliverLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:DescribeLogGroups",
      "logs:DescribeResourcePolicies",
      "logs:GetLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:UpdateLogDelivery",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role" "states" {
  name               = local.states_role
  description        = "Reprocess and reconcile state machines: list originals, invoke maintenance, send to the resize queue"
  assume_role_policy = data.aws_iam_policy_document.states_assume_role.json

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_iam_role_policy" "states" {
  name   = "states"
  role   = aws_iam_role.states.id
  policy = data.aws_iam_policy_document.states.json

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  # Merged into the single-metric alarms (monitoring.tf).
  states_alarms = {
    for machine, resource in aws_sfn_state_machine.machines : "${machine}-executions-failed" => {
      description         = "A ${machine} execution failed (docs/reprocess.md): read its error in the Step Functions console or the ${aws_cloudwatch_log_group.states.name} log group."
      namespace           = "AWS/States"
      metric_name         = "ExecutionsFailed"
      dimensions          = { StateMachineArn = resource.arn }
      statistic           = "Sum"
      period              = local.alarm_period
      evaluation_periods  = 1
      datapoints_to_alarm = null
      threshold           = 0
    }
  }
}
