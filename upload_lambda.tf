# The upload function behind the HTTP API: direct uploads, presigned POSTs and
# image status. Its entry in local.lambda_functions (lambda_functions.tf makes it).

locals {
  upload_lambda = {
    name                 = local.upload_function
    description          = "Upload API: POST /images, POST /uploads, GET /images/{id}"
    handler              = "upload_handler.handler"
    memory_mb            = var.upload_memory_mb
    timeout_seconds      = var.upload_timeout_seconds
    reserved_concurrency = var.upload_reserved_concurrency
    environment = {
      MAX_UPLOAD_BYTES            = tostring(var.max_upload_bytes)
      MAX_PRESIGNED_BYTES         = tostring(var.max_presigned_bytes)
      PRESIGN_POST_EXPIRY_SECONDS = tostring(var.presign_post_expiry_seconds)
      API_AUTH                    = var.api_auth
    }
  }
}
