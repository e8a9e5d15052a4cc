variable "alarm_api_5xx_percent" {
  type        = number
  description = "Alarm when more than this percentage of upload API requests get a 5xx, in alarm_datapoints_to_alarm of alarm_evaluation_periods five-minute periods."
  default     = 5

  validation {
    condition     = var.alarm_api_5xx_percent > 0 && var.alarm_api_5xx_percent <= 100
    error_message = "alarm_api_5xx_percent must be in (0, 100]."
  }
}

variable "alarm_datapoints_to_alarm" {
  type        = number
  description = "How many of the last alarm_evaluation_periods five-minute periods must breach before a rate alarm fires (M of N), so one bad request or image never pages."
  default     = 3

  validation {
    condition     = var.alarm_datapoints_to_alarm >= 1 && floor(var.alarm_datapoints_to_alarm) == var.alarm_datapoints_to_alarm
    error_message = "alarm_datapoints_to_alarm must be a positive integer (and at most alarm_evaluation_periods)."
  }
}

variable "alarm_email" {
  type        = string
  description = "E-mail address subscribed to the alarm topic (the address must confirm the subscription). null = no subscription."
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address or null."
  }
}

variable "alarm_evaluation_periods" {
  type        = number
  description = "Five-minute periods the rate alarms look back over (the N in M of N)."
  default     = 5

  validation {
    condition     = var.alarm_evaluation_periods >= 1 && var.alarm_evaluation_periods <= 288 && floor(var.alarm_evaluation_periods) == var.alarm_evaluation_periods
    error_message = "alarm_evaluation_periods must be 1..288: CloudWatch evaluates at most one day (288 five-minute periods)."
  }
}

variable "alarm_function_error_percent" {
  type        = number
  description = "Alarm when more than this percentage of a function's invocations fail (Lambda Errors per Invocations), in alarm_datapoints_to_alarm of alarm_evaluation_periods five-minute periods."
  default     = 5

  validation {
    condition     = var.alarm_function_error_percent > 0 && var.alarm_function_error_percent <= 100
    error_message = "alarm_function_error_percent must be in (0, 100]."
  }
}

variable "alarm_image_failure_percent" {
  type        = number
  description = "Alarm when more than this percentage of resize messages end failed, errored or unreadable (the handler's ImagesFailed, ImagesErrored, BadMessages per MessagesReceived), in alarm_datapoints_to_alarm of alarm_evaluation_periods five-minute periods."
  default     = 10

  validation {
    condition     = var.alarm_image_failure_percent > 0 && var.alarm_image_failure_percent <= 100
    error_message = "alarm_image_failure_percent must be in (0, 100]."
  }
}

variable "alarm_image_retry_percent" {
  type        = number
  description = "Alarm when more than this percentage of resize messages are handed back to SQS for a retry (ImagesRetried per MessagesReceived), in alarm_datapoints_to_alarm of alarm_evaluation_periods five-minute periods."
  default     = 20

  validation {
    condition     = var.alarm_image_retry_percent > 0 && var.alarm_image_retry_percent <= 100
    error_message = "alarm_image_retry_percent must be in (0, 100]."
  }
}

variable "alarm_oldest_message_age_seconds" {
  type        = number
  description = "Alarm when the oldest message in the resize queue is older than this many seconds."
  default     = 900

  validation {
    condition     = var.alarm_oldest_message_age_seconds >= 60
    error_message = "alarm_oldest_message_age_seconds must be at least 60."
  }
}

variable "api_auth" {
  type        = string
  description = "Who may call the API, chosen explicitly (no default): \"jwt\" = every route needs a token from api_jwt_issuer for one of api_jwt_audience, and each image belongs to the token's subject; \"open\" = anyone who knows the URL may upload and read images by id, bounded only by api_rate_limit, api_burst_limit and the size limits (docs/api-security.md)."
  default     = null

  validation {
    condition     = contains(["jwt", "open"], coalesce(var.api_auth, "unset"))
    error_message = "api_auth must be set: \"jwt\" (a JWT authorizer on every route; also set api_jwt_issuer and api_jwt_audience) or \"open\" (no authorization: anyone who knows the URL may upload; see docs/api-security.md)."
  }
}

