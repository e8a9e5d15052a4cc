# The design's "S3 IAM role": in AWS, S3 event notifications are authorised by a
# resource policy on the queue, not by a role. S3 may send to the resize queue
# only on behalf of the uploads bucket in this account.

data "aws_iam_policy_document" "resize_queue" {
  statement {
    sid       = "AllowUploadsBucketNotifications"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.resize.arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.uploads.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "resize" {
  queue_url = aws_sqs_queue.resize.id
  policy    = data.aws_iam_policy_document.resize_queue.json

  # Set after the redrive policy (resize_sqs.tf says why).
  depends_on = [aws_sqs_queue_redrive_policy.resize]
}
