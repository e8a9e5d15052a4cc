# The statements every workload role shares, written once: writing its own
# logs, using the data key only through the services that keep data under it,
# and sending traces. Each role's policy document takes its entry through
# source_policy_documents (resize_lambda_iam.tf, upload_lambda_iam.tf,
# maintenance_lambda_iam.tf, step_functions.tf).

locals {
  # X-Ray's write actions; Step Functions also reads the sampling rules
  # (Step Functions developer guide, "IAM policies for using AWS X-Ray").
  xray_write_actions    = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
  xray_sampling_actions = ["xray:GetSamplingRules", "xray:GetSamplingTargets"]

  shared_role_statements = {
    # log_group: the function's own log group (null: the role delivers logs another way);
    # kms_services: where the role meets data under kms_key_arn.
    resize      = { log_group = local.resize_function, kms_services = ["s3", "sqs", "dynamodb"], trace_actions = local.xray_write_actions }
    upload      = { log_group = local.upload_function, kms_services = ["s3", "dynamodb"], trace_actions = local.xray_write_actions }
    maintenance = { log_group = local.maintenance_function, kms_services = ["s3", "dynamodb"], trace_actions = local.xray_write_actions }
    # The encrypted resize queue and the Map run's results objects.
    states = { log_group = null, kms_services = ["s3", "sqs"], trace_actions = concat(local.xray_sampling_actions, local.xray_write_actions) }
  }
}

data "aws_iam_policy_document" "shared" {
  for_each = local.shared_role_statements

  dynamic "statement" {
    for_each = each.value.log_group == null ? [] : [each.value.log_group]

    content {
      sid       = "WriteOwnLogs"
      effect    = "Allow"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources = ["${local.lambda_log_group_arn_prefix}/${statement.value}:*"]
    }
  }

  dynamic "statement" {
    for_each = local.use_kms ? [var.kms_key_arn] : []

    content {
      # Only through the services that keep data under the key, never directly.
      sid       = "UseDataKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [for service in each.value.kms_services : "${service}.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.lambda_tracing_enabled ? ["*"] : []

    content {
      # X-Ray's write actions support no resource-level permissions.
      sid       = "WriteTraces"
      effect    = "Allow"
      actions   = each.value.trace_actions
      resources = [statement.value]
    }
  }
}
