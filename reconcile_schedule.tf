# EventBridge Scheduler starts the reconcile state machine every
# reconcile_schedule_minutes (docs/reprocess.md). A pass that overlaps the next
# is harmless: every change it makes is a conditional write.

resource "aws_scheduler_schedule" "reconcile" {
  #checkov:skip=CKV_AWS_297:the schedule holds no data (its input is {}); EventBridge Scheduler encrypts it with an AWS owned key
  name                = "${local.name}-reconcile"
  description         = "Starts the reconcile state machine"
  schedule_expression = "rate(${var.reconcile_schedule_minutes} ${var.reconcile_schedule_minutes == 1 ? "minute" : "minutes"})"
  state               = var.reconcile_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_sfn_state_machine.machines["reconcile"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({})

    # A missed pass is made up by the next one.
    retry_policy {
      maximum_event_age_in_seconds = 60 * var.reconcile_schedule_minutes
      maximum_retry_attempts       = 2
    }
  }
}

data "aws_iam_policy_document" "scheduler_assume_role" {
  statement {
    sid     = "SchedulerAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    # EventBridge Scheduler user guide, "Set up the execution role": this account only.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "StartReconcile"
    effect    = "Allow"
    actions   = ["states:StartExecution"]
    resources = [local.reconcile_machine_arn]
  }
}

resource "aws_iam_role" "scheduler" {
  name               = local.scheduler_role
  description        = "EventBridge Scheduler: starts the reconcile state machine"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume_role.json
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
