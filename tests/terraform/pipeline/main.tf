# pytest-terraform fixture (tests/test_terraform.py): the repository's root
# module, applied as a child module against the emulator with its defaults,
# except what the emulator needs and a few queue settings the tests follow
# through to the applied resources, and the completion events' SQS rule. Variables come from TF_VAR_* set by the test.

variable "aws_endpoint_url" {
  type        = string
  description = "The emulator's endpoint."
}

variable "lambda_zip_path" {
  type        = string
  description = "The package built by make package."
}

module "pipeline" {
  source = "../../.."

  aws_endpoint_url             = var.aws_endpoint_url
  lambda_zip_path              = var.lambda_zip_path
  api_auth                     = "open"
  dynamodb_deletion_protection = false
  resize_event_source_enabled  = false
  cdn_wait_for_deployment      = false # the emulator's distribution reports Deployed only after 30 s

  resize_batch_size              = 20
  resize_batching_window_seconds = 2
  resize_max_receive_count       = 3

  events_queue_enabled = true
}

output "pipeline" {
  description = "Every output of the root module."
  value       = module.pipeline
}
