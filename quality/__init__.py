"""How close a rendition is to the slow, straightforward one: one definition for tests and bench.

"40 dB" means the same everywhere: ``tests/test_engine_quality.py`` asserts it
and ``make bench`` reports it with these two functions. Not part of the Lambda
package (``tools/package.py`` ships ``lambda/`` only); ``imgpipe`` must be
importable, as it is in the tests and in ``bench`` (``lambda/`` on ``sys.path``).

``reference_image``  full decode, upright, one LANCZOS resize of the rendition's
                     centre region (``imgpipe.geometry``), then to sRGB from the
                     source's ICC profile as the engine does (``imgpipe.icc``):
                     what the engine's DCT scaling, box reduction and cascade
                     are measured against.
``CASCADED_RENDITIONS`` the renditions that make a cascade's hard cases.
``psnr``             peak signal-to-noise ratio in dB, 8 bits per sample:

- both images are compared in the fewest channels that hold them: one grey
  channel when both are grayscale (``L``/``LA``), else RGB (a grayscale image
  then counts as its grey in three equal channels, which gives the same MSE);
- when either image has alpha, both are compared premultiplied (``La`` or
  ``RGBa``: each colour sample times its alpha, and alpha itself as one more
  channel), i.e. as they look composited: the colour of a (nearly) transparent
  pixel hardly counts, and an image without alpha counts as opaque;
- the MSE is the mean over every sample of those channels;
- identical images give ``math.inf``.
"""

from __future__ import annotations

import functools
import io
import math

from PIL import Image, ImageChops, ImageOps

from imgpipe import icc as colour
from imgpipe.decode import normalise
from imgpipe.geometry import geometry
from imgpipe.renditions import Rendition

RESAMPLE = Image.Resampling.LANCZOS
_GREY = ("L", "LA")
# The hard cases for DCT scaling and the cascade: sizes just above each DCT scale boundary,
# a long chain of contain renditions each cut from the last, and two cover crops
# (tests/test_engine_quality.py asserts them; ``python -m bench.resize_options`` measures them).
CASCADED_RENDITIONS = (
    Rendition("r2001", 2001, 2001, "contain", ("webp",)),
    Rendition("r1001", 1001, 1001, "contain", ("webp",)),
    Rendition("r501", 501, 501, "contain", ("webp",)),
    Rendition("r250", 250, 250, "contain", ("webp",)),
    Rendition("c640", 640, 360, "cover", ("webp",)),
    Rendition("c96", 96, 96, "cover", ("webp",)),
)

__all__ = ["CASCADED_RENDITIONS", "psnr", "reference_image"]


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB between two same-size images (see the module's rules)."""
    if a.size != b.size:
        raise ValueError(f"sizes differ: {a.size} vs {b.size}")
    alpha = "A" in a.mode or "A" in b.mode
    grey = a.mode in _GREY and b.mode in _GREY
    base = ("LA" if alpha else "L") if grey else "RGBA"
    mode = ("La" if alpha else "L") if grey else ("RGBa" if alpha else "RGB")
    bands = len(mode)
    diff = ImageChops.difference(a.convert(base).convert(mode), b.convert(base).convert(mode))
    hist = diff.histogram()
    squares = sum(count * (i % 256) ** 2 for i, count in enumerate(hist))
    mse = squares / (a.size[0] * a.size[1] * bands)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def reference_image(data: bytes, rendition: Rendition) -> Image.Image:
    """The slow, straightforward rendition: full decode, upright, one LANCZOS resize, in sRGB (for checks).

    The colour conversion is the engine's own (``imgpipe.icc``, after resizing, as the
    engine does): a source in Adobe RGB is compared in sRGB, as its renditions are.
    """
    im, source_mode, icc = _full_decode(data)
    geo = geometry(rendition, *im.size)
    x0, y0 = (im.size[0] - geo.crop[0]) / 2, (im.size[1] - geo.crop[1]) / 2
    box = (x0, y0, x0 + geo.crop[0], y0 + geo.crop[1])
    out = im.resize((geo.width, geo.height), RESAMPLE, box=box)
    return out if source_mode == "CMYK" else colour.plan(icc, out.mode).apply(out)


@functools.lru_cache(maxsize=1)
def _full_decode(data: bytes) -> tuple[Image.Image, str, bytes | None]:
    """``data`` decoded in full, upright and normalised, with its stored mode and ICC profile.

    The same for every rendition of one source, so the last one is kept: tests and the bench
    ask for three to six references of each source in turn, and a 12 MP decode is 0.1-0.2 s of
    CPU. ``reference_image`` only resizes it: nothing changes the kept image.
    """
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    source_mode, icc = im.mode, im.info.get("icc_profile")
    return normalise(im, icc), source_mode, icc
