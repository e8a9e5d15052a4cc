terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}

locals {
  # Every service this module calls; with aws_endpoint_url set, all of them go to
  # the emulator (the local stack and the tests), otherwise to AWS.
  emulated = var.aws_endpoint_url != null
}

provider "aws" {
  region = var.aws_region

  # Against an emulator on loopback: bucket subdomains do not resolve, there is
  # no instance metadata service and the fake keys cannot be validated by STS.
  s3_use_path_style           = local.emulated
  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated

  endpoints {
    apigatewayv2   = var.aws_endpoint_url
    cloudfront     = var.aws_endpoint_url
    cloudwatch     = var.aws_endpoint_url
    dynamodb       = var.aws_endpoint_url
    events         = var.aws_endpoint_url
    iam            = var.aws_endpoint_url
    kms            = var.aws_endpoint_url
    lambda         = var.aws_endpoint_url
    logs           = var.aws_endpoint_url
    s3             = var.aws_endpoint_url
    scheduler      = var.aws_endpoint_url
    sns            = var.aws_endpoint_url
    secretsmanager = var.aws_endpoint_url
    sfn            = var.aws_endpoint_url
    sqs            = var.aws_endpoint_url
    sts            = var.aws_endpoint_url
  }

  default_tags {
    tags = merge(var.tags, {
      Application = var.name_prefix
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
