"""Resizing: every rendition cut from the decode, largest first, in a cascade.

Each rendition comes from whichever makes it at least cost (``resize_cost``):
the decode, or an image already made that keeps at least ``CASCADE_GAP`` times
its resolution; a whole-factor box reduction goes first when there is room
(``REDUCING_GAP``), then LANCZOS; big resizes run in parallel horizontal strips
(Pillow releases the GIL while resizing). An image with alpha is premultiplied
once for the whole cascade. Every rendition is turned upright, converted to
sRGB (``icc``) and then gets the overlay (a watermark) when one is configured.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from imgpipe import animation
from imgpipe.decode import DECODE_ERRORS, Decoded, Source, normalise, pixel_limit
from imgpipe.errors import CorruptImage
from imgpipe.geometry import ORIENT, SWAPS_AXES, Geometry, stored_box
from imgpipe.options import EngineOptions
from imgpipe.renditions import Rendition

# Resampling choices, measured on a detailed synthetic photo: decoding at a DCT
# scale that keeps >= 1x the largest rendition, then LANCZOS, stays >= 43 dB PSNR
# against a full LANCZOS resize of the full decode at 4000x3000 and 6000x4000, and
# >= 41 dB where a 3/8 decode needs almost no LANCZOS after it (4300x2900 for 1600 px;
# 46.2 dB and up on the benchmark's photographs) (tests/test_engine_quality.py).
# Filters with fewer taps cost the resize stage less on the benchmark's seven large
# JPEGs (python -m bench.resize_options, docs/performance.md) but fall under 41 dB:
# BICUBIC -25 % (39.2 dB on the synthetic photo), HAMMING -53 % (35.6 dB), MKS2013
# -12 % (38.9 dB), BICUBIC for the renditions cut from a made one -9 % (39.2 dB).
RESAMPLE = Image.Resampling.LANCZOS
# A source with >= 2 x REDUCING_GAP the resolution needed is first box-reduced by
# a whole factor, keeping >= REDUCING_GAP x for LANCZOS (like JPEG DCT scaling for
# other formats): 2x faster on a 12 MP PNG, >= 44 dB PSNR on the synthetic photo.
# 1.1 saves nothing measurable (43.1 dB on a 20 MP photo, 48.1 at 1.25); 1.0 saves
# 24 % of the stage on the large JPEGs but gives 35.7 dB on the synthetic photo.
REDUCING_GAP = 1.25
# A made rendition can feed a smaller one when it has >= 2x its resolution (less
# 1% for rounding to whole pixels: a 1600x900 large feeds an 800x450 medium); the
# decode can always, and ``resize_cost`` picks the cheaper (7 % less CPU in the
# stage on the large JPEGs than always taking the smallest, same worst PSNR).
CASCADE_GAP = 2.0 * 0.99
# Resizes to at least this many output pixels are cut into horizontal strips,
# resized in parallel (LANCZOS weights depend only on the output row, and reach
# across strip borders into the source). Each strip's box is computed in floating
# point, so a sample centre can round differently: a few pixels in a million
# differ by one level (46 of 1.7 million on a 12 MP photo), never more.
STRIP_MIN_PIXELS = 400_000
LANCZOS_SUPPORT = 3.0  # source pixels LANCZOS reads on each side of a sample, times the scale
_STRAIGHT = {"RGBA": "RGBa", "LA": "La"}  # modes with straight alpha -> premultiplied


def resize(
    im: Image.Image,
    size: tuple[int, int],
    box: tuple[float, ...],
    pool: ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> Image.Image:
    """``box`` of ``im`` resized to ``size``: a box-average pre-reduction, then LANCZOS.

    When the source has at least twice ``REDUCING_GAP`` times the resolution
    needed, it is first reduced by a whole factor (``Image.reduce``, cheap),
    keeping >= ``REDUCING_GAP`` times the target for LANCZOS to finish. Big
    outputs are resized in parallel horizontal strips when a pool is given.
    Alpha is resampled premultiplied, as ``Image.resize`` does: an RGBA or LA
    image is premultiplied here and the result converted back; ``cascade``
    hands in images premultiplied once (RGBa, La) and gets them back as they are.
    """
    width, height = size
    mode = im.mode
    if mode in _STRAIGHT:
        im = im.convert(_STRAIGHT[mode])
    factor_x, factor_y = _factors(box, size)
    if factor_x > 1 or factor_y > 1:
        im = im.reduce((factor_x, factor_y))
        box = (box[0] / factor_x, box[1] / factor_y, box[2] / factor_x, box[3] / factor_y)
    if pool is None or workers < 2 or width * height < STRIP_MIN_PIXELS:
        out = im.resize(size, RESAMPLE, box=box)
    else:
        out = _resize_in_strips(im, size, box, pool, workers)
    return out.convert(mode) if out.mode != mode else out


def _factors(box: tuple[float, ...], size: tuple[int, int]) -> tuple[int, int]:
    """The whole factors ``resize`` box-reduces by first (1: none), keeping >= ``REDUCING_GAP`` x."""
    factor_x = int((box[2] - box[0]) / size[0] / REDUCING_GAP) or 1
    factor_y = int((box[3] - box[1]) / size[1] / REDUCING_GAP) or 1
    return factor_x, factor_y


def resize_cost(image_size: tuple[int, int], box: tuple[float, ...], size: tuple[int, int]) -> float:
    """The work of ``resize``, in samples: what the box reduction reads, plus LANCZOS' taps.

    Pillow resizes rows first, then columns, each output sample summing about
    2 x ``LANCZOS_SUPPORT`` x the scale source samples; the reduction reads each
    source pixel once. ``cascade`` picks the source that costs least: on the
    benchmark's photos the estimate ranks sources as their CPU times do
    (a 1600 px large feeding an 800 px medium: 33 ms against 22 ms from the
    2048 px decode, box-reduced by 2; estimates 23 and 15 million).
    """
    width, height = size
    factor_x, factor_y = _factors(box, size)
    reduced = image_size[0] * image_size[1] if factor_x > 1 or factor_y > 1 else 0
    span_x, span_y = (box[2] - box[0]) / factor_x, (box[3] - box[1]) / factor_y
    rows = width * span_y * 2 * LANCZOS_SUPPORT * max(1.0, span_x / width) if span_x != width else 0.0
    columns = width * height * 2 * LANCZOS_SUPPORT * max(1.0, span_y / height) if span_y != height else 0.0
    return reduced + rows + columns


def _resize_in_strips(
    im: Image.Image, size: tuple[int, int], box: tuple[float, ...], pool: ThreadPoolExecutor, workers: int
) -> Image.Image:
    """``resize`` in ``workers`` horizontal strips on ``pool`` (``STRIP_MIN_PIXELS``)."""
    width, height = size
    step = (box[3] - box[1]) / height
    bounds = [round(height * i / workers) for i in range(workers + 1)]
    strips = [(y0, y1) for y0, y1 in itertools.pairwise(bounds) if y1 > y0]
    jobs = [
        pool.submit(
            im.resize,
            (width, y1 - y0),
            RESAMPLE,
            (box[0], box[1] + y0 * step, box[2], box[1] + y1 * step),
        )
        for y0, y1 in strips
    ]
    out = Image.new(im.mode, size)
    for (y0, _), job in zip(strips, jobs, strict=True):
        out.paste(job.result(), (0, y0))
    return out


def _premultiplied(source: Source) -> Source:
    """``source`` with its alpha premultiplied (RGBA -> RGBa, LA -> La), once for the whole cascade."""
    mode = source.image.mode
    if mode not in _STRAIGHT:
        return source
    return Source(source.image.convert(_STRAIGHT[mode]), source.sx, source.sy)


class _Sources:
    """What a cascade can still cut renditions from: the decode and the contain renditions made so far.

    All are full-frame and in stored orientation; ``cheapest`` picks the one that
    makes a rendition at least cost, ``keep_for`` drops what no later rendition can use.
    """

    def __init__(self, decoded: Decoded) -> None:
        self.full_w, self.full_h = decoded.stored_size
        self.swap = decoded.orientation in SWAPS_AXES
        self.decode: Source | None = _premultiplied(decoded.source)
        self.made: list[Source] = []  # largest first

    def size(self, geo: Geometry) -> tuple[int, int]:
        """The rendition's size in stored orientation."""
        return (geo.height, geo.width) if self.swap else (geo.width, geo.height)

    def box(self, geo: Geometry, src: Source) -> tuple[float, ...]:
        """The region of ``src`` the rendition is cut from."""
        return stored_box(geo, self.swap, self.full_w, self.full_h, src.sx, src.sy)

    def cheapest(self, geo: Geometry) -> Source:
        """Of the decode and the made renditions with >= ``CASCADE_GAP`` x the resolution, the cheapest."""
        good = [s for s in self.made if min(s.sx, s.sy) >= geo.scale * CASCADE_GAP]
        candidates = [s for s in (self.decode, *good) if s is not None]  # smallest last: it wins a tie
        return min(
            reversed(candidates), key=lambda s: resize_cost(s.image.size, self.box(geo, s), self.size(geo))
        )

    def cut(self, geo: Geometry, fit: str, pool: ThreadPoolExecutor | None, workers: int) -> Image.Image:
        """The rendition in stored orientation, from the cheapest source; a contain one becomes a source."""
        src = self.cheapest(geo)
        (out_w, out_h), region = self.size(geo), self.box(geo, src)
        if src.image.size == (out_w, out_h) and region == (0, 0, *src.image.size):
            return src.image
        stored = resize(src.image, (out_w, out_h), region, pool, workers)
        if fit == "contain":
            self.made.append(Source(stored, out_w / self.full_w, out_h / self.full_h))
        return stored

    def keep_for(self, later: Sequence[Geometry]) -> None:
        """Keep only what a rendition in ``later`` can still use; the big decode goes first."""
        if not later:
            self.decode, self.made = None, []
            return
        if all(self.cheapest(g) is not self.decode for g in later):
            self.decode = None
        self.made = [s for s in self.made if min(s.sx, s.sy) >= min(g.scale for g in later) * CASCADE_GAP]


