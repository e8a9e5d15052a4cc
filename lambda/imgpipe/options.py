"""How the engine renders: its options, read by every stage (``EngineOptions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from imgpipe import limits
from imgpipe.resize_config import AVIF_SPEED, MAX_ANIMATION_PIXELS, MAX_PIXELS


class Overlay(Protocol):
    """What is laid over each finished rendition (``imgpipe.watermark.Watermark`` is one)."""

    def apply(self, im: Image.Image) -> Image.Image: ...


@dataclass(frozen=True)
class EngineOptions:
    """How to render. ``watermark`` is an ``Overlay`` (a ``imgpipe.watermark.Watermark``) or None."""

    max_pixels: int = MAX_PIXELS.default
    background: tuple[int, int, int] = (255, 255, 255)
    watermark: Overlay | None = field(default=None, compare=False)
    threads: int = 0  # threads for encoding, strip resizing, PNG inflating; 0 = one per CPU, at most 4
    memory_budget: int | None = None  # bytes a decode may need (limits.memory_budget); None: unchecked
    max_scans: int = limits.MAX_JPEG_SCANS
    avif_speed: int = AVIF_SPEED.default  # libavif: 0 slowest and smallest .. 10 fastest
    max_animation_pixels: int = MAX_ANIMATION_PIXELS.default  # frames x width x height kept animated
