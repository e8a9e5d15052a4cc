"""Rendition configuration: defaults and cold-start validation."""

from __future__ import annotations

import json

import pytest

from imgpipe.errors import ConfigError
from imgpipe.renditions import DEFAULTS_PATH, Rendition, load_renditions


def test_defaults_are_the_documented_set():
    got = load_renditions(None)
    assert [(r.name, r.width, r.height, r.fit, r.formats) for r in got] == [
        ("thumb", 200, 200, "cover", ("webp", "jpeg")),
        ("medium", 800, 800, "contain", ("webp", "jpeg")),
        ("large", 1600, 1600, "contain", ("webp", "jpeg")),
    ]
    assert load_renditions("  ") == got


def test_defaults_file_is_the_single_source():
    raw = DEFAULTS_PATH.read_text()
    assert load_renditions(raw) == load_renditions(None)


def test_custom_list_is_parsed():
    raw = json.dumps([{"name": "hero", "width": 2400, "height": 1200, "fit": "cover", "formats": ["avif"]}])
    assert load_renditions(raw) == (Rendition("hero", 2400, 1200, "cover", ("avif",), 82),)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"width": 10, "height": 10}]', "missing required field 'name'"),
        ('[{"name": "a", "width": 0, "height": 10}]', "RENDITIONS[0].width: 0"),
        ('[{"name": "a", "width": 10, "height": "10"}]', "RENDITIONS[0].height: '10'"),
        ('[{"name": "a", "width": 10, "height": 10, "fit": "fill"}]', "RENDITIONS[0].fit: 'fill'"),
        ('[{"name": "a", "width": 10, "height": 10, "formats": ["gif"]}]', "RENDITIONS[0].formats: 'gif'"),
        ('[{"name": "a", "width": 10, "height": 10, "quality": 101}]', "RENDITIONS[0].quality: 101"),
        ('[{"name": "A B", "width": 10, "height": 10}]', "RENDITIONS[0].name: 'A B'"),
        ('[{"name": "a", "width": 1, "height": 1}, {"name": "a", "width": 2, "height": 2}]', "used twice"),
        ('[{"name": "a", "width": 1, "height": 1, "colour": "red"}]', "unknown field"),
    ],
)
def test_bad_configuration_names_field_and_value(raw, needle):
    with pytest.raises(ConfigError, match=None) as err:
        load_renditions(raw)
    assert needle in str(err.value)
