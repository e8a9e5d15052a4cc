"""The rendition-config version (lambda/imgpipe/config_version.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from imgpipe import config_version
from imgpipe.resize_config import from_env

BASE = {"RESIZED_BUCKET": "resized", "UPLOADS_BUCKET": "uploads", "TABLE_NAME": "images"}


def test_the_same_configuration_has_the_same_version_in_another_process():
    here = config_version.version(from_env(BASE))
    code = (
        "from imgpipe import config_version; from imgpipe.resize_config import from_env; "
        f"print(config_version.version(from_env({BASE!r})))"
    )
    lambda_dir = Path(__file__).resolve().parents[1] / "lambda"
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=lambda_dir, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == other
    assert len(here) == config_version.LENGTH and int(here, 16) >= 0


def test_a_change_to_what_renditions_look_like_changes_the_version():
    base = config_version.version(from_env(BASE))
    renditions = [{"name": "thumb", "width": 100, "height": 100, "fit": "cover", "formats": ["webp"]}]
    for change in (
        {"RENDITIONS": json.dumps(renditions)},
        {"JPEG_BACKGROUND": "#000000"},
        {"WATERMARK_TEXT": "(c) example"},
        {"WATERMARK_TEXT": "(c) example", "WATERMARK_OPACITY": "0.25"},
    ):
        assert config_version.version(from_env({**BASE, **change})) != base, change


def test_where_things_go_and_what_is_refused_do_not_change_the_version():
    base = config_version.version(from_env(BASE))
    for change in (
        {"RESIZED_BUCKET": "elsewhere"},
        {"TABLE_NAME": "other"},
        {"MAX_PIXELS": "1000"},
        {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"},
        {"MAX_RECEIVE_COUNT": "9"},
    ):
        assert config_version.version(from_env({**BASE, **change})) == base, change


def test_the_exclusion_list_names_only_settings_that_exist():
    """A renamed setting left in NOT_OUTPUT would silently start counting towards the version."""
    fields = {field.name for field in dataclasses.fields(from_env(BASE))}
    assert fields >= config_version.NOT_OUTPUT


def test_settings_added_later_leave_an_unchanged_deployments_version_alone():
    """AVIF_SPEED, MAX_ANIMATION_PIXELS and a rendition's crop came later: at their defaults the
    version is the one the same deployment had before (dabcfc54ebef), so its images stay current."""
    assert config_version.version(from_env(BASE)) == "dabcfc54ebef"
    fields = {field.name for field in dataclasses.fields(from_env(BASE))}
    assert fields >= set(config_version.ADDED_LATER)
    base = config_version.version(from_env(BASE))
    renditions = json.loads(
        (Path(__file__).resolve().parents[1] / "lambda/imgpipe/default_renditions.json").read_text()
    )
    attention = [{**r, "crop": "attention"} if r["fit"] == "cover" else r for r in renditions]
    centre = [{**r, "crop": "centre"} for r in renditions]
    assert config_version.version(from_env({**BASE, "RENDITIONS": json.dumps(centre)})) == base
    for change in (
        {"AVIF_SPEED": "6"},
        {"MAX_ANIMATION_PIXELS": "0"},
        {"RENDITIONS": json.dumps(attention)},
    ):
        assert config_version.version(from_env({**BASE, **change})) != base, change


def test_a_record_shows_the_current_version_only_when_done_by_it_with_every_output():
    config = from_env(BASE)
    current, expected = config_version.version(config), config_version.outputs(config)
    renditions = [{"name": n, "format": f, "key": f"id/tag/{n}.{f}"} for n, f in sorted(expected)]
    done = {"status": "done", "config_version": current, "renditions": renditions}
    assert config_version.shows_current(done, current, expected)
    assert not config_version.shows_current({**done, "config_version": "0" * 12}, current, expected)
    assert not config_version.shows_current({**done, "renditions": renditions[1:]}, current, expected)
    assert not config_version.shows_current({**done, "status": "processing"}, current, expected)
    assert not config_version.shows_current(None, current, expected)
    assert len(expected) == 6  # three sizes, WebP and JPEG each (default_renditions.json)
