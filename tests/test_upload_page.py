"""The upload page's routes, driven through the Lambda handler with moto.

``GET /`` and ``GET /assets/{name}`` serve the files under ``lambda/static``
with a Content-Security-Policy that allows no inline code and nothing from
elsewhere but the buckets; ``GET /limits`` tells the page the API's own
limits. The browser itself is exercised in tests/test_browser.py.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from conftest import RESIZED, UPLOADS, load_event
from imgpipe import upload_page
from imgpipe.api import ALLOWED_TYPES


@pytest.fixture
def get(api, lambda_context):
    """GET a raw path through the handler, as API Gateway's page routes send it."""

    def invoke(route_key: str, path: str, params: dict | None = None) -> dict:
        event = copy.deepcopy(load_event("http_get_image.json"))
        event["routeKey"] = event["requestContext"]["routeKey"] = route_key
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event.pop("pathParameters")
        if params:
            event["pathParameters"] = params
        return api.handler(event, lambda_context)

    return invoke


def csp_of(response: dict) -> dict[str, list[str]]:
    policy = response["headers"]["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


def test_the_page_is_html_with_a_strict_csp_naming_the_buckets_origins(get):
    response = get("GET /", "/")
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>Upload images</h1>" in response["body"]
    csp = csp_of(response)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'none'"]
    # Renditions are presigned GETs on the resized bucket; uploads POST to the uploads bucket.
    assert csp["img-src"] == ["'self'", "blob:", f"https://{RESIZED}.s3.amazonaws.com"]
    assert csp["connect-src"] == ["'self'", f"https://{UPLOADS}.s3.amazonaws.com"]
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    assert response["headers"]["Referrer-Policy"] == "no-referrer"


def test_with_a_cdn_the_page_may_show_images_from_the_cdn_and_not_the_bucket(get, api, monkeypatch):
    """GET /images/{id} returns CDN URLs when CDN_BASE_URL is set (docs/cdn.md): the CSP's img-src
    must name the CDN's origin, or the browser would refuse every rendition."""
    monkeypatch.setenv("CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net")
    api.settings.cache_clear()
    csp = csp_of(get("GET /", "/"))
    assert csp["img-src"] == ["'self'", "blob:", "https://d111111abcdef8.cloudfront.net"]
    assert csp["connect-src"] == ["'self'", f"https://{UPLOADS}.s3.amazonaws.com"]


def test_the_page_has_no_inline_code_and_loads_only_its_own_assets(get):
    """With script-src 'self' and style-src 'self' a browser would refuse inline code: there is none."""
    body = get("GET /", "/")["body"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", body)
    assert "<style" not in body and " style=" not in body and not re.search(r"\son[a-z]+=", body)
    assert re.findall(r'(?:src|href)="([^"]+)"', body) == [
        "assets/icon.svg",
        "assets/upload.css",
        "assets/upload.js",
    ]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("upload.js", "text/javascript; charset=utf-8"),
        ("upload.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_with_their_content_type_and_the_csp(get, name, content_type):
    response = get("GET /assets/{name}", f"/assets/{name}", {"name": name})
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == content_type
    assert response["body"] == (upload_page.STATIC_DIR / name).read_text()
    assert csp_of(response)["default-src"] == ["'none'"]


@pytest.mark.parametrize(
    "name",
    ["index.js", "..", "../upload_handler.py", "..%2Fupload_handler.py", "upload.js%00", "%2e%2e"],
)
def test_an_unknown_asset_is_a_404_in_the_apis_error_shape(get, name):
    """Names are looked up in a fixed table, never joined to a path: no traversal."""
    response = get("GET /assets/{name}", f"/assets/{name}", {"name": name})
    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert body["error"]["code"] == "not_found"
    assert "import" not in response["body"]


def test_limits_tell_the_page_the_apis_own_limits_and_formats(get, monkeypatch, api):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000000")
    monkeypatch.setenv("MAX_PRESIGNED_BYTES", "2000000")
    monkeypatch.setenv("API_AUTH", "jwt")
    api.settings.cache_clear()
    response = get("GET /limits", "/limits")
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["max_upload_bytes"] == 1_000_000
    assert body["max_presigned_bytes"] == 2_000_000
    assert body["accepted_types"] == list(ALLOWED_TYPES)
    assert {".jpg", ".jpeg", ".png", ".heic", ".avif"} <= set(body["accepted_extensions"])
    assert body["auth"] == "jwt"


def test_an_unknown_api_auth_fails_loudly_with_its_name():
    from imgpipe.errors import ConfigError
    from imgpipe.upload_config import UploadConfig

    env = {"UPLOADS_BUCKET": "u", "RESIZED_BUCKET": "r", "TABLE_NAME": "t", "API_AUTH": "cognito"}
    with pytest.raises(ConfigError, match="API_AUTH: 'cognito' is not one of jwt, open"):
        UploadConfig.from_env(env)
    assert UploadConfig.from_env({**env, "API_AUTH": ""}).api_auth == "open"
