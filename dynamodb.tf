# The metadata table: one item per image id (see lambda/imgpipe/records.py).

resource "aws_dynamodb_table" "images" {
  name                        = local.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  # enabled = true: the AWS managed key (aws/dynamodb), or kms_key_arn when set.
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}