variable "api_burst_limit" {
  type        = number
  description = "HTTP API stage throttling: burst limit (requests)."
  default     = 100

  validation {
    condition     = var.api_burst_limit >= 0 && floor(var.api_burst_limit) == var.api_burst_limit
    error_message = "api_burst_limit must be a non-negative integer."
  }
}

variable "api_cors_allowed_origins" {
  type        = list(string)
  description = "Origins allowed to call the API and to POST presigned forms to the uploads bucket from a browser, e.g. [\"https://app.example.com\"]. Empty = no CORS on the API; the bucket always allows the API's own origin (its upload page)."
  default     = []

  validation {
    condition     = alltrue([for o in var.api_cors_allowed_origins : o == "*" || can(regex("^https?://[^/\\s]+$", o))])
    error_message = "api_cors_allowed_origins entries must be origins like https://app.example.com (scheme and host, no path)."
  }
}

variable "api_jwt_audience" {
  type        = list(string)
  description = "Audiences (client ids) the JWT authorizer accepts: a token's aud (or client_id) must be one of them. Required, at least one, with api_jwt_issuer: an empty list lets no token pass on AWS."
  default     = []

  validation {
    condition     = length(var.api_jwt_audience) <= 50 && alltrue([for a in var.api_jwt_audience : length(trimspace(a)) > 0])
    error_message = "api_jwt_audience takes at most 50 audiences (API Gateway's limit per authorizer), none empty."
  }
}

variable "api_jwt_issuer" {
  type        = string
  description = "Issuer URL of the JWT authorizer (e.g. a Cognito user pool or any OIDC provider); set it with api_auth = \"jwt\". null = no authorizer (api_auth = \"open\")."
  default     = null

  validation {
    condition     = var.api_jwt_issuer == null || can(regex("^https://", var.api_jwt_issuer))
    error_message = "api_jwt_issuer must be an https:// URL or null."
  }
}

variable "api_rate_limit" {
  type        = number
  description = "HTTP API stage throttling: steady-state rate limit (requests per second)."
  default     = 50

  validation {
    condition     = var.api_rate_limit >= 0
    error_message = "api_rate_limit must be non-negative."
  }
}

variable "avif_speed" {
  type        = number
  description = "libavif's encoder speed for AVIF renditions (AVIF_SPEED): 0 slowest and smallest .. 10 fastest; measured costs in docs/formats.md."
  default     = 8

  validation {
    condition     = var.avif_speed >= 0 && var.avif_speed <= 10 && floor(var.avif_speed) == var.avif_speed
    error_message = "avif_speed must be a whole number 0..10 (libavif's speed range)."
  }
}

variable "aws_endpoint_url" {
  type        = string
  description = "Send every AWS call to this endpoint (a local emulator, e.g. http://127.0.0.1:4566). null = real AWS."
  default     = null

  validation {
    condition     = var.aws_endpoint_url == null || can(regex("^https?://", var.aws_endpoint_url))
    error_message = "aws_endpoint_url must be an http(s):// URL or null."
  }
}

variable "aws_region" {
  type        = string
  description = "AWS region to deploy to."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.aws_region)) && length(var.aws_region) <= 16
    error_message = "aws_region must be a region name such as eu-west-1 (at most 16 characters, so that bucket names stay within 63)."
  }
}

variable "cdn_acm_certificate_arn" {
  type        = string
  description = "ARN of an ACM certificate in us-east-1 (CloudFront takes certificates from there only) that covers every name in cdn_aliases. null = CloudFront's *.cloudfront.net certificate."
  default     = null

  validation {
    condition     = var.cdn_acm_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]+$", var.cdn_acm_certificate_arn))
    error_message = "cdn_acm_certificate_arn must be an ACM certificate ARN in us-east-1 (arn:aws:acm:us-east-1:ACCOUNT:certificate/ID): CloudFront only supports ACM certificates in US East (N. Virginia)."
  }
}

