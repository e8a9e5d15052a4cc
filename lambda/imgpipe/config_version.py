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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
        "event_bus_name",
        "event_source",
        "rendition_url_expiry_seconds",
    }
)
LENGTH = 12  # hex digits: 48 bits, no collision in any realistic history of one deployment's configs


def output_settings(config: ResizeConfig) -> dict[str, Any]:
    """The settings that shape the renditions, as plain JSON-able values."""
    settings = dataclasses.asdict(config)
    return {name: value for name, value in settings.items() if name not in NOT_OUTPUT}


def version(config: ResizeConfig) -> str:
    """The version of ``config``: equal configs give equal versions, in any process and on any machine."""
    canonical = json.dumps(output_settings(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:LENGTH]
