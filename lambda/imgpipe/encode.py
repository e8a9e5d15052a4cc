"""Encoding: one rendition image, or its frames, to JPEG, WebP or AVIF bytes.

No EXIF or XMP is ever written; the colour profile goes along only when it
describes the pixels being written (the engine hands in the compact sRGB
profile of ``icc``, never the source's bytes). Safe to call from several
threads at once (Pillow releases the GIL while encoding).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from imgpipe import animation
from imgpipe.resize_config import AVIF_SPEED as AVIF_SPEED_SETTING

# Encoder settings, measured for time and size on photos at 1600 px: WebP method 2
# is about 2x faster than the default 4 for 3-6 % more bytes. AVIF's speed is a
# setting (AVIF_SPEED, EngineOptions.avif_speed; measured in docs/formats.md).
JPEG_PARAMS = {"optimize": True, "progressive": False}  # progressive: see the next line
# From about 100x100 up, JPEGs are progressive: usually 1-4 % smaller for photos,
# and they show coarse-to-fine while loading; tiny ones stay baseline.
JPEG_PROGRESSIVE_MIN_PIXELS = 10_000
WEBP_METHOD = 2
AVIF_SPEED = AVIF_SPEED_SETTING.default  # declared once, with its bounds, in resize_config
# Pillow plugin module per output format: only the one needed is imported.
_SAVE_PLUGINS = {"jpeg": "JpegImagePlugin", "webp": "WebPImagePlugin", "avif": "AvifImagePlugin"}


def _icc_for(icc: bytes | None, mode: str) -> bytes | None:
    """The source profile, only when it describes the pixels being written."""
    if not icc or len(icc) < 20:
        return None
    space = icc[16:20]
    if mode in ("RGB", "RGBA"):
        return icc if space == b"RGB " else None
    if mode in ("L", "LA"):
        return icc if space == b"GRAY" else None
    return None


def _flatten(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if im.mode == "LA":
        im = im.convert("RGBA")
    if im.mode != "RGBA":
        return im
    base = Image.new("RGB", im.size, background)
    base.paste(im, mask=im.getchannel("A"))
    return base


def _opaque(im: Image.Image) -> Image.Image:
    """Drop an alpha channel that is fully opaque (smaller, and JPEG needs none)."""
    if im.mode in ("RGBA", "LA") and im.getchannel("A").getextrema() == (255, 255):
        return im.convert(im.mode[:-1])
    return im


def encode(
    im: Image.Image,
    fmt: str,
    quality: int,
    background: tuple[int, int, int] = (255, 255, 255),
    icc: bytes | None = None,
    avif_speed: int = AVIF_SPEED,
) -> bytes:
    """One rendition image to ``fmt`` bytes: no EXIF/XMP, the ICC profile when it fits.

    Safe to call from several threads on the same image: it saves a copy, since
    ``Image.save`` stores its parameters on the image object.
    """
    __import__(f"PIL.{_SAVE_PLUGINS[fmt]}")
    copy = _opaque(im)
    im = copy if copy is not im else im.copy()
    buf = io.BytesIO()
    if fmt == "jpeg":
        im = _flatten(im, background)
        params = dict(JPEG_PARAMS)
        if im.size[0] * im.size[1] >= JPEG_PROGRESSIVE_MIN_PIXELS:
            params["progressive"] = True
        profile = _icc_for(icc, im.mode)
        im.save(buf, "JPEG", quality=quality, icc_profile=profile, exif=b"", **params)
    elif fmt == "webp":
        if im.mode not in ("RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.mode else "RGB")
        profile = _icc_for(icc, im.mode) or ""
        im.save(buf, "WEBP", quality=quality, method=WEBP_METHOD, icc_profile=profile, exif=b"", xmp=b"")
    elif fmt == "avif":
        if im.mode not in ("RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.mode else "RGB")
        profile = _icc_for(icc, im.mode)
        params = {"icc_profile": profile} if profile else {}
        im.save(buf, "AVIF", quality=quality, speed=avif_speed, exif=b"", xmp=b"", **params)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buf.getvalue()


def encode_animation(
    frames: Sequence[Image.Image],
    timing: animation.Timing,
    fmt: str,
    quality: int,
    icc: bytes | None = None,
    avif_speed: int = AVIF_SPEED,
) -> bytes:
    """Rendition frames to an animated ``fmt`` (webp or avif): no EXIF/XMP, the ICC profile when it fits."""
    __import__(f"PIL.{_SAVE_PLUGINS[fmt]}")
    frames = [_opaque(f) for f in frames]
    mode = "RGBA" if any("A" in f.mode for f in frames) else "RGB"
    profile = _icc_for(icc, mode)
    if fmt == "webp":
        params: dict = {"method": WEBP_METHOD, "icc_profile": profile or "", "exif": b"", "xmp": b""}
    else:
        params = {"speed": avif_speed, "exif": b"", "xmp": b""}
        if profile:
            params["icc_profile"] = profile
    return animation.encode(frames, timing, fmt, quality, params)
