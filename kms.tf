# The key policy kms_key_arn needs, rendered for this deployment (output
# kms_key_policy_json; docs/operating.md explains each statement). The module
# never changes a key it did not make: the key's owner applies this policy.
#
# - The account root statement (AWS's default) lets IAM policies grant the key:
#   the functions' roles use it only through S3, SQS and DynamoDB (kms:ViaService,
#   in *_lambda_iam.tf), and whoever runs Terraform needs kms:CreateGrant and
#   kms:DescribeKey for DynamoDB and kms:GenerateDataKey* for the topic and queues.
# - CloudWatch publishes alarms to the encrypted topic (monitoring.tf).
# - S3 sends event notifications to the encrypted resize queue.
# - With the CDN on, CloudFront decrypts the renditions it reads (cdn.tf).
# - EventBridge sends completion events to the encrypted events queue and
#   webhook DLQ (events.tf), for the pipeline's rule only.

data "aws_iam_policy_document" "kms_key" {
  source_policy_documents = [data.aws_iam_policy_document.alarms_key.json]

  # S3 encrypts the notification it sends to the queue with the queue's key
  # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/grant-destinations-permissions-to-s3.html),
  # for the uploads bucket of this account only.
  statement {
    #checkov:skip=CKV_AWS_356:in a key policy, "*" is the key itself
    sid       = "S3NotifiesEncryptedQueue"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:s3:::${local.uploads_bucket_name}"]
    }
  }

  # An origin access control reading SSE-KMS objects needs the key: AWS's guide
  # ("Restrict access to an Amazon S3 origin", SSE-KMS) has the key policy allow
  # the CloudFront service principal, with the distribution's ARN as
  # AWS:SourceArn. It only reads (GET, HEAD), so kms:Decrypt is enough.
  dynamic "statement" {
    for_each = local.cdn_enabled ? [aws_cloudfront_distribution.renditions[0].arn] : []

    content {
      #checkov:skip=CKV_AWS_356:in a key policy, "*" is the key itself
      sid       = "CloudFrontDecryptsRenditions"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["cloudfront.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceArn"
        values   = [statement.value]
      }
    }
  }

  # EventBridge User Guide, "Encrypting EventBridge events sent to Amazon SQS targets".
  dynamic "statement" {
    for_each = local.events_rule ? [local.events_rule_arn] : []

    content {
      #checkov:skip=CKV_AWS_356:in a key policy, "*" is the key itself
      sid       = "EventBridgeSendsToEncryptedQueues"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [statement.value]
      }
    }
  }
}
