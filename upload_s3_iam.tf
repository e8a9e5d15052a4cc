# The design's "S3 IAM role": in AWS, S3 event notifications are authorised by a
# resource policy on the queue, not by a role. S3 may send to the resize queue
# only on behalf of the uploads bucket in this account. The policy is the queue's
# own `policy` argument (resize_sqs.tf says why), so both ARNs here are computed
# from names: the queue's to avoid a cycle, the bucket's so the queue need not
# wait for the bucket.

data "aws_iam_policy_document" "resize_queue" {
  statement {
    sid       = "AllowUploadsBucketNotifications"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [local.queue_arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:s3:::${local.uploads_bucket_name}"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
