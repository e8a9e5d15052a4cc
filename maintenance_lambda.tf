# The maintenance function: the reprocess and reconcile state machines'
# (step_functions.tf) decisions, one action per invocation
# (lambda/maintenance_handler.py dispatches on event["action"]). Its entry in
# local.lambda_functions (lambda_functions.tf makes it): it reads the resize
# function's configuration so it computes the same config version.

locals {
  # A processing record older than this was received max_receive_count times
  # and never finished: every receive's visibility timeout has run out.
  reconcile_stuck_after_seconds = local.resize_visibility_timeout * var.resize_max_receive_count

  maintenance_lambda = {
    name            = local.maintenance_function
    description     = "Reprocess and reconcile decisions for the Step Functions state machines"
    handler         = "maintenance_handler.handler"
    memory_mb       = 256
    timeout_seconds = 120
    # Unreserved: the state machines' MaxConcurrency (reprocess_max_concurrency) bounds it.
    reserved_concurrency = -1
    # The resize function's configuration (renditions, limits, watermark: the
    # config version), then what only maintenance reads.
    environment = merge(local.resize_lambda.environment, {
      PRESIGN_POST_EXPIRY_SECONDS = tostring(var.presign_post_expiry_seconds)
      RECONCILE_PENDING_AFTER_S   = tostring(var.reconcile_pending_after_seconds)
      RECONCILE_STUCK_AFTER_S     = tostring(local.reconcile_stuck_after_seconds)
    })
  }
}
