"""Upload API Lambda (API Gateway HTTP API, payload format 2.0).

Routes: ``POST /images`` (direct upload), ``POST /uploads`` (presigned S3
POST), ``GET /images/{id}`` (status and rendition links), ``DELETE
/images/{id}`` (the original, then through S3's events the renditions); and the
browser upload page on open routes: ``GET /``, ``GET /assets/{name}``, ``GET
/limits`` (``imgpipe.upload_page``, docs/browser.md). Parsing and response
shapes live in ``imgpipe.api``, the AWS calls in ``imgpipe.uploads``; this
module wires them to the routes. Behind a JWT authorizer, an image belongs to
the token's subject and nobody else sees it (docs/api-security.md). Logs are
JSON with the request ids; they never hold bodies or presigned URLs.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths

from imgpipe import api, aws, cdn, records, upload_page, uploads
from imgpipe.upload_config import UploadConfig

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "image-upload")
app = APIGatewayHttpResolver()


@functools.cache
def settings() -> UploadConfig:
    """Read once per cold start (``settings.cache_clear()`` re-reads, for tests)."""
    return UploadConfig.from_env()


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _subject() -> str | None:
    return api.caller_subject(app.current_event.raw_event.get("requestContext"))


def _created(record: dict[str, Any], body: dict[str, Any]) -> Response:
    link = api.self_link(record["id"])
    return json_response(201, {**body, "links": {"self": link}}, {"Location": link})


@app.post("/images")
def post_image() -> Response:
    cfg = settings()
    event = app.current_event
    owner = _subject()
    data = api.decode_body(event.body, event.is_base64_encoded)
    query = event.query_string_parameters or {}
    upload = api.parse_image_upload(
        data, api.header(event.headers, "content-type"), query.get("filename"), cfg.max_upload_bytes
    )
    record = uploads.store_original(aws.client("s3"), aws.table(cfg.table_name), cfg, upload, owner)
    logger.info(
        "image stored",
        extra={
            "image_id": record["id"],
            "key": record["original"]["key"],
            "size": record["original"]["size"],
            "content_type": upload.content_type,
            "declared_content_type": upload.declared_type,
        },
    )
    return _created(record, {"id": record["id"], "status": record["status"], "original": record["original"]})


@app.post("/uploads")
def post_upload() -> Response:
    cfg = settings()
    event = app.current_event
    owner = _subject()
    data = api.decode_body(event.body, event.is_base64_encoded)
    request = api.parse_presign_request(data, cfg.max_presigned_bytes)
    record, upload = uploads.create_presigned_upload(
        aws.client("s3"), aws.table(cfg.table_name), cfg, request, owner
    )
    logger.info(
        "presigned upload created",
        extra={
            "image_id": record["id"],
            "key": record["original"]["key"],
            "expires_at": upload["expires_at"],
        },
    )
    return _created(record, {"id": record["id"], "status": record["status"], "upload": upload})


def _visible_record(path_id: str) -> dict[str, Any]:
    """The caller's image; 404 for an unknown id, someone else's image and a deleted one alike."""
    subject = _subject()
    image_id = api.parse_image_id(path_id)
    record = records.get(aws.table(settings().table_name), image_id)
    if record is None or not api.visible_to(record, subject) or record.get("status") == "deleted":
        raise api.not_found(f"no image with id {image_id}")
    return record


@app.get("/images/<image_id>")
def get_image(image_id: str) -> Response:
    cfg = settings()
    record = _visible_record(image_id)
    s3 = aws.client("s3")
    hidden = (cfg.uploads_bucket, cfg.resized_bucket, cfg.table_name)
    urls = cdn.rendition_urls(s3, cfg.resized_bucket, cfg.cdn_base_url, cfg.rendition_url_expiry_seconds)
    view = api.image_view(record, urls, hidden)
    return json_response(200, view)


@app.delete("/images/<image_id>")
def delete_image(image_id: str) -> Response:
    cfg = settings()
    record = _visible_record(image_id)
    api.check_deletable(record)
    versions = uploads.delete_original(aws.client("s3"), aws.table(cfg.table_name), cfg, record)
    logger.info("image deleted", extra={"image_id": record["id"], "versions": versions})
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


def _page_response(body: str, content_type: str) -> Response:
    cfg = settings()
    images, uploads_origin = upload_page.bucket_origins(aws.client("s3"), cfg)
    csp = upload_page.content_security_policy([images], [uploads_origin])
    return Response(200, content_type, body, upload_page.security_headers(csp))


@app.get("/")
def get_page() -> Response:
    return _page_response(upload_page.read_static(upload_page.PAGE), upload_page.HTML)


@app.get("/assets/<name>")
def get_asset(name: str) -> Response:
    found = upload_page.asset(name)
    if found is None:
        raise api.not_found(f"no asset named {name[:64]!r}")
    return _page_response(*found)


@app.get("/limits")
def get_limits() -> Response:
    return json_response(200, upload_page.limits_view(settings()))


@app.exception_handler(api.ApiError)
def on_api_error(exc: api.ApiError) -> Response:
    logger.info("request refused", extra={"status": exc.status, "code": exc.code})
    return json_response(exc.status, exc.body())


@app.not_found
def on_no_route(exc: NotFoundError) -> Response:
    event = app.current_event
    logger.info("no route", extra={"method": event.http_method, "path": event.path})
    return json_response(404, api.error_body("not_found", "no such route"))


@app.exception_handler(Exception)
def on_unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return json_response(500, api.error_body("internal", "internal error"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        settings()
    except Exception:
        logger.exception("invalid configuration")
        raise
    return app.resolve(event, context)
