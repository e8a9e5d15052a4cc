# Every Lambda function's execution role, written once, keyed as the functions
# are (lambda_functions.tf gives each function the role of its own key). Each
# *_lambda_iam.tf file writes its function's policy document and declares the
# role's entry (name, description, policy); the trust in Lambda, the lifecycle
# and the policy's name (the key) are the same for all.

locals {
  lambda_roles = {
    maintenance = local.maintenance_lambda_role
    resize      = local.resize_lambda_role
    upload      = local.upload_lambda_role
  }
}

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.lambda_roles

  name               = each.value.name
  description        = each.value.description
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json

  # A new name replaces the role: make the new one (and its policy) and move the
  # function to it before the old one goes, so the function never runs roleless.
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.lambda_roles

  name   = each.key
  role   = aws_iam_role.function[each.key].id
  policy = each.value.policy

  # With the role: the old role keeps its policy until the function has moved.
  lifecycle {
    create_before_destroy = true
  }
}

moved {
  from = aws_iam_role.resize
  to   = aws_iam_role.function["resize"]
}

moved {
  from = aws_iam_role.upload
  to   = aws_iam_role.function["upload"]
}

moved {
  from = aws_iam_role.maintenance
  to   = aws_iam_role.function["maintenance"]
}

moved {
  from = aws_iam_role_policy.resize
  to   = aws_iam_role_policy.function["resize"]
}

moved {
  from = aws_iam_role_policy.upload
  to   = aws_iam_role_policy.function["upload"]
}

moved {
  from = aws_iam_role_policy.maintenance
  to   = aws_iam_role_policy.function["maintenance"]
}