def cascade(
    decoded: Decoded,
    renditions: Sequence[Rendition],
    opts: EngineOptions,
    on_ready: Callable[[Rendition, Image.Image], None] | None = None,
    pool: ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> dict[str, Image.Image]:
    """Every rendition, largest first, each from the full-frame image that makes it at least cost.

    The candidates are the decode and the renditions already made that keep at
    least ``CASCADE_GAP`` times the resolution needed (``resize_cost`` decides).
    An image with alpha is premultiplied once, before the first resize, and
    every rendition is converted back from it.
    """
    geos = decoded.geos
    transpose = ORIENT.get(decoded.orientation)
    order = sorted(renditions, key=lambda r: geos[r.name].scale, reverse=True)
    mode = decoded.source.image.mode
    sources = _Sources(decoded)
    decoded.source = None  # type: ignore[assignment]  # lets the big decode be freed early
    images: dict[str, Image.Image] = {}
    for index, rendition in enumerate(order):
        stored = sources.cut(geos[rendition.name], rendition.fit, pool, workers)
        sources.keep_for([geos[r.name] for r in order[index + 1 :]])
        upright = _finished(stored, mode, transpose, decoded, opts)
        images[rendition.name] = upright
        if on_ready is not None:
            on_ready(rendition, upright)
    return images


def _finished(
    stored: Image.Image, mode: str, transpose: Image.Transpose | None, decoded: Decoded, opts: EngineOptions
) -> Image.Image:
    """A rendition as stored-orientation pixels made it: back in the source's ``mode``, upright,
    in sRGB, then watermarked."""
    stored = stored.convert(mode) if stored.mode != mode else stored
    upright = stored.transpose(transpose) if transpose is not None else stored
    upright = decoded.colour.apply(upright)  # to sRGB before the (sRGB) watermark goes on
    if opts.watermark is not None:
        upright = opts.watermark.apply(upright)
    return upright


def cascade_animation(
    decoded: Decoded,
    renditions: Sequence[Rendition],
    opts: EngineOptions,
    pool: ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> tuple[dict[str, list[Image.Image]], animation.Timing]:
    """Every rendition of every frame (the same geometry and crop as the first), and the timing."""
    anim = decoded.animation
    assert anim is not None
    full_w, full_h = decoded.stored_size
    first = cascade(decoded, renditions, opts, pool=pool, workers=workers)
    sequences = {name: [im] for name, im in first.items()}
    durations = [anim.first_duration]
    try:
        with pixel_limit():
            for frame, duration in animation.later_frames(anim.image, anim.frames):
                work = normalise(frame, anim.icc)
                work = work.copy() if work is frame else work  # the file seeks on; _cut may keep the frame
                work.info.clear()
                source = Source(work, work.size[0] / full_w, work.size[1] / full_h)
                each = dataclasses.replace(decoded, source=source, animation=None)
                for name, im in cascade(each, renditions, opts, pool=pool, workers=workers).items():
                    sequences[name].append(im)
                durations.append(duration)
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"{decoded.info.format} frame {len(durations)} cannot be decoded: {exc}") from None
    finally:
        anim.image.close()
    return sequences, animation.Timing(tuple(durations), anim.loop)