variable "cdn_aliases" {
  type        = list(string)
  description = "Alternate domain names (CNAMEs) of the CDN, e.g. [\"img.example.com\"]; the first one is the host of the rendition URLs. Needs cdn_acm_certificate_arn. [] = the distribution's *.cloudfront.net name."
  default     = []

  validation {
    condition     = alltrue([for a in var.cdn_aliases : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", a))])
    error_message = "cdn_aliases must be lowercase domain names such as img.example.com (no wildcards: the first one is the host of every URL)."
  }
}

variable "cdn_enabled" {
  type        = bool
  description = "Serve renditions through a CloudFront distribution (docs/cdn.md): GET /images/{id} returns https://<cdn>/<key> URLs and only the distribution may read the resized bucket. false = presigned S3 URLs."
  default     = true
}

variable "cdn_price_class" {
  type        = string
  description = "CloudFront price class: PriceClass_100 (North America, Europe, Israel), PriceClass_200 (adds most of Asia, Africa, the Middle East) or PriceClass_All."
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.cdn_price_class)
    error_message = "cdn_price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "cdn_wait_for_deployment" {
  type        = bool
  description = "Wait, during apply, until CloudFront reports the distribution Deployed (minutes on AWS). false = return at once; the URLs work once it is deployed."
  default     = true
}

variable "cdn_web_acl_id" {
  type        = string
  description = "ARN of an AWS WAF (v2, scope CLOUDFRONT, in us-east-1) web ACL for the distribution. null = none."
  default     = null
}

variable "dynamodb_deletion_protection" {
  type        = bool
  description = "Deletion protection on the metadata table (set false before `terraform destroy`)."
  default     = true
}

variable "environment" {
  type        = string
  description = "Environment name, part of every resource name (dev, staging, prod, ...)."
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,11}$", var.environment))
    error_message = "environment must be 1-12 lowercase letters, digits or hyphens."
  }
}

variable "event_bus_name" {
  type        = string
  description = "An existing EventBridge bus (in this account and region) for the completion events (docs/events.md). null = the module makes one, <name_prefix>-<environment>-events."
  default     = null

  validation {
    condition     = var.event_bus_name == null || can(regex("^[A-Za-z0-9._-]{1,256}$", var.event_bus_name))
    error_message = "event_bus_name must be a bus name (1-256 letters, digits, '.', '_' or '-'), not an ARN."
  }
}

variable "event_source" {
  type        = string
  description = "The source of the completion events (EVENT_SOURCE), what rules match on."
  default     = "imgpipe"

  validation {
    condition     = length(var.event_source) >= 1 && length(var.event_source) <= 256 && !startswith(var.event_source, "aws.")
    error_message = "event_source must be 1-256 characters and must not start with \"aws.\" (EventBridge reserves it)."
  }
}

variable "events_enabled" {
  type        = bool
  description = "Publish an Image Processed or Image Failed event per image on the event bus (docs/events.md)."
  default     = true
}

variable "events_queue_enabled" {
  type        = bool
  description = "A rule sending every completion event to an SQS queue for backends (output events_queue_url)."
  default     = false
}

variable "events_webhook_secret_arn" {
  type        = string
  description = "Secrets Manager secret whose JSON {\"header\": ..., \"value\": ...} the webhook receives as an API key header. Required with events_webhook_url."
  default     = null
}

variable "events_webhook_url" {
  type        = string
  description = "An HTTPS endpoint that gets every completion event as a POST (an EventBridge API destination, retried for a day, then its own DLQ). null = no webhook."
  default     = null

  validation {
    condition     = var.events_webhook_url == null || can(regex("^https://", var.events_webhook_url))
    error_message = "events_webhook_url must be an https:// URL (EventBridge API destinations call HTTPS only)."
  }
}

