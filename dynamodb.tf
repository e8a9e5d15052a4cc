# The metadata table: one item per image id (see lambda/imgpipe/records.py).

locals {
  # Epoch seconds after which DynamoDB may delete an item (typically within a few
  # days of that time, at no cost). Records that can never complete, such as an
  # upload that was announced but never arrived, carry it; others do not.
  table_ttl_attribute = "expires_at"
  # The sparse index of unfinished records (awaiting_upload, pending, processing):
  # records.py sets these attributes while a record is unfinished and removes them
  # once it is done, failed or deleted. "For any item in a table, DynamoDB writes a
  # corresponding index entry only if the index sort key value is present in the
  # item" (DynamoDB Developer Guide, "Take advantage of sparse indexes").
  table_unfinished_index = "unfinished"
}

resource "aws_dynamodb_table" "images" {
  #checkov:skip=CKV_AWS_119:the AWS owned key by default (no KMS charges, like SSE-S3 and SSE-SQS on the buckets and queues); set kms_key_arn for a customer-managed key
  name                        = local.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "id"
    type = "S"
  }

  attribute {
    name = "unfinished"
    type = "S"
  }

  attribute {
    name = "unfinished_since"
    type = "S"
  }

  # Keys only: a reader (a later reconcile) reads each record consistently before acting.
  global_secondary_index {
    name            = local.table_unfinished_index
    hash_key        = "unfinished"
    range_key       = "unfinished_since"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }

  ttl {
    attribute_name = local.table_ttl_attribute
    enabled        = true
  }

  # enabled = false is DynamoDB's AWS owned key (no KMS charges); true without a
  # key would be the AWS managed key aws/dynamodb (KMS charges); true with
  # kms_key_arn is that customer-managed key.
  server_side_encryption {
    enabled     = local.use_kms
    kms_key_arn = var.kms_key_arn
  }
}
