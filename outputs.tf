output "alarm_topic_arn" {
  description = "ARN of the SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "api_endpoint" {
  description = "Endpoint of the HTTP API without the stage (same as api_url for the $default stage)."
  value       = aws_apigatewayv2_api.images.api_endpoint
}

output "api_id" {
  description = "ID of the HTTP API."
  value       = aws_apigatewayv2_api.images.id
}

output "api_url" {
  description = "Base URL of the upload API: POST {api_url}/images, POST {api_url}/uploads, GET {api_url}/images/{id}."
  value       = trimsuffix(aws_apigatewayv2_stage.default.invoke_url, "/")
}

output "cdn_base_url" {
  description = "Base URL of the renditions on the CDN (https://<first alias or distribution domain>); a rendition is {cdn_base_url}/{key}. null with cdn_enabled = false."
  value       = local.cdn_base_url
}

output "cdn_distribution_id" {
  description = "ID of the CloudFront distribution in front of the resized bucket; null with cdn_enabled = false."
  value       = one(aws_cloudfront_distribution.renditions[*].id)
}

output "cdn_domain_name" {
  description = "The distribution's own domain name (d....cloudfront.net), the target of DNS records for cdn_aliases; null with cdn_enabled = false."
  value       = one(aws_cloudfront_distribution.renditions[*].domain_name)
}

output "dlq_arn" {
  description = "ARN of the resize dead-letter queue."
  value       = aws_sqs_queue.resize_dlq.arn
}

output "dlq_url" {
  description = "URL of the resize dead-letter queue."
  value       = aws_sqs_queue.resize_dlq.url
}

output "event_bus_name" {
  description = "The EventBridge bus the completion events go to (null with events_enabled = false)."
  value       = var.events_enabled ? local.event_bus_name : null
}

output "events_queue_url" {
  description = "URL of the SQS queue that gets every completion event (null unless events_queue_enabled)."
  value       = local.events_queue ? aws_sqs_queue.events[0].url : null
}

output "kms_key_policy_json" {
  description = "The key policy kms_key_arn needs for this deployment (account root, CloudWatch alarms, S3 notifications, CloudFront with the CDN on), as JSON: apply it to the key before setting kms_key_arn. See docs/operating.md."
  value       = data.aws_iam_policy_document.kms_key.json
}

output "maintenance_function_name" {
  description = "Name of the maintenance function the reprocess and reconcile state machines invoke."
  value       = aws_lambda_function.function["maintenance"].function_name
}

output "queue_arn" {
  description = "ARN of the resize queue."
  value       = aws_sqs_queue.resize.arn
}

output "queue_url" {
  description = "URL of the resize queue that S3 notifies."
  value       = aws_sqs_queue.resize.url
}

output "reconcile_state_machine_arn" {
  description = "ARN of the reconcile state machine (started every reconcile_schedule_minutes; docs/reprocess.md)."
  value       = aws_sfn_state_machine.machines["reconcile"].arn
}

output "reprocess_state_machine_arn" {
  description = "ARN of the reprocess state machine (make reprocess starts it; docs/reprocess.md)."
  value       = aws_sfn_state_machine.machines["reprocess"].arn
}

output "resize_event_source_mapping_uuid" {
  description = "UUID of the SQS event source mapping of the resize function."
  value       = aws_lambda_event_source_mapping.resize.uuid
}

output "resize_function_arn" {
  description = "ARN of the resize function."
  value       = aws_lambda_function.function["resize"].arn
}

output "resize_function_name" {
  description = "Name of the resize function."
  value       = aws_lambda_function.function["resize"].function_name
}

output "resize_log_group_name" {
  description = "Log group of the resize function."
  value       = aws_cloudwatch_log_group.function["resize"].name
}

output "resized_bucket_name" {
  description = "Name of the bucket that holds the renditions ({id}/{tag}/{rendition}.{ext})."
  value       = aws_s3_bucket.resized.id
}

output "table_name" {
  description = "Name of the DynamoDB metadata table."
  value       = aws_dynamodb_table.images.name
}

output "table_ttl_attribute" {
  description = "Attribute of the metadata table that DynamoDB's TTL reads: epoch seconds after which an item may be deleted."
  value       = local.table_ttl_attribute
}

output "upload_function_arn" {
  description = "ARN of the upload function."
  value       = aws_lambda_function.function["upload"].arn
}

output "upload_function_name" {
  description = "Name of the upload function."
  value       = aws_lambda_function.function["upload"].function_name
}

output "upload_log_group_name" {
  description = "Log group of the upload function."
  value       = aws_cloudwatch_log_group.function["upload"].name
}

output "uploads_bucket_name" {
  description = "Name of the bucket that receives originals (originals/{id}/{filename}) and notifies the resize queue."
  value       = aws_s3_bucket.uploads.id
}