variable "jpeg_background" {
  type        = string
  description = "Colour that transparent pixels are flattened onto for JPEG renditions (JPEG_BACKGROUND)."
  default     = "#ffffff"

  validation {
    condition     = can(regex("^#[0-9a-fA-F]{6}$", var.jpeg_background))
    error_message = "jpeg_background must be a colour like #ffffff."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of a customer-managed KMS key (in the deployment's region) for the buckets, queues, table and alarm topic. null = SSE-S3, SSE-SQS, DynamoDB's AWS owned key and a key made for the alarm topic. Its key policy must allow CloudWatch and S3 as the kms_key_policy_json output shows (docs/operating.md)."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$", var.kms_key_arn))
    error_message = "kms_key_arn must be the ARN of a key (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID), not an alias, key id or alias ARN: key policies and kms:ViaService grants name the key itself."
  }
}

variable "lambda_architecture" {
  type        = string
  description = "Instruction set of both functions; must match the one `make package ARCH=...` built for."
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_artifact_bucket" {
  type        = string
  description = "Bucket holding the Lambda package. null = deploy the local zip at lambda_zip_path."
  default     = null
}

variable "lambda_artifact_key" {
  type        = string
  description = "Object key of the Lambda package in lambda_artifact_bucket."
  default     = "lambda.zip"
}

variable "lambda_artifact_manifest" {
  type = object({
    architecture = string
    runtime      = string
  })
  description = "What the package in lambda_artifact_bucket was built for: the architecture and runtime of the build/lambda.json that `make package` writes beside the zip. Required with lambda_artifact_bucket; the plan fails unless they match lambda_architecture and lambda_runtime."
  default     = null
}

variable "lambda_artifact_sha256" {
  type        = string
  description = "base64-encoded SHA-256 of the package in lambda_artifact_bucket (`openssl dgst -sha256 -binary lambda.zip | base64`); a new value redeploys the code."
  default     = null

  validation {
    condition     = var.lambda_artifact_sha256 == null || can(regex("^[A-Za-z0-9+/]{43}=$", var.lambda_artifact_sha256))
    error_message = "lambda_artifact_sha256 must be a base64-encoded SHA-256 (44 characters)."
  }
}

variable "lambda_runtime" {
  type        = string
  description = "Python runtime of both functions; must match the one `make package LAMBDA_RUNTIME=...` built for."
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 or python3.13."
  }
}

variable "lambda_tracing_enabled" {
  type        = bool
  description = "Active X-Ray tracing for both functions (adds the X-Ray write permissions)."
  default     = false
}

variable "lambda_zip_path" {
  type        = string
  description = "Path of the local Lambda package. null = build/lambda.zip beside this module (`make package`)."
  default     = null
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of both functions."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the functions' and the API's log groups, in days."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "max_presigned_bytes" {
  type        = number
  description = "Largest file a presigned POST (POST /uploads) accepts, in bytes (MAX_PRESIGNED_BYTES)."
  default     = 52428800

  validation {
    condition     = var.max_presigned_bytes >= 1 && var.max_presigned_bytes <= 5368709120
    error_message = "max_presigned_bytes must be 1..5368709120 (S3's 5 GiB limit for a POST)."
  }
}

variable "max_upload_bytes" {
  type        = number
  description = "Largest image POST /images accepts, in bytes (MAX_UPLOAD_BYTES), at most 4603904: a synchronous Lambda request must be smaller than 6 MiB, and API Gateway passes the body base64-encoded (4/3 larger) with the headers. Larger files go through POST /uploads."
  default     = 4194304

  validation {
    condition     = var.max_upload_bytes >= 1 && var.max_upload_bytes <= 4603904
    error_message = "max_upload_bytes must be 1..4603904: base64-encoded in a multipart body, with the request's headers, a larger image would not fit Lambda's 6 MiB synchronous request, and API Gateway would answer instead of the function."
  }
}

variable "name_prefix" {
  type        = string
  description = "First part of every resource name."
  default     = "imgpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name_prefix))
    error_message = "name_prefix must be 2-12 lowercase letters, digits or hyphens, starting with a letter (bucket names are limited to 63 characters)."
  }

  # Bucket names start with "<name_prefix>-": S3 reserves these prefixes
  # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
  validation {
    condition     = !anytrue([for p in ["xn--", "sthree-", "amzn-s3-demo-"] : startswith("${var.name_prefix}-", p)])
    error_message = "name_prefix must not make bucket names start with a prefix S3 reserves: xn--, sthree-, amzn-s3-demo-."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which noncurrent object versions in both buckets are deleted."
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a positive integer."
  }
}

