"""The rendition-config version: a short, stable hash of what shapes the renditions.

Every image record and every rendition carries the version that produced it,
so a reprocess can tell stale images from current ones and a replayed message
for an image already rendered with this configuration costs a read, not a
render. Every setting of ``ResizeConfig`` counts, except the ones listed in
``NOT_OUTPUT``, which decide where things go or whether work is refused, not
what a rendition looks like; a setting added later therefore changes the
version unless it is deliberately listed here.

The watermark image is named by its key, not by its content: to change the
watermark, upload the new image under a new key (``WATERMARK_KEY``), which
changes the version.

``shows_current`` is the resize function's skip rule (docs/config-version.md):
a record of a done version that carries this version and lists every
configured output needs no work, and a replayed message for it ends ``current``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from imgpipe.resize_config import ResizeConfig

NOT_OUTPUT = frozenset(
    {
        "resized_bucket",
        "uploads_bucket",
        "table_name",
        "max_pixels",
        "max_source_bytes",
        "memory_mb",
        "max_receive_count",
    }
)
# Settings added after versions were first issued, left out while at these values, so a deployment
# that does not use them keeps its version (and its images stay current) across the upgrade.
ADDED_LATER = {"avif_speed": 8, "max_animation_pixels": 50_000_000}
RENDITION_ADDED_LATER = {"crop": "centre"}
CURRENT = "current"  # outcome: the record already shows this version, complete: nothing to do
KEPT = "kept"  # outcome: a re-render of a done version failed; the record keeps its earlier renditions
LENGTH = 12  # hex digits: 48 bits, no collision in any realistic history of one deployment's configs


def output_settings(config: ResizeConfig) -> dict[str, Any]:
    """The settings that shape the renditions, as plain JSON-able values."""
    settings = dataclasses.asdict(config)
    renditions = settings["renditions"]
    settings["renditions"] = [_without_later_defaults(r, RENDITION_ADDED_LATER) for r in renditions]
    settings = _without_later_defaults(settings, ADDED_LATER)
    return {name: value for name, value in settings.items() if name not in NOT_OUTPUT}


def _without_later_defaults(settings: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in settings.items() if name not in later or later[name] != value}


def version(config: ResizeConfig) -> str:
    """The version of ``config``: equal configs give equal versions, in any process and on any machine."""
    canonical = json.dumps(output_settings(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:LENGTH]


def outputs(config: ResizeConfig) -> frozenset[tuple[str, str]]:
    """Every (rendition name, format) ``config`` makes of an image."""
    return frozenset((r.name, fmt) for r in config.renditions for fmt in r.formats)


def shows_current(
    record: Mapping[str, Any] | None, current: str, expected: frozenset[tuple[str, str]]
) -> bool:
    """True when ``record`` is done under version ``current`` and lists every ``expected`` output."""
    if not record or record.get("status") != "done" or record.get("config_version") != current:
        return False
    listed = {(r.get("name"), r.get("format")) for r in record.get("renditions") or [] if r.get("key")}
    return expected <= listed
