# The HTTP API in front of the upload function (payload format 2.0).

locals {
  # route key => the method/path part of its execute-api ARN, for the invoke
  # permission of exactly these routes.
  api_routes = {
    "POST /images"        = "POST/images"
    "POST /uploads"       = "POST/uploads"
    "GET /images/{id}"    = "GET/images/*"
    "DELETE /images/{id}" = "DELETE/images/*"
  }
  # The browser upload page (docs/browser.md): open even under JWT, since it
  # holds no data and is where a person enters the token.
  page_routes = {
    "GET /"              = "GET/"
    "GET /assets/{name}" = "GET/assets/*"
    "GET /limits"        = "GET/limits"
  }
  api_jwt = var.api_auth == "jwt"
}

resource "aws_apigatewayv2_api" "images" {
  name          = local.name
  description   = "Image pipeline upload API"
  protocol_type = "HTTP"

  # The API answers preflights itself for the configured origins; none by default.
  dynamic "cors_configuration" {
    for_each = length(var.api_cors_allowed_origins) > 0 ? [var.api_cors_allowed_origins] : []

    content {
      allow_origins  = cors_configuration.value
      allow_methods  = ["DELETE", "GET", "POST", "OPTIONS"]
      allow_headers  = ["authorization", "content-type"]
      expose_headers = ["location"]
      max_age        = 3600
    }
  }

  # The authorization choice must be explicit and complete (api_auth itself is
  # validated in variables.tf; these relate it to the issuer and audience).
  lifecycle {
    precondition {
      condition     = var.api_auth != "jwt" || var.api_jwt_issuer != null
      error_message = "api_auth = \"jwt\" needs api_jwt_issuer (the token issuer's https:// URL) and api_jwt_audience."
    }
    precondition {
      condition     = var.api_auth != "open" || var.api_jwt_issuer == null
      error_message = "api_jwt_issuer is set but api_auth = \"open\": set api_auth = \"jwt\" to require tokens, or remove api_jwt_issuer."
    }
    precondition {
      condition     = var.api_jwt_issuer == null || length(var.api_jwt_audience) > 0
      error_message = "api_jwt_audience must name at least one audience (client id) when api_jwt_issuer is set: API Gateway's JWT authorizer accepts a token only when its aud (or client_id) is in the list, so an empty list lets no token pass."
    }
  }
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count = local.api_jwt ? 1 : 0

  api_id           = aws_apigatewayv2_api.images.id
  name             = "jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.api_jwt_issuer
    audience = var.api_jwt_audience
  }
}

resource "aws_apigatewayv2_integration" "upload" {
  api_id                 = aws_apigatewayv2_api.images.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.function["upload"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "upload" {
  #checkov:skip=CKV_AWS_309:authorization is an explicit choice: api_auth = "jwt" puts a JWT authorizer on every route, "open" is documented in docs/api-security.md
  for_each = local.api_routes

  api_id             = aws_apigatewayv2_api.images.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.upload.id}"
  authorization_type = local.api_jwt ? "JWT" : "NONE"
  authorizer_id      = local.api_jwt ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

resource "aws_apigatewayv2_route" "page" {
  #checkov:skip=CKV_AWS_309:the upload page, its assets and the public limits hold no data; the routes that do keep the authorizer
  for_each = local.page_routes

  api_id             = aws_apigatewayv2_api.images.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.upload.id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; access logs hold no secrets
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (30 days by default), chosen per environment
  name              = "/aws/apigateway/${local.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.images.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    detailed_metrics_enabled = true
    throttling_burst_limit   = var.api_burst_limit
    throttling_rate_limit    = var.api_rate_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      ip                 = "$context.identity.sourceIp"
      httpMethod         = "$context.httpMethod"
      routeKey           = "$context.routeKey"
      path               = "$context.path"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
      authorizerError    = "$context.authorizer.error"
    })
  }
}

resource "aws_lambda_permission" "api" {
  for_each = merge(local.api_routes, local.page_routes)

  statement_id  = "AllowApiGateway-${trimsuffix(replace(replace(each.value, "/", "-"), "*", "id"), "-")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["upload"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.images.execution_arn}/*/${each.value}"
}