variable "presign_post_expiry_seconds" {
  type        = number
  description = "Lifetime of a presigned POST from POST /uploads, in seconds (PRESIGN_POST_EXPIRY_SECONDS), at most 3600: the form is signed with the upload function's temporary role credentials, and S3 refuses it once they expire, whatever lifetime it states."
  default     = 900

  validation {
    condition     = var.presign_post_expiry_seconds >= 60 && var.presign_post_expiry_seconds <= 3600
    error_message = "presign_post_expiry_seconds must be 60..3600: the form is signed with the Lambda role's temporary credentials, which AWS does not promise beyond that (docs/api-security.md)."
  }
}

variable "reconcile_pending_after_seconds" {
  type        = number
  description = "The reconcile pass re-enqueues an image still pending this long after its original arrived (a lost or late S3 event)."
  default     = 900

  validation {
    condition     = var.reconcile_pending_after_seconds >= 1 && var.reconcile_pending_after_seconds <= 86400
    error_message = "reconcile_pending_after_seconds must be 1..86400."
  }
}

variable "reconcile_schedule_enabled" {
  type        = bool
  description = "Run the reconcile state machine on its schedule (false: the schedule exists, disabled)."
  default     = true
}

variable "reconcile_schedule_minutes" {
  type        = number
  description = "Minutes between reconcile passes (an EventBridge Scheduler rate)."
  default     = 15

  validation {
    condition     = var.reconcile_schedule_minutes >= 1 && var.reconcile_schedule_minutes <= 1440 && floor(var.reconcile_schedule_minutes) == var.reconcile_schedule_minutes
    error_message = "reconcile_schedule_minutes must be a whole number 1..1440."
  }
}

variable "rendition_url_expiry_seconds" {
  type        = number
  description = "Lifetime of the presigned rendition URLs in GET /images/{id}, in seconds (RENDITION_URL_EXPIRY_SECONDS), at most 3600: they are signed with the upload function's temporary role credentials, and S3 refuses them once those expire; clients ask GET /images/{id} again for fresh links."
  default     = 3600

  validation {
    condition     = var.rendition_url_expiry_seconds >= 1 && var.rendition_url_expiry_seconds <= 3600
    error_message = "rendition_url_expiry_seconds must be 1..3600: the URLs are signed with the Lambda role's temporary credentials, which AWS does not promise beyond that (docs/api-security.md)."
  }
}

variable "renditions" {
  type = list(object({
    name    = string
    width   = number
    height  = number
    fit     = optional(string, "contain")
    formats = optional(list(string), ["webp", "jpeg"])
    quality = optional(number, 82)
    crop    = optional(string, "centre")
  }))
  description = "Renditions to make (RENDITIONS). null = lambda/imgpipe/default_renditions.json, the single source of truth."
  default     = null

  validation {
    condition = alltrue([
      for r in(var.renditions == null ? [] : var.renditions) :
      can(regex("^[a-z0-9][a-z0-9_-]{0,31}$", r.name)) &&
      r.width >= 1 && r.width <= 16383 && r.height >= 1 && r.height <= 16383 &&
      contains(["contain", "cover"], r.fit) &&
      length(r.formats) > 0 && length(setsubtract(r.formats, ["jpeg", "webp", "avif"])) == 0 &&
      r.quality >= 1 && r.quality <= 100 &&
      contains(["centre", "attention"], r.crop) && (r.crop == "centre" || r.fit == "cover")
    ])
    error_message = "Each rendition needs a name matching ^[a-z0-9][a-z0-9_-]{0,31}$, width and height 1..16383, fit contain or cover, formats from jpeg, webp, avif, quality 1..100, crop centre or attention (attention only with fit cover)."
  }
}

