# The upload function behind the HTTP API: direct uploads, presigned POSTs and
# image status.

resource "aws_cloudwatch_log_group" "upload" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; a CMK would need a logs-specific key policy and the logs hold no image data, URLs or secrets
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (30 days by default), chosen per environment
  name              = "/aws/lambda/${local.upload_function}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "upload" {
  #checkov:skip=CKV_AWS_116:invoked synchronously by API Gateway, which returns errors to the client; a function DLQ applies only to asynchronous invocations
  #checkov:skip=CKV_AWS_117:the function reaches only S3 and DynamoDB over AWS endpoints; a VPC would add NAT or endpoints and cold-start cost for no isolation gain
  #checkov:skip=CKV_AWS_173:the environment holds names and limits, no secrets; Lambda encrypts it at rest with an AWS managed key
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile this project does not own; the package is built reproducibly and its hash is pinned by source_code_hash
  #checkov:skip=CKV_AWS_115:concurrency is the upload_reserved_concurrency variable (unreserved by default); the API's throttling limits the request rate
  function_name                  = local.upload_function
  description                    = "Upload API: POST /images, POST /uploads, GET /images/{id}"
  role                           = aws_iam_role.upload.arn
  handler                        = "upload_handler.handler"
  runtime                        = var.lambda_runtime
  architectures                  = [var.lambda_architecture]
  memory_size                    = var.upload_memory_mb
  timeout                        = var.upload_timeout_seconds
  reserved_concurrent_executions = var.upload_reserved_concurrency
  filename                       = local.lambda_zip_file
  s3_bucket                      = local.lambda_from_s3 ? var.lambda_artifact_bucket : null
  s3_key                         = local.lambda_from_s3 ? var.lambda_artifact_key : null
  source_code_hash               = local.lambda_code_hash

  environment {
    variables = {
      UPLOADS_BUCKET               = aws_s3_bucket.uploads.id
      RESIZED_BUCKET               = aws_s3_bucket.resized.id
      TABLE_NAME                   = aws_dynamodb_table.images.name
      MAX_UPLOAD_BYTES             = tostring(var.max_upload_bytes)
      MAX_PRESIGNED_BYTES          = tostring(var.max_presigned_bytes)
      PRESIGN_POST_EXPIRY_SECONDS  = tostring(var.presign_post_expiry_seconds)
      RENDITION_URL_EXPIRY_SECONDS = tostring(var.rendition_url_expiry_seconds)
      CDN_BASE_URL                 = local.cdn_enabled ? local.cdn_base_url : ""
      API_AUTH                     = var.api_auth
      LOG_LEVEL                    = var.log_level
      POWERTOOLS_SERVICE_NAME      = "upload"
      POWERTOOLS_METRICS_NAMESPACE = local.name
    }
  }

  tracing_config {
    mode = var.lambda_tracing_enabled ? "Active" : "PassThrough"
  }

  depends_on = [aws_cloudwatch_log_group.upload, aws_iam_role_policy.upload]
}
