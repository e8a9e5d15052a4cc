"""The upload function's settings: defaults, and errors that name the variable and value."""

from __future__ import annotations

import pytest

from imgpipe.errors import ConfigError
from imgpipe.upload_config import UploadConfig

REQUIRED = {"UPLOADS_BUCKET": "up-bucket", "RESIZED_BUCKET": "rs-bucket", "TABLE_NAME": "images"}


def test_defaults_match_the_documented_contract():
    cfg = UploadConfig.from_env(REQUIRED)
    assert cfg == UploadConfig(
        uploads_bucket="up-bucket",
        resized_bucket="rs-bucket",
        table_name="images",
        max_upload_bytes=4194304,
        max_presigned_bytes=52428800,
        presign_post_expiry_seconds=900,
        rendition_url_expiry_seconds=3600,
        cdn_base_url="",
    )


def test_every_setting_is_read_from_its_variable():
    env = {
        **REQUIRED,
        "MAX_UPLOAD_BYTES": "1000",
        "MAX_PRESIGNED_BYTES": "2000",
        "PRESIGN_POST_EXPIRY_SECONDS": "30",
        "RENDITION_URL_EXPIRY_SECONDS": " 60 ",
    }
    cfg = UploadConfig.from_env(env)
    assert (cfg.max_upload_bytes, cfg.max_presigned_bytes) == (1000, 2000)
    assert (cfg.presign_post_expiry_seconds, cfg.rendition_url_expiry_seconds) == (30, 60)


def test_empty_optional_variables_mean_the_default():
    cfg = UploadConfig.from_env({**REQUIRED, "MAX_UPLOAD_BYTES": "", "RENDITION_URL_EXPIRY_SECONDS": " "})
    assert cfg.max_upload_bytes == 4194304
    assert cfg.rendition_url_expiry_seconds == 3600


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_required_variable_is_named(name, value):
    env = dict(REQUIRED)
    if value is None:
        del env[name]
    else:
        env[name] = value
    with pytest.raises(ConfigError, match=rf"^{name}: required"):
        UploadConfig.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_UPLOAD_BYTES", "4MiB", r"MAX_UPLOAD_BYTES: '4MiB' is not an integer"),
        ("MAX_UPLOAD_BYTES", "0", r"MAX_UPLOAD_BYTES: '0' is out of range \(1\.\.4603904\)"),
        # Larger images do not fit a 6 MiB Lambda invoke once base64-encoded in a multipart body.
        ("MAX_UPLOAD_BYTES", "4603905", r"MAX_UPLOAD_BYTES: '4603905' is out of range"),
        ("MAX_UPLOAD_BYTES", "4718592", r"MAX_UPLOAD_BYTES: '4718592' is out of range"),
        ("MAX_PRESIGNED_BYTES", "-1", r"MAX_PRESIGNED_BYTES: '-1' is out of range \(1\.\."),
        ("MAX_PRESIGNED_BYTES", str(5 * 1024**3 + 1), r"MAX_PRESIGNED_BYTES: '5368709121' is out of range"),
        ("PRESIGN_POST_EXPIRY_SECONDS", "1.5", r"PRESIGN_POST_EXPIRY_SECONDS: '1\.5' is not an integer"),
        # Signed with the function's temporary role credentials: S3 refuses the
        # URL once they expire, so no lifetime beyond one hour is promised.
        (
            "PRESIGN_POST_EXPIRY_SECONDS",
            "3601",
            r"PRESIGN_POST_EXPIRY_SECONDS: '3601' is out of range \(1\.\.3600\)",
        ),
        ("PRESIGN_POST_EXPIRY_SECONDS", "604800", r"PRESIGN_POST_EXPIRY_SECONDS: '604800' is out of range"),
        ("RENDITION_URL_EXPIRY_SECONDS", "0", r"RENDITION_URL_EXPIRY_SECONDS: '0' is out of range"),
        (
            "RENDITION_URL_EXPIRY_SECONDS",
            "86400",
            r"RENDITION_URL_EXPIRY_SECONDS: '86400' is out of range \(1\.\.3600\)",
        ),
    ],
)
def test_bad_values_are_refused_with_name_and_value(name, value, message):
    with pytest.raises(ConfigError, match=message):
        UploadConfig.from_env({**REQUIRED, name: value})


def test_limits_at_their_aws_bounds_are_accepted():
    cfg = UploadConfig.from_env(
        {
            **REQUIRED,
            "MAX_UPLOAD_BYTES": "4603904",
            "MAX_PRESIGNED_BYTES": str(5 * 1024**3),
            "PRESIGN_POST_EXPIRY_SECONDS": "3600",
            "RENDITION_URL_EXPIRY_SECONDS": "3600",
        }
    )
    assert cfg.max_upload_bytes == 4603904
    assert cfg.presign_post_expiry_seconds == cfg.rendition_url_expiry_seconds == 3600
    assert cfg.max_presigned_bytes == 5 * 1024**3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://d111111abcdef8.cloudfront.net", "https://d111111abcdef8.cloudfront.net"),
        ("https://img.example.com/", "https://img.example.com"),
        ("http://127.0.0.1:8080/cdn", "http://127.0.0.1:8080/cdn"),
        ("", ""),
    ],
)
def test_cdn_base_url_is_kept_without_its_trailing_slash(raw, expected):
    assert UploadConfig.from_env({**REQUIRED, "CDN_BASE_URL": raw}).cdn_base_url == expected


@pytest.mark.parametrize(
    "raw",
    ["d111111abcdef8.cloudfront.net", "ftp://cdn.example.com", "https://cdn.example.com/?x=1", "https://"],
)
def test_a_cdn_base_url_that_is_no_base_url_names_the_variable(raw):
    with pytest.raises(ConfigError, match="CDN_BASE_URL"):
        UploadConfig.from_env({**REQUIRED, "CDN_BASE_URL": raw})