variable "reprocess_batch_size" {
  type        = number
  description = "Originals per reprocess child execution (the Distributed Map's MaxItemsPerBatch): one maintenance invocation plans them."
  default     = 100

  validation {
    condition     = var.reprocess_batch_size >= 1 && var.reprocess_batch_size <= 1000 && floor(var.reprocess_batch_size) == var.reprocess_batch_size
    error_message = "reprocess_batch_size must be a whole number 1..1000."
  }
}

variable "reprocess_max_concurrency" {
  type        = number
  description = "Reprocess child executions running at once (the Distributed Map's MaxConcurrency; also the maintenance function's concurrency)."
  default     = 10

  validation {
    condition     = var.reprocess_max_concurrency >= 1 && var.reprocess_max_concurrency <= 10000 && floor(var.reprocess_max_concurrency) == var.reprocess_max_concurrency
    error_message = "reprocess_max_concurrency must be a whole number 1..10000 (Step Functions' limit)."
  }
}

variable "reprocess_tolerated_failure_percent" {
  type        = number
  description = "Percentage of reprocess child executions that may fail before the run fails (ToleratedFailurePercentage). Keys that are gone or unreadable are counted, not failures of their batch."
  default     = 10

  validation {
    condition     = var.reprocess_tolerated_failure_percent >= 0 && var.reprocess_tolerated_failure_percent <= 100
    error_message = "reprocess_tolerated_failure_percent must be 0..100."
  }
}

variable "resize_batch_size" {
  type        = number
  description = "Messages per resize invocation (the event source mapping's batch size). Above 10 needs resize_batching_window_seconds > 0."
  default     = 5

  validation {
    condition     = var.resize_batch_size >= 1 && var.resize_batch_size <= 10000
    error_message = "resize_batch_size must be 1..10000."
  }
}

variable "resize_batching_window_seconds" {
  type        = number
  description = "Maximum batching window of the event source mapping, in seconds."
  default     = 0

  validation {
    condition     = var.resize_batching_window_seconds >= 0 && var.resize_batching_window_seconds <= 300
    error_message = "resize_batching_window_seconds must be 0..300."
  }
}

variable "resize_event_source_enabled" {
  type        = bool
  description = "Whether the SQS event source mapping is enabled. The local stack sets false: the emulator would consume messages for an enabled mapping but cannot run Lambda code, so the local poller delivers batches with the mapping's own settings instead."
  default     = true
}

variable "resize_max_animation_pixels" {
  type        = number
  description = "Frames x width x height an animated GIF or WebP may have and stay animated (MAX_ANIMATION_PIXELS); larger ones give renditions of their first frame. 0 = never animated."
  default     = 50000000

  validation {
    condition     = var.resize_max_animation_pixels >= 0
    error_message = "resize_max_animation_pixels must be 0 or more."
  }
}

variable "resize_max_concurrency" {
  type        = number
  description = "Maximum concurrent resize invocations the SQS mapping starts (scaling_config, 2..1000). null = no mapping limit; used with resize_reserved_concurrency = -1."
  default     = 10

  validation {
    condition     = var.resize_max_concurrency == null || (coalesce(var.resize_max_concurrency, 2) >= 2 && coalesce(var.resize_max_concurrency, 2) <= 1000)
    error_message = "resize_max_concurrency must be 2..1000 or null."
  }
}

variable "resize_max_pixels" {
  type        = number
  description = "Largest source image, in pixels, the resize function decodes (MAX_PIXELS); larger ones fail with too_many_pixels."
  default     = 100000000

  validation {
    condition     = var.resize_max_pixels >= 1
    error_message = "resize_max_pixels must be positive."
  }
}

variable "resize_max_receive_count" {
  type        = number
  description = "Deliveries of a message before it moves to the dead-letter queue (maxReceiveCount)."
  default     = 5

  validation {
    condition     = var.resize_max_receive_count >= 1 && var.resize_max_receive_count <= 1000
    error_message = "resize_max_receive_count must be 1..1000."
  }
}

variable "resize_max_source_bytes" {
  type        = number
  description = "Largest original, in bytes, the resize function downloads (MAX_SOURCE_BYTES); larger ones fail with source_too_large."
  default     = 104857600

  validation {
    condition     = var.resize_max_source_bytes >= 1
    error_message = "resize_max_source_bytes must be positive."
  }
}

