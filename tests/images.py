"""Builders of real test images, shared by the test suite and the benchmarks.

Every builder returns encoded bytes made by Pillow (or pillow-heif), so tests
exercise the same decoders the Lambda uses. Import as ``tests.images``.
"""

from __future__ import annotations

import functools
import io
import math
import random
import struct
import zlib

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

# Quadrant colours of the orientation pattern, as seen upright.
TOP_LEFT = (230, 30, 30)
TOP_RIGHT = (30, 200, 40)
BOTTOM_LEFT = (30, 60, 230)
BOTTOM_RIGHT = (240, 220, 30)

# For each EXIF orientation, the transform that turns the upright picture into
# the stored pixels (the inverse of what a viewer applies).
_STORE_TRANSFORM = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def quadrants(width: int = 400, height: int = 200) -> Image.Image:
    """An upright, asymmetric picture: four coloured quadrants."""
    im = Image.new("RGB", (width, height))
    hw, hh = width // 2, height // 2
    im.paste(TOP_LEFT, (0, 0, hw, hh))
    im.paste(TOP_RIGHT, (hw, 0, width, hh))
    im.paste(BOTTOM_LEFT, (0, hh, hw, height))
    im.paste(BOTTOM_RIGHT, (hw, hh, width, height))
    return im


def oriented_jpeg(orientation: int, width: int = 400, height: int = 200) -> bytes:
    """A JPEG whose pixels are stored rotated/flipped, with the EXIF tag that undoes it.

    Displayed correctly, it shows ``quadrants(width, height)``. Also carries GPS
    and XMP, so tests can check they are stripped.
    """
    upright = quadrants(width, height)
    method = _STORE_TRANSFORM[orientation]
    stored = upright.transpose(method) if method is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 0.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes(), xmp=xmp)


def photo(width: int = 4000, height: int = 3000, seed: int = 7) -> Image.Image:
    """A detailed photo-like RGB picture: gradients, textured noise, hard edges, text.

    Flat colours would make any resize look perfect; this has detail at every
    scale, like a real photograph. The same arguments give the same pixels, so the
    last few are kept (0.8 s of CPU for 12 MP) and each caller gets its own copy.
    """
    return _photo(width, height, seed).copy()


@functools.lru_cache(maxsize=4)
def _photo(width: int, height: int, seed: int) -> Image.Image:
    rnd = random.Random(seed)
    grad_x = Image.linear_gradient("L").rotate(90).resize((width, height))
    grad_y = Image.linear_gradient("L").resize((width, height))
    radial = Image.radial_gradient("L").resize((width, height))
    base = Image.merge("RGB", (grad_x, grad_y, ImageOps.invert(radial)))
    # Texture: noise at a few scales, mildly blurred (like foliage or fabric).
    texture = Image.effect_noise((width // 4, height // 4), 60).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    fine = Image.effect_noise((width, height), 25).filter(ImageFilter.GaussianBlur(0.8))
    grain = ImageChops.add(ImageChops.multiply(texture, Image.new("L", (width, height), 200)), fine, 1.2, -60)
    im = Image.blend(base, Image.merge("RGB", (grain, grain, grain)), 0.35)
    draw = ImageDraw.Draw(im)
    for _ in range(60):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        x1, y1 = x0 + rnd.randrange(20, max(21, width // 4)), y0 + rnd.randrange(20, max(21, height // 4))
        colour = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        if rnd.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=rnd.randrange(1, 8))
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    for _ in range(200):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        angle = rnd.random() * math.tau
        length = rnd.randrange(30, 600)
        x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
        draw.line((x0, y0, x1, y1), fill=(rnd.randrange(256),) * 3, width=rnd.randrange(1, 4))
    for i in range(12):
        xy = (rnd.randrange(max(1, width - 400)), rnd.randrange(max(1, height - 100)))
        draw.text(xy, f"Detail {i}", fill=(0, 0, 0))
    return im


def photo_jpeg(width: int = 4000, height: int = 3000, quality: int = 90, **params) -> bytes:
    return encode(_photo(width, height, 7), "JPEG", quality=quality, **params)


def cmyk_jpeg(colour_rgb: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (120, 80)) -> bytes:
    """A CMYK JPEG (Pillow writes the Adobe marker, as Photoshop does)."""
    return encode(Image.new("RGB", size, colour_rgb).convert("CMYK"), "JPEG", quality=95)


def png_16bit_gray(width: int = 256, height: int = 64) -> bytes:
    """A 16-bit grayscale PNG: a horizontal ramp over the full 0..65535 range."""
    im = Image.new("I;16", (width, height))
    for x in range(width):
        value = round(x * 65535 / (width - 1))
        im.paste(value, (x, 0, x + 1, height))
    return encode(im, "PNG")


def palette_png_transparent(size: tuple[int, int] = (120, 80)) -> bytes:
    """A palette PNG: left half transparent (index 0), right half opaque red."""
    im = Image.new("P", size, 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.paste(1, (size[0] // 2, 0, size[0], size[1]))
    return encode(im, "PNG", transparency=0)


def animated_gif(frames: int = 3, size: tuple[int, int] = (90, 60)) -> bytes:
    """An animated GIF: frame 0 is red, later frames are other colours."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    ims = [Image.new("RGB", size, colours[i % 3]) for i in range(frames)]
    return encode(ims[0], "GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)


def moving_square(
    frames: int = 6, size: tuple[int, int] = (160, 120), square: int = 30, alpha: bool = False
) -> list[Image.Image]:
    """Frames of a yellow square moving left to right over a blue background (transparent with ``alpha``)."""
    width, height = size
    step = (width - square) / max(1, frames - 1)
    out = []
    for i in range(frames):
        im = Image.new("RGBA", size, (0, 0, 0, 0) if alpha else (30, 60, 200, 255))
        x = round(i * step)
        top = (height - square) // 2
        ImageDraw.Draw(im).rectangle((x, top, x + square - 1, top + square - 1), fill=(250, 220, 20, 255))
        out.append(im if alpha else im.convert("RGB"))
    return out


def square_x(frame: int, frames: int = 6, width: int = 160, square: int = 30) -> int:
    """Where ``moving_square``'s square starts in ``frame``."""
    return round(frame * (width - square) / max(1, frames - 1))


def animation(frames: list[Image.Image], fmt: str, durations: list[int], **params) -> bytes:
    """An animated ``fmt`` (GIF, WEBP or AVIF) of ``frames`` with per-frame ``durations`` (ms)."""
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=durations, **params)


def rgba_png(size: tuple[int, int] = (300, 200)) -> bytes:
    """RGBA: left half fully transparent, right half opaque blue."""
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (size[0] // 2, 0, size[0], size[1]))
    return encode(im, "PNG")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` (valid CRCs, almost no data)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def truncated_jpeg(size: tuple[int, int] = (640, 480)) -> bytes:
    data = encode(photo(*size), "JPEG", quality=90)
    return data[: len(data) // 2]


def srgb_icc() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
