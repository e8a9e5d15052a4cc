"""The resize function's settings, read once at cold start from its environment.

Every value is validated here; a bad one raises ``ConfigError`` naming the
variable and the value, so a misconfigured deployment fails loudly on its first
invocation instead of quietly making wrong images. Empty strings count as unset
(Terraform passes ``""`` for optional values).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe.errors import ConfigError
from imgpipe.renditions import Rendition, load_renditions
from imgpipe.watermark import POSITIONS

AVIF_SPEED = 8
MAX_ANIMATION_PIXELS = 50_000_000
_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


@dataclass(frozen=True)
class ResizeConfig:
    resized_bucket: str
    uploads_bucket: str | None
    table_name: str | None
    renditions: tuple[Rendition, ...]
    max_pixels: int = 100_000_000
    max_source_bytes: int = 104_857_600
    background: tuple[int, int, int] = (255, 255, 255)
    watermark_text: str | None = None
    watermark_key: str | None = None
    watermark_position: str = "bottom-right"
    watermark_opacity: float = 0.5
    watermark_margin: float = 0.02
    watermark_scale: float = 0.25
    watermark_min_size: int = 300
    memory_mb: int = 1536  # AWS_LAMBDA_FUNCTION_MEMORY_SIZE, which Lambda sets from the function's MemorySize
    max_receive_count: int | None = None  # the queue's redrive maxReceiveCount (None: unknown)
    avif_speed: int = AVIF_SPEED  # libavif's speed: 0 slowest/smallest .. 10 fastest (docs/formats.md)
    max_animation_pixels: int = MAX_ANIMATION_PIXELS  # frames x width x height an animation may keep

    @property
    def watermark_enabled(self) -> bool:
        return bool(self.watermark_text or self.watermark_key)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
        if not value.is_integer():
            raise ValueError
        number = int(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{name}: {raw!r} is not an integer") from None
    if number < lo or (hi is not None and number > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name}: {raw!r} is out of range ({bounds})")
    return number


def _optional_int(env: Mapping[str, str], name: str, lo: int, hi: int) -> int | None:
    return None if _get(env, name) is None else _int(env, name, lo, lo, hi)


def _float(
    env: Mapping[str, str], name: str, default: float, lo: float, hi: float, *, lo_open=False, hi_open=False
) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    outside = value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi)
    if not math.isfinite(value) or outside:
        bounds = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{name}: {raw!r} is out of range ({bounds})")
    return value


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
    resized = _get(env, "RESIZED_BUCKET")
    if resized is None:
        raise ConfigError("RESIZED_BUCKET: required, not set")
    uploads = _get(env, "UPLOADS_BUCKET")
    renditions = load_renditions(env.get("RENDITIONS"))
    background_raw = _get(env, "JPEG_BACKGROUND")
    background = parse_colour("JPEG_BACKGROUND", background_raw) if background_raw else (255, 255, 255)
    position = _get(env, "WATERMARK_POSITION") or "bottom-right"
    if position not in POSITIONS:
        raise ConfigError(f"WATERMARK_POSITION: {position!r} is not one of {list(POSITIONS)}")
    text = env.get("WATERMARK_TEXT") or None
    if text is not None and not text.strip():
        text = None
    key = _get(env, "WATERMARK_KEY")
    if text and key:
        raise ConfigError(
            f"WATERMARK_TEXT ({text!r}) and WATERMARK_KEY ({key!r}) are both set; choose one watermark"
        )
    if key and uploads is None:
        raise ConfigError(f"WATERMARK_KEY: {key!r} needs UPLOADS_BUCKET, which is not set")
    return ResizeConfig(
        resized_bucket=resized,
        uploads_bucket=uploads,
        table_name=_get(env, "TABLE_NAME"),
        renditions=renditions,
        max_pixels=_int(env, "MAX_PIXELS", 100_000_000, 1),
        max_source_bytes=_int(env, "MAX_SOURCE_BYTES", 104_857_600, 1),
        background=background,
        watermark_text=text,
        watermark_key=key,
        watermark_position=position,
        watermark_opacity=_float(env, "WATERMARK_OPACITY", 0.5, 0.0, 1.0),
        watermark_margin=_float(env, "WATERMARK_MARGIN", 0.02, 0.0, 0.5, hi_open=True),
        watermark_scale=_float(env, "WATERMARK_SCALE", 0.25, 0.0, 1.0, lo_open=True),
        watermark_min_size=_int(env, "WATERMARK_MIN_SIZE", 300, 0),
        memory_mb=_int(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1536, 128, 10240),
        max_receive_count=_optional_int(env, "MAX_RECEIVE_COUNT", 1, 1000),
        avif_speed=_int(env, "AVIF_SPEED", AVIF_SPEED, 0, 10),
        max_animation_pixels=_int(env, "MAX_ANIMATION_PIXELS", MAX_ANIMATION_PIXELS, 0),
    )