variable "resize_memory_mb" {
  type        = number
  description = "Memory of the resize function, in MB (CPU scales with it)."
  default     = 1536

  validation {
    condition     = var.resize_memory_mb >= 128 && var.resize_memory_mb <= 10240
    error_message = "resize_memory_mb must be 128..10240."
  }
}

variable "resize_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the resize function. -1 = unreserved (the default: the mapping's resize_max_concurrency limits it without throttling)."
  default     = -1

  validation {
    condition     = var.resize_reserved_concurrency >= -1
    error_message = "resize_reserved_concurrency must be -1 (unreserved) or a non-negative integer."
  }
}

variable "resize_timeout_seconds" {
  type        = number
  description = "Timeout of the resize function, in seconds. The queue's visibility timeout is six times this."
  default     = 60

  validation {
    condition     = var.resize_timeout_seconds >= 1 && var.resize_timeout_seconds <= 900
    error_message = "resize_timeout_seconds must be 1..900."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (provider default_tags)."
  default     = {}
}

variable "upload_memory_mb" {
  type        = number
  description = "Memory of the upload function, in MB."
  default     = 512

  validation {
    condition     = var.upload_memory_mb >= 128 && var.upload_memory_mb <= 10240
    error_message = "upload_memory_mb must be 128..10240."
  }
}

variable "upload_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the upload function. -1 = unreserved."
  default     = -1

  validation {
    condition     = var.upload_reserved_concurrency >= -1
    error_message = "upload_reserved_concurrency must be -1 (unreserved) or a non-negative integer."
  }
}

variable "upload_timeout_seconds" {
  type        = number
  description = "Timeout of the upload function, in seconds (the HTTP API gives up after 30)."
  default     = 15

  validation {
    condition     = var.upload_timeout_seconds >= 1 && var.upload_timeout_seconds <= 30
    error_message = "upload_timeout_seconds must be 1..30: the HTTP API's integration timeout is 30 s."
  }
}

variable "watermark_key" {
  type        = string
  description = "Key of a watermark image (PNG with alpha) in the uploads bucket (WATERMARK_KEY); events for that key are skipped. Empty = none."
  default     = ""
}

variable "watermark_margin" {
  type        = number
  description = "Watermark margin as a fraction of the rendition's shorter side (WATERMARK_MARGIN)."
  default     = 0.02

  validation {
    condition     = var.watermark_margin >= 0 && var.watermark_margin < 0.5
    error_message = "watermark_margin must be in [0, 0.5)."
  }
}

variable "watermark_min_size" {
  type        = number
  description = "Renditions whose shorter side is below this many pixels get no watermark (WATERMARK_MIN_SIZE)."
  default     = 300

  validation {
    condition     = var.watermark_min_size >= 0
    error_message = "watermark_min_size must be non-negative."
  }
}

variable "watermark_opacity" {
  type        = number
  description = "Watermark opacity, 0..1 (WATERMARK_OPACITY)."
  default     = 0.5

  validation {
    condition     = var.watermark_opacity >= 0 && var.watermark_opacity <= 1
    error_message = "watermark_opacity must be 0..1."
  }
}

variable "watermark_position" {
  type        = string
  description = "Where the watermark goes (WATERMARK_POSITION)."
  default     = "bottom-right"

  validation {
    condition     = contains(["top-left", "top-right", "bottom-left", "bottom-right", "center"], var.watermark_position)
    error_message = "watermark_position must be top-left, top-right, bottom-left, bottom-right or center."
  }
}

variable "watermark_scale" {
  type        = number
  description = "Watermark width as a fraction of the rendition's width (WATERMARK_SCALE)."
  default     = 0.25

  validation {
    condition     = var.watermark_scale > 0 && var.watermark_scale <= 1
    error_message = "watermark_scale must be in (0, 1]."
  }
}

variable "watermark_text" {
  type        = string
  description = "Text watermark on renditions (WATERMARK_TEXT). Empty = none."
  default     = ""
}
