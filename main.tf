data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Every resource name starts with prefix-environment; bucket names are global,
  # so they also carry the account id and region.
  name          = "${var.name_prefix}-${var.environment}"
  bucket_suffix = "${local.account_id}-${local.region}"

  uploads_bucket_name = "${local.name}-uploads-${local.bucket_suffix}"
  resized_bucket_name = "${local.name}-resized-${local.bucket_suffix}"
  queue_name          = "${local.name}-resize"
  dlq_name            = "${local.name}-resize-dlq"
  table_name          = "${local.name}-images"
  resize_function     = "${local.name}-resize"
  upload_function     = "${local.name}-upload"

  # The Lambda package: a local zip built by `make package` (default), or an
  # object in an artifact bucket when lambda_artifact_bucket is set.
  lambda_from_s3   = var.lambda_artifact_bucket != null
  lambda_zip_path  = coalesce(var.lambda_zip_path, "${path.module}/build/lambda.zip")
  lambda_zip_file  = local.lambda_from_s3 ? null : local.lambda_zip_path
  lambda_code_hash = local.lambda_from_s3 ? var.lambda_artifact_sha256 : filebase64sha256(local.lambda_zip_path)

  # Customer-managed KMS key for S3, SQS, DynamoDB and logs when kms_key_arn is
  # set; otherwise each service's own encryption (SSE-S3, SSE-SQS, AWS owned key).
  use_kms = var.kms_key_arn != null
}
