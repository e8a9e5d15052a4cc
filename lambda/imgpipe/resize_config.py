"""The resize function's settings, read once at cold start from its environment.

Every value is validated here, through the one environment reader
(``imgpipe.settings``); a bad one raises ``ConfigError`` naming the variable
and the value, so a misconfigured deployment fails loudly on its first
invocation instead of quietly making wrong images. Empty strings count as unset
(Terraform passes ``""`` for optional values). Each numeric setting's default
and bounds are declared once, below (the watermark's in
``imgpipe.watermark_settings``, which needs no Pillow).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe import cdn, settings
from imgpipe import watermark_settings as wm
from imgpipe.errors import ConfigError
from imgpipe.renditions import Rendition, load_renditions
from imgpipe.settings import Integer

MAX_PIXELS = Integer("MAX_PIXELS", 100_000_000, 1)
MAX_SOURCE_BYTES = Integer("MAX_SOURCE_BYTES", 104_857_600, 1)
# AWS_LAMBDA_FUNCTION_MEMORY_SIZE: Lambda sets it from the function's MemorySize (128..10240 MB).
MEMORY_MB = Integer("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1536, 128, 10240)
# The queue's redrive maxReceiveCount (SQS allows 1..1000). Read as optional: unset means
# unknown, and the default is only Terraform's (resize_max_receive_count).
MAX_RECEIVE_COUNT = Integer("MAX_RECEIVE_COUNT", 5, 1, 1000)
# libavif's speed: 0 slowest/smallest .. 10 fastest (docs/formats.md).
AVIF_SPEED = Integer("AVIF_SPEED", 8, 0, 10)
# Frames x width x height an animation may keep.
MAX_ANIMATION_PIXELS = Integer("MAX_ANIMATION_PIXELS", 50_000_000, 0)
# The presigned rendition URLs in completion events (one declaration for both functions).
RENDITION_URL_EXPIRY_SECONDS = cdn.RENDITION_URL_EXPIRY_SECONDS
DEFAULT_BACKGROUND = (255, 255, 255)
DEFAULT_EVENT_SOURCE = "imgpipe"
_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


@dataclass(frozen=True)
class ResizeConfig:
    resized_bucket: str
    uploads_bucket: str | None
    table_name: str | None
    renditions: tuple[Rendition, ...]
    max_pixels: int = MAX_PIXELS.default
    max_source_bytes: int = MAX_SOURCE_BYTES.default
    background: tuple[int, int, int] = DEFAULT_BACKGROUND
    watermark_text: str | None = None
    watermark_key: str | None = None
    watermark_position: str = wm.DEFAULT_POSITION
    watermark_opacity: float = wm.OPACITY.default
    watermark_margin: float = wm.MARGIN.default
    watermark_scale: float = wm.SCALE.default
    watermark_min_size: int = wm.MIN_SIZE.default
    memory_mb: int = MEMORY_MB.default
    max_receive_count: int | None = None  # None: unknown
    event_bus_name: str | None = None  # completion events' bus (docs/events.md); None: no events
    event_source: str = DEFAULT_EVENT_SOURCE
    rendition_url_expiry_seconds: int = RENDITION_URL_EXPIRY_SECONDS.default
    cdn_base_url: str = ""  # rendition URLs in completion events are the CDN's when set (docs/cdn.md)
    avif_speed: int = AVIF_SPEED.default
    max_animation_pixels: int = MAX_ANIMATION_PIXELS.default

    @property
    def watermark_enabled(self) -> bool:
        return bool(self.watermark_text or self.watermark_key)


def parse_colour(name: str, raw: str) -> tuple[int, int, int]:
    """``#rrggbb`` or ``#rgb`` (the ``#`` optional) to an RGB tuple."""
    match = _HEX_COLOUR.match(raw.strip())
    if not match:
        raise ConfigError(f"{name}: {raw!r} is not a colour like #ffffff")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def from_env(env: Mapping[str, str] | None = None) -> ResizeConfig:
    """Read and validate the settings (``os.environ`` by default)."""
    env = os.environ if env is None else env
    resized = settings.required(env, "RESIZED_BUCKET")
    uploads = settings.text(env, "UPLOADS_BUCKET")
    renditions = load_renditions(env.get("RENDITIONS"))
    background_raw = settings.text(env, "JPEG_BACKGROUND")
    background = parse_colour("JPEG_BACKGROUND", background_raw) if background_raw else DEFAULT_BACKGROUND
    position = settings.choice(env, "WATERMARK_POSITION", wm.DEFAULT_POSITION, wm.POSITIONS)
    text = env.get("WATERMARK_TEXT") or None
    if text is not None and not text.strip():
        text = None
    key = settings.text(env, "WATERMARK_KEY")
    if text and key:
        raise ConfigError(
            f"WATERMARK_TEXT ({text!r}) and WATERMARK_KEY ({key!r}) are both set; choose one watermark"
        )
    if key and uploads is None:
        raise ConfigError(f"WATERMARK_KEY: {key!r} needs UPLOADS_BUCKET, which is not set")
    return ResizeConfig(
        resized_bucket=resized,
        uploads_bucket=uploads,
        table_name=settings.text(env, "TABLE_NAME"),
        renditions=renditions,
        max_pixels=MAX_PIXELS.read(env),
        max_source_bytes=MAX_SOURCE_BYTES.read(env),
        background=background,
        watermark_text=text,
        watermark_key=key,
        watermark_position=position,
        watermark_opacity=wm.OPACITY.read(env),
        watermark_margin=wm.MARGIN.read(env),
        watermark_scale=wm.SCALE.read(env),
        watermark_min_size=wm.MIN_SIZE.read(env),
        memory_mb=MEMORY_MB.read(env),
        max_receive_count=MAX_RECEIVE_COUNT.read_optional(env),
        avif_speed=AVIF_SPEED.read(env),
        max_animation_pixels=MAX_ANIMATION_PIXELS.read(env),
        event_bus_name=settings.text(env, "EVENT_BUS_NAME"),
        event_source=_event_source(env),
        rendition_url_expiry_seconds=RENDITION_URL_EXPIRY_SECONDS.read(env),
        cdn_base_url=cdn.base_url(env),
    )


def _event_source(env: Mapping[str, str]) -> str:
    """EventBridge's rule for an event's source: 1..256 characters, not starting with ``aws.``."""
    source = settings.text(env, "EVENT_SOURCE") or DEFAULT_EVENT_SOURCE
    if len(source) > 256 or source.startswith("aws."):
        raise ConfigError(f"EVENT_SOURCE: {source!r} must be 1..256 characters and not start with 'aws.'")
    return source
