"""Key layout, ids and filename sanitising."""

from __future__ import annotations

import base64
import hashlib

import pytest

from imgpipe import keys
from imgpipe.detect import sniff

SECRET = bytes(range(32))


def test_api_key_maps_back_to_its_id():
    image_id = keys.new_id()
    assert keys.is_valid_id(image_id)
    assert keys.id_for_key(keys.original_key(image_id, "cat.jpg"), SECRET) == image_id


@pytest.mark.parametrize(
    "key", ["photos/2024/My Cat+1.jpg", "ünïcödé/ß 100%.png", "a", "originals/short/x.jpg"]
)
def test_any_other_key_gets_a_stable_valid_id(key):
    first = keys.id_for_key(key, SECRET)
    assert keys.is_valid_id(first)
    assert keys.id_for_key(key, SECRET) == first
    assert keys.id_for_key(key + "x", SECRET) != first


def test_a_direct_upload_id_is_not_the_plain_hash_of_its_key():
    # Before: base64url(sha256(key))[:22], which anyone who guesses a key computes.
    key = "photos/2026/cat.jpg"
    plain = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode()[:22]
    assert keys.id_for_key(key, SECRET) != plain
    assert keys.id_for_key(key, b"") != plain


def test_two_secrets_give_one_key_two_ids():
    key = "photos/2026/cat.jpg"
    assert keys.id_for_key(key, SECRET) != keys.id_for_key(key, bytes(32))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd.jpg", "passwd.jpg"),
        ("C:\\Users\\me\\cat.png", "cat.png"),
        ("a\x00b\x1fc.jpg", "abc.jpg"),
        ("..", "image"),
        ("", "image"),
        (None, "image"),
        ("my photo (1).jpg", "my photo _1_.jpg"),
        ("x..y.jpg", "x.y.jpg"),
    ],
)
def test_sanitize_filename(name, expected):
    got = keys.sanitize_filename(name)
    assert got == expected
    assert "/" not in got and ".." not in got


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00", "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a\x01\x00", "gif"),
        (b"II*\x00\x08\x00", "tiff"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "avif"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isommp41", None),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff_by_magic_bytes(head, fmt):
    assert sniff(head) == fmt


def test_a_tag_changes_with_the_source_version_and_with_the_config_version():
    """Rendition keys are served as immutable (docs/cdn.md): new bytes always come under a new tag."""
    tags = {keys.version_tag(v, c) for v in ("v1", "v2") for c in ("0a1b2c3d4e5f", "0a1b2c3d4e60")}
    assert len(tags) == 4
    assert keys.version_tag("v1", "0a1b2c3d4e5f") == keys.version_tag("v1", "0a1b2c3d4e5f")
    for tag in tags:
        assert len(tag) == keys.TAG_LENGTH and all(c.isalnum() or c in "-_" for c in tag)
    digest = hashlib.sha256(b"v1/0a1b2c3d4e5f").digest()
    assert keys.version_tag("v1", "0a1b2c3d4e5f") == base64.urlsafe_b64encode(digest).decode()[:12]
