# Names, the account and region, and the plan-time checks that no single
# variable's validation can make.

locals {
  # S3's reserved bucket-name prefixes and suffixes:
  # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
  # Bucket names here end with the region, which ends with "-<digit>", so none of
  # the reserved suffixes (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3) can occur;
  # only the start, "<name_prefix>-<environment>-", needs checking.
  s3_reserved_prefixes = ["xn--", "sthree-", "amzn-s3-demo-"]
}

# Preconditions on this data source run at plan time, before anything is created.
data "aws_caller_identity" "current" {
  lifecycle {
    precondition {
      condition     = !anytrue([for p in local.s3_reserved_prefixes : startswith("${local.name}-", p)])
      error_message = "name_prefix and environment together (\"${local.name}-\") start with a prefix S3 reserves for bucket names (xn--, sthree-, amzn-s3-demo-): choose another name_prefix or environment."
    }

    precondition {
      condition     = local.lambda_package != null
      error_message = local.lambda_from_s3 ? "lambda_artifact_manifest is required with lambda_artifact_bucket: the architecture and runtime the artifact was built for (the build/lambda.json that `make package` writes)." : "The Lambda package has no manifest beside it (${local.lambda_manifest_path}): rebuild it (`rm build/lambda.zip && make package`: tools/package.py writes the manifest), or write {\"architecture\": ..., \"runtime\": ...} there for a package built another way."
    }

    precondition {
      condition     = try(local.lambda_package.architecture == var.lambda_architecture && local.lambda_package.runtime == var.lambda_runtime, true)
      error_message = "The Lambda package was built for ${try(local.lambda_package.architecture, "?")} and ${try(local.lambda_package.runtime, "?")}, but lambda_architecture = ${var.lambda_architecture} and lambda_runtime = ${var.lambda_runtime}: its compiled wheels would fail to import on every invocation. Rebuild with `make package ARCH=${var.lambda_architecture} LAMBDA_RUNTIME=${var.lambda_runtime}` (delete build/lambda.zip first), or set the variables to match."
    }

    precondition {
      condition     = local.lambda_from_s3 || try(local.lambda_package.zip_base64sha256 == local.lambda_code_hash, false) || local.lambda_package == null
      error_message = "The manifest ${local.lambda_manifest_path} describes another build than the zip beside it (their SHA-256 differ): rebuild both (`rm build/lambda.zip && make package`)."
    }
  }
}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Every resource name starts with prefix-environment. Bucket names are global
  # and IAM role names are account-wide, so both also carry the region (buckets
  # the account id too); everything else is regional already.
  name          = "${var.name_prefix}-${var.environment}"
  bucket_suffix = "${local.account_id}-${local.region}"

  uploads_bucket_name  = "${local.name}-uploads-${local.bucket_suffix}"
  resized_bucket_name  = "${local.name}-resized-${local.bucket_suffix}"
  queue_name           = "${local.name}-resize"
  dlq_name             = "${local.name}-resize-dlq"
  table_name           = "${local.name}-images"
  resize_function      = "${local.name}-resize"
  upload_function      = "${local.name}-upload"
  maintenance_function = "${local.name}-maintenance"
  resize_role          = "${local.resize_function}-${local.region}"
  upload_role          = "${local.upload_function}-${local.region}"
  maintenance_role     = "${local.maintenance_function}-${local.region}"
  states_role          = "${local.name}-states-${local.region}"
  scheduler_role       = "${local.name}-scheduler-${local.region}"
  reprocess_machine    = "${local.name}-reprocess"
  reconcile_machine    = "${local.name}-reconcile"

  # The Lambda package: a local zip built by `make package` (default), or an
  # object in an artifact bucket when lambda_artifact_bucket is set.
  lambda_from_s3   = var.lambda_artifact_bucket != null
  lambda_zip_path  = coalesce(var.lambda_zip_path, "${path.module}/build/lambda.zip")
  lambda_zip_file  = local.lambda_from_s3 ? null : local.lambda_zip_path
  lambda_code_hash = local.lambda_from_s3 ? var.lambda_artifact_sha256 : filebase64sha256(local.lambda_zip_path)

  # What the package was built for: the manifest tools/package.py writes beside
  # the zip (lambda.zip -> lambda.json), or lambda_artifact_manifest. Both are
  # taken as JSON text so the two branches have one type.
  lambda_manifest_path = "${trimsuffix(local.lambda_zip_path, ".zip")}.json"
  lambda_manifest = (
    local.lambda_from_s3 ? (var.lambda_artifact_manifest == null ? null : jsonencode(var.lambda_artifact_manifest))
    : fileexists(local.lambda_manifest_path) ? file(local.lambda_manifest_path) : null
  )
  lambda_package = local.lambda_manifest == null ? null : {
    architecture     = try(tostring(jsondecode(local.lambda_manifest).architecture), null)
    runtime          = try(tostring(jsondecode(local.lambda_manifest).runtime), null)
    zip_base64sha256 = try(tostring(jsondecode(local.lambda_manifest).zip_base64sha256), null)
  }

  # Customer-managed KMS key for the buckets, queues, table and alarm topic when
  # kms_key_arn is set (docs/operating.md has the key policy it needs); otherwise
  # SSE-S3, SSE-SQS, DynamoDB's AWS owned key and a key made for the alarm topic.
  use_kms = var.kms_key_arn != null
  # Every queue's encryption, one choice: SSE-SQS, or the customer key with its data key
  # reused for 5 minutes (SQS's default, AWS "KmsDataKeyReusePeriodSeconds").
  queue_sse_managed    = local.use_kms ? null : true
  queue_key_reuse_secs = local.use_kms ? 300 : null
}
