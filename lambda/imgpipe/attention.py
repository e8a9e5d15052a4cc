"""Where a ``cover`` rendition with ``crop: attention`` cuts: the most interesting window.

Like libvips' ``interesting=attention``, with no model to download: a score per
pixel of a small copy of the image (at most ``SAMPLE_EDGE`` px on its long
side) from three cues,

- edges: the Laplacian magnitude of the luminance (detail, outlines, text);
- colour: chroma, max(R, G, B) - min(R, G, B) (a saturated subject on a dull
  background);
- skin: pixels inside the classic YCbCr skin-tone box (Cb 77-127, Cr 133-173)
  and not dark,

then the window of the crop's size with the highest summed score (within
``TIE``, the one nearest the centre). A cover crop
of the largest window with the target's aspect ratio spans the whole width or
the whole height, so the search slides along one axis over the column (or row)
sums, with prefix sums at sub-sample positions. Near-equal scores (no subject)
keep the centre. Pillow only: the small copy has a few thousand pixels, so
plain Python sums cost about a millisecond.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from PIL import Image, ImageChops, ImageFilter, ImageOps

SAMPLE_EDGE = 96  # px on the small copy's long side
EDGE_WEIGHT = 1.0
CHROMA_WEIGHT = 0.5
SKIN_WEIGHT = 96.0  # a skin pixel counts like a strong edge
SKIN_CB = (77, 127)
SKIN_CR = (133, 173)
SKIN_MIN_LUMA = 48
_LAPLACIAN = ImageFilter.Kernel((3, 3), (-1, -1, -1, -1, 8, -1, -1, -1, -1), scale=1, offset=0)
_STEPS_PER_SAMPLE = 4  # window positions tried per small-copy pixel
_MIN_SLACK = 1e-3  # a window within 0.1 % of the image's size along an axis does not slide along it
# Windows within 2 % of the spread between the worst and the best score count as equal (measurement
# noise, a ramp's quantisation): the one nearest the centre wins.
TIE = 0.02


def _small(im: Image.Image) -> Image.Image:
    width, height = im.size
    factor = max(width, height) / SAMPLE_EDGE
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        im = im.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    return im.convert("RGB")


def _in(lo: int, hi: int) -> list[int]:
    return [255 if lo <= v <= hi else 0 for v in range(256)]


def saliency(im: Image.Image) -> tuple[Image.Image, list[float]]:
    """The small copy's size (as an image) and its score per pixel, row by row."""
    small = _small(im)
    luma = small.convert("L")
    # |Laplacian|: the kernel clips negatives to 0, so add the kernel of the inverted image.
    edges = ImageChops.add(luma.filter(_LAPLACIAN), ImageChops.invert(luma).filter(_LAPLACIAN))
    if min(edges.size) > 2:  # Pillow's filters copy the border pixels unfiltered: no edges there
        edges = ImageOps.expand(ImageOps.crop(edges, 1), 1, 0)
    hsv = small.convert("HSV")
    chroma = ImageChops.multiply(hsv.getchannel("S"), hsv.getchannel("V"))  # S x V / 255 = max - min
    y, cb, cr = small.convert("YCbCr").split()
    skin = ImageChops.multiply(
        ImageChops.multiply(cb.point(_in(*SKIN_CB)), cr.point(_in(*SKIN_CR))),
        y.point(_in(SKIN_MIN_LUMA, 255)),
    )
    cues = (edges.get_flattened_data(), chroma.get_flattened_data(), skin.get_flattened_data())
    scores = [
        EDGE_WEIGHT * e + CHROMA_WEIGHT * c + SKIN_WEIGHT * (s / 255) for e, c, s in zip(*cues, strict=True)
    ]
    return small, scores


def _best_start(profile: Sequence[float], length: float) -> float:
    """Start (in samples, fractional) of the window of ``length`` samples with the highest sum."""
    count = len(profile)
    room = count - length
    if room <= 1e-9:
        return 0.0
    prefix = [0.0, *itertools.accumulate(profile)]

    def cumulative(x: float) -> float:  # the sum of profile over [0, x), linear inside a sample
        whole = min(count - 1, int(x))
        return prefix[whole] + (x - whole) * profile[whole]

    steps = max(1, round(room * _STEPS_PER_SAMPLE))
    starts = [room * i / steps for i in range(steps + 1)]
    totals = [cumulative(start + length) - cumulative(start) for start in starts]
    good = max(totals) - TIE * (max(totals) - min(totals))
    return min((s for s, t in zip(starts, totals, strict=True) if t >= good), key=lambda s: abs(s - room / 2))


def window(
    im: Image.Image, crop: tuple[float, float], scored: tuple[Image.Image, list[float]] | None = None
) -> tuple[float, float]:
    """Top-left corner, in ``im``'s pixels, of the most interesting ``crop`` (width, height) window.

    ``scored``: ``saliency(im)`` when already computed (several renditions of one image).
    """
    width, height = im.size
    small, scores = scored or saliency(im)
    sw, sh = small.size
    rows = [scores[y * sw : (y + 1) * sw] for y in range(sh)]
    x0 = y0 = 0.0
    # The window spans (nearly: a DCT-scaled decode rounds its size up) one whole axis; it slides
    # along the other, the one it leaves more of.
    slack_x, slack_y = 1 - crop[0] / width, 1 - crop[1] / height
    if slack_x > max(slack_y, _MIN_SLACK):
        columns = [sum(col) for col in zip(*rows, strict=True)]
        x0 = _best_start(columns, crop[0] / width * sw) / sw * width
    elif slack_y > _MIN_SLACK:
        y0 = _best_start([sum(row) for row in rows], crop[1] / height * sh) / sh * height
    return (max(0.0, min(x0, width - crop[0])), max(0.0, min(y0, height - crop[1])))
