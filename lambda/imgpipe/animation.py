"""Animated GIF and WebP sources: their frames, timing and loop, and animated outputs.

Pillow hands out every frame composited onto the canvas (GIF disposal and
WebP blending applied), so each frame is a whole picture that resizes like a
still one. Outputs: WebP renditions are animated WebP, AVIF renditions animated
AVIF, JPEG renditions the first frame. Each frame keeps its duration.

Loop counts: a GIF's NETSCAPE count is the number of repeats after the first
play (Chromium plays ``loop + 1`` cycles; no count at all: one), a WebP's is
the number of plays (0: forever; RFC 9649, the ANIM chunk), so a GIF's count
n becomes n + 1, and no count 1: the WebP plays as often as browsers play the
GIF. Pillow 13 cannot write an AVIF loop count: animated AVIF uses libavif's
default, forever.

What an animation may cost: ``frames x width x height`` of the source at most
``max_animation_pixels`` (``MAX_ANIMATION_PIXELS``), and the rendition frames it
keeps until encoding within the memory budget (``limits.animation_bytes``);
past either, the renditions are made from the first frame (docs/formats.md).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from PIL import Image

ANIMATED_FORMATS = ("gif", "webp")  # sources kept animated
WEBP_MAX_LOOP = 65535


@dataclass(frozen=True)
class Timing:
    """The source's frame durations (ms) and its loop count in WebP terms (plays; 0 = forever)."""

    durations: tuple[int, ...]
    loop: int


def frame_count(im: Image.Image, fmt: str) -> int:
    """Frames of an opened source that stays animated (1 for every other image)."""
    if fmt not in ANIMATED_FORMATS or not getattr(im, "is_animated", False):
        return 1
    return int(getattr(im, "n_frames", 1))


def within_budget(frames: int, width: int, height: int, max_pixels: int) -> bool:
    return frames * width * height <= max_pixels


def webp_loop(info: dict, fmt: str) -> int:
    """The source's loop count as WebP's plays (0 = forever), from its ``info`` when opened."""
    loop = info.get("loop")
    if fmt == "webp":
        return int(loop or 0)
    if loop is None:
        return 1  # a GIF without a loop count plays once
    loop = int(loop)
    return 0 if loop == 0 else min(WEBP_MAX_LOOP, loop + 1)


def duration(info: dict) -> int:
    return max(0, int(info.get("duration") or 0))


def later_frames(im: Image.Image, count: int) -> Iterator[tuple[Image.Image, int]]:
    """Frames 1..count-1 of ``im``, composited, each with its duration (ms)."""
    for index in range(1, count):
        im.seek(index)
        im.load()
        yield im, duration(im.info)


def encode(frames: Sequence[Image.Image], timing: Timing, fmt: str, quality: int, params: dict) -> bytes:
    """An animated WebP or AVIF of ``frames`` (RGB or RGBA, all one size) with ``timing``."""
    mode = "RGBA" if any("A" in f.mode for f in frames) else "RGB"
    frames = [f if f.mode == mode else f.convert(mode) for f in frames]
    buf = io.BytesIO()
    first, rest = frames[0].copy(), frames[1:]
    save = {"save_all": True, "append_images": rest, "duration": list(timing.durations), "quality": quality}
    if fmt == "webp":
        first.save(buf, "WEBP", loop=timing.loop, **save, **params)
    elif fmt == "avif":
        first.save(buf, "AVIF", **save, **params)
    else:
        raise ValueError(f"{fmt!r} cannot be animated")
    return buf.getvalue()
