"""The image engine: bytes in, renditions out. Pure Pillow, no AWS.

One decode per source, at the smallest JPEG DCT scale that still holds the
largest rendition (big PNGs inflate on one thread while another un-filters:
``pngdecode``); renditions are cut largest to smallest, each from the
smallest image already made that keeps at least ``CASCADE_GAP`` times its
resolution; big resizes run in parallel strips and encoding in a small thread
pool (Pillow releases the GIL while resizing and encoding).

Geometry (never upscales):

``contain``  fit inside width x height, keeping the aspect ratio. A smaller
             source keeps its size.
``cover``    fill width x height, cropping the centre (``crop: centre``) or the
             most interesting window (``crop: attention``, ``attention``). A source smaller than
             the box in either direction is cropped to the box's aspect ratio
             at source resolution (a 100x50 source for a 200x200 thumb gives a
             50x50 centre square), never enlarged.

EXIF orientation is applied to every output (the pixels come out upright) and
EXIF, XMP and GPS are never written. Colour: an RGB source with a usable ICC
profile is converted to sRGB and its outputs carry a compact sRGB profile,
never the source's bytes (``icc``); CMYK sources are converted to sRGB through
their profile when they carry one, and get no profile (sRGB is the web's default).

What an image may cost is checked from its header before decoding
(``limits``: pixels, row width, memory, JPEG scans). Animated GIF and WebP
sources stay animated within their budget (``animation``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image, ImageFile, UnidentifiedImageError

from imgpipe import animation, attention, limits, pngdecode
from imgpipe import icc as colour
from imgpipe.detect import sniff
from imgpipe.errors import CorruptImage, NotAnImage, UnsupportedFormat
from imgpipe.renditions import CONTENT_TYPES, Rendition

if TYPE_CHECKING:
    from imgpipe.watermark import Watermark

# Truncated files are errors, never silently grey-filled.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Resampling choices, measured on a detailed synthetic photo: decoding at a DCT
# scale that keeps >= 1x the largest rendition, then LANCZOS, stays >= 43 dB PSNR
# against a full LANCZOS resize of the full decode at 4000x3000 and 6000x4000, and
# >= 41 dB where a 3/8 decode needs almost no LANCZOS after it (4300x2900 for 1600 px;
# 46.9 dB and up on the benchmark's photographs) (tests/test_engine_quality.py).
RESAMPLE = Image.Resampling.LANCZOS
# A source with >= 2 x REDUCING_GAP the resolution needed is first box-reduced by
# a whole factor, keeping >= REDUCING_GAP x for LANCZOS (like JPEG DCT scaling for
# other formats): 2x faster on a 12 MP PNG, >= 44 dB PSNR on the synthetic photo.
REDUCING_GAP = 1.25
# A made rendition can feed a smaller one when it has >= 2x its resolution (less
# 1% for rounding to whole pixels: a 1600x900 large feeds an 800x450 medium).
CASCADE_GAP = 2.0 * 0.99
# Resizes to at least this many output pixels are cut into horizontal strips,
# resized in parallel (LANCZOS weights depend only on the output row, and reach
# across strip borders into the source). Each strip's box is computed in floating
# point, so a sample centre can round differently: a few pixels in a million
# differ by one level (46 of 1.7 million on a 12 MP photo), never more.
STRIP_MIN_PIXELS = 400_000
DRAFT_GAP = 1.0  # JPEG DCT scaling keeps >= 1x the largest rendition's needed resolution
# JPEG DCT scales, in eighths: 1/8, 1/4, 3/8 and 1/2. 3/8 needs libjpeg-turbo (_dct_scale); it
# takes the large rendition of a 16 MP photo from a 1992 px decode instead of 2656 px (seeding,
# 5312x2988): 25 % less decode and resize CPU, 50.4 dB instead of 52.8 dB.
_LIBJPEG_TURBO = bool(getattr(Image.core, "HAVE_LIBJPEGTURBO", False))

# Encoder settings, measured for time and size on photos at 1600 px: WebP method 2
# is about 2x faster than the default 4 for 3-6 % more bytes. AVIF's speed is a
# setting (AVIF_SPEED, EngineOptions.avif_speed; measured in docs/formats.md).
JPEG_PARAMS = {"optimize": True, "progressive": False}  # progressive: see the next line
# From about 100x100 up, JPEGs are progressive: usually 1-4 % smaller for photos,
# and they show coarse-to-fine while loading; tiny ones stay baseline.
JPEG_PROGRESSIVE_MIN_PIXELS = 10_000
WEBP_METHOD = 2
AVIF_SPEED = 8  # the default of EngineOptions.avif_speed (resize_config.AVIF_SPEED)

# Pillow plugin module per sniffed format: only the one needed is imported.
_PLUGINS = {
    "jpeg": ("JpegImagePlugin", "JPEG"),
    "png": ("PngImagePlugin", "PNG"),
    "webp": ("WebPImagePlugin", "WEBP"),
    "gif": ("GifImagePlugin", "GIF"),
    "tiff": ("TiffImagePlugin", "TIFF"),
    "avif": ("AvifImagePlugin", "AVIF"),
}
_SAVE_PLUGINS = {"jpeg": "JpegImagePlugin", "webp": "WebPImagePlugin", "avif": "AvifImagePlugin"}

# EXIF orientation -> the transpose that makes the stored pixels upright.
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, RuntimeError)


@dataclass(frozen=True)
class EngineOptions:
    """How to render. ``watermark`` is a ``imgpipe.watermark.Watermark`` or None."""

    max_pixels: int = 100_000_000
    background: tuple[int, int, int] = (255, 255, 255)
    watermark: Watermark | None = field(default=None, compare=False)
    threads: int = 0  # threads for encoding, strip resizing, PNG inflating; 0 = one per CPU, at most 4
    memory_budget: int | None = None  # bytes a decode may need (limits.memory_budget); None: unchecked
    max_scans: int = limits.MAX_JPEG_SCANS
    avif_speed: int = AVIF_SPEED  # libavif: 0 slowest and smallest .. 10 fastest
    max_animation_pixels: int = 50_000_000  # frames x width x height kept animated (MAX_ANIMATION_PIXELS)


@dataclass(frozen=True)
class Output:
    name: str
    format: str
    width: int
    height: int
    data: bytes = field(repr=False)
    content_type: str
    frames: int = 1  # > 1: an animated WebP or AVIF

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class SourceInfo:
    """The source as decoded: format (``detect.sniff`` name) and upright full size."""

    format: str
    width: int
    height: int
    mode: str
    icc_profile: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RenderResult:
    source_format: str
    width: int
    height: int
    outputs: list[Output]


@dataclass(frozen=True)
class Geometry:
    """Where a rendition comes from and what size it gets, in upright coordinates."""

    width: int  # output size
    height: int
    crop: tuple[float, float]  # region of the source it shows (width, height), centred unless ``origin``
    scale: float  # output pixels per source pixel (<= 1)
    origin: tuple[float, float] | None = None  # the region's top-left in stored (not upright) pixels


def geometry(rendition: Rendition, src_w: int, src_h: int) -> Geometry:
    """Output size and source region of ``rendition`` for an upright source of src_w x src_h."""
    if rendition.fit == "cover":
        aspect = rendition.width / rendition.height
        wider = src_w / src_h > aspect
        crop = (src_h * aspect, float(src_h)) if wider else (float(src_w), src_w / aspect)
        scale = min(1.0, rendition.width / crop[0])
    else:
        crop = (float(src_w), float(src_h))
        scale = min(1.0, rendition.width / src_w, rendition.height / src_h)
    width = min(src_w, max(1, round(crop[0] * scale)))
    height = min(src_h, max(1, round(crop[1] * scale)))
    return Geometry(width, height, crop, scale)


@functools.cache
def _register_heif() -> None:
    """pillow-heif, imported and registered only when a HEIF source turns up."""
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _open(data: bytes, fmt: str) -> ImageFile.ImageFile:
    if fmt == "heif":
        _register_heif()
        formats = ["HEIF"]
    else:
        module, name = _PLUGINS[fmt]
        __import__(f"PIL.{module}")
        formats = [name]
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise CorruptImage(f"the {fmt} header cannot be parsed") from None
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} header cannot be parsed: {exc}") from None


def _dct_eighths(im: ImageFile.ImageFile, needed: float) -> int:
    """The fewest eighths (1, 2, 3, 4 or 8) of a JPEG's size that keep ``needed`` px per source px."""
    for eighths in (1, 2, 3, 4):
        if eighths / 8 >= needed * DRAFT_GAP and (eighths != 3 or _three_eighths_fits(im, needed)):
            return eighths
    return 8


def _three_eighths_fits(im: ImageFile.ImageFile, needed: float) -> bool:
    """Whether ``im`` can decode at 3/8 (``_dct_scale``) and keep >= 40 dB.

    Only with libjpeg-turbo, for one JPEG tile not yet scaled. Grayscale, 4:4:4
    and 4:2:0 keep 41 dB on the synthetic photo even where LANCZOS has almost
    nothing left to do after 3/8 (1.0x). 4:2:2 chroma loses 3 dB more there
    (38.4 dB; 1/2: 41.7 dB), so it takes 3/8 only with >= 1.4x left (41.8 dB).
    """
    if not _LIBJPEG_TURBO or len(im.tile) != 1 or im.decoderconfig:
        return False
    tile = im.tile[0]
    if tile[0] != "jpeg" or tuple(tile[1]) != (0, 0, *im.size):
        return False
    from PIL.JpegImagePlugin import get_sampling

    sampling = get_sampling(im)
    if getattr(im, "layers", 0) == 1 or sampling in (0, 2):
        return True
    return sampling == 1 and needed * DRAFT_GAP * 1.4 <= 3 / 8


def _dct_scale(im: ImageFile.ImageFile, eighths: int) -> bool:
    """Make ``im`` decode at ``eighths``/8 of its size; False when it cannot (it then decodes in full)."""
    width, height = im.size
    if eighths != 3:
        factor = 8 // eighths
        return bool(im.draft(None, (max(1, width // factor), max(1, height // factor))))
    # Pillow's draft() offers 1/2, 1/4 and 1/8. Its decoder hands the scale to libjpeg as
    # scale_denom, and libjpeg-turbo decodes scale_denom 3 at 3/8 (the smallest M/8 >= 1/3):
    # ceil(size * 3 / 8) pixels, the size set here as draft() sets its own. (IJG libjpeg 6b
    # would decode 1/2, wider than the tile: hence only with libjpeg-turbo.)
    size = ((width * 3 + 7) // 8, (height * 3 + 7) // 8)
    tile = im.tile[0]
    im.tile = [ImageFile._Tile(tile[0], (0, 0, *size), tile[2], tile[3])]
    im._size = size
    im.decoderconfig = (3, 0)
    return True


def _jpeg_scale(im: ImageFile.ImageFile, geos: dict[str, Geometry], budget: int | None) -> int:
    """Set ``im`` to decode at the fewest eighths that serve ``geos``; checks memory at that size."""
    eighths = _dct_eighths(im, max(g.scale for g in geos.values()))
    if eighths < 8 and not _dct_scale(im, eighths):
        eighths = 8
    limits.check_memory(im, "jpeg", budget)
    return eighths


def _decode(im: ImageFile.ImageFile, fmt: str) -> Image.Image:
    try:
        im.load()
    except OSError as exc:
        text = str(exc)
        if "decoder" in text and "not available" in text:
            raise UnsupportedFormat(f"{fmt}: {text}") from None
        raise CorruptImage(f"{fmt} data cannot be decoded: {text}") from None
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"{fmt} data cannot be decoded: {exc}") from None
    return im


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and icc[16:20] == b"CMYK":
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
        except (OSError, ValueError, ImageCms.PyCMSError):
            pass  # an unusable profile: fall back to Pillow's plain conversion
    return im.convert("RGB")


def _normalise(im: Image.Image, icc: bytes | None) -> Image.Image:
    """A mode LANCZOS can resize: L, LA, RGB or RGBA."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return im
    try:
        if mode == "1":
            return im.convert("L")
        if mode in ("P", "PA"):
            transparent = mode == "PA" or "transparency" in im.info
            return im.convert("RGBA" if transparent else "RGB")
        if mode == "CMYK":
            return _cmyk_to_rgb(im, icc)
        if mode.startswith("I;16") or mode == "I":
            # 16-bit samples to 8 bits by scaling (65535 -> 255), not clipping.
            wide = im if mode == "I" else im.convert("I")
            return wide.point(lambda v: v * (1 / 257)).convert("L")
        if mode == "F":
            return im.convert("L")
        if mode in ("La", "RGBa"):
            return im.convert(mode.upper())
        return im.convert("RGBA" if "A" in mode else "RGB")
    except (ValueError, OSError) as exc:
        raise UnsupportedFormat(f"pixel mode {mode} cannot be converted: {exc}") from None


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


@dataclass
class _Source:
    """A full-frame image in stored (not yet transposed) orientation."""

    image: Image.Image
    sx: float  # its pixels per original stored pixel, horizontally
    sy: float


def _stored_box(geo: Geometry, swap: bool, full_w: int, full_h: int, src: _Source) -> tuple[float, ...]:
    cw, ch = (geo.crop[1], geo.crop[0]) if swap else geo.crop
    x0, y0 = geo.origin if geo.origin is not None else ((full_w - cw) / 2, (full_h - ch) / 2)
    return (x0 * src.sx, y0 * src.sy, (x0 + cw) * src.sx, (y0 + ch) * src.sy)


@contextlib.contextmanager
def _pixel_limit() -> Iterator[None]:
    """Pillow's own decompression-bomb check off while we open and decode.

    Our checks (``limits``, on the header, before decoding) are the ones that
    count and state the configured limits; Pillow's would refuse at twice its
    global with its own numbers. The global is restored afterwards.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


@dataclass
class _Decoded:
    info: SourceInfo
    source: _Source
    orientation: int
    stored_size: tuple[int, int]
    geos: dict[str, Geometry]
    colour: colour.ColourPlan = field(default_factory=colour.ColourPlan)
    animation: _Animation | None = None


@dataclass
class _Animation:
    """An animated source still open at its first frame, kept animated (``animation``)."""

    image: ImageFile.ImageFile
    frames: int
    loop: int
    first_duration: int
    icc: bytes | None


def _animated_frames(
    im: ImageFile.ImageFile, fmt: str, geos: dict[str, Geometry], opts: EngineOptions, budget: int | None
) -> int:
    """Frames to keep: the source's count within the pixel and memory budgets, else 1 (the first frame)."""
    try:
        frames = animation.frame_count(im, fmt)  # a GIF is read through to its last frame for this
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} frames cannot be read: {exc}") from None
    if frames < 2 or not animation.within_budget(frames, *im.size, opts.max_animation_pixels):
        return 1
    if budget is not None:
        kept = limits.animation_bytes(frames, [(g.width, g.height) for g in geos.values()])
        if limits.decode_bytes(im, fmt) + kept > budget:
            return 1
    return frames


def _attend(decoded: _Decoded, renditions: Sequence[Rendition]) -> None:
    """Place every ``crop: attention`` window on the most interesting part of the decoded source."""
    source = decoded.source
    swap = decoded.orientation in _SWAPS_AXES
    scored = None
    for rendition in renditions:
        geo = decoded.geos[rendition.name]
        if rendition.crop != "attention" or rendition.fit != "cover":
            continue
        scored = scored or attention.saliency(source.image)  # once per image
        cw, ch = (geo.crop[1], geo.crop[0]) if swap else geo.crop
        x0, y0 = attention.window(source.image, (cw * source.sx, ch * source.sy), scored)
        decoded.geos[rendition.name] = dataclasses.replace(geo, origin=(x0 / source.sx, y0 / source.sy))


def _decode_png(im: ImageFile.ImageFile, data: bytes, pool: ThreadPoolExecutor) -> None:
    """A big plain PNG decoded on two threads (``pngdecode``: the same pixels); others left as they are."""
    chunks = pngdecode.idat_chunks(im, data)
    if chunks is not None:
        try:
            pngdecode.decode(im, chunks, pool)
        except pngdecode.DecodeError as exc:
            raise CorruptImage(f"png data cannot be decoded: {exc}") from None


def _decode_source(
    data: bytes,
    renditions: Sequence[Rendition],
    opts: EngineOptions,
    pool: ThreadPoolExecutor | None = None,
) -> _Decoded:
    """Decode once (DCT-scaled for JPEG), in stored orientation, in a mode LANCZOS can resize.

    With a ``pool`` (two threads or more), big PNGs inflate on it while this thread un-filters.
    """
    if not data:
        raise NotAnImage("the object is empty (0 bytes)")
    fmt = sniff(data)
    if fmt is None:
        raise NotAnImage("the bytes are not a supported image (JPEG, PNG, WebP, GIF, TIFF, AVIF, HEIC)")
    if fmt == "jpeg":
        limits.check_scans(data, opts.max_scans)
    budget = None if opts.memory_budget is None else opts.memory_budget - len(data)
    with _pixel_limit():
        im = _open(data, fmt)
        stored_w, stored_h = im.size
        limits.check_header(im, fmt, opts.max_pixels, None if fmt == "jpeg" else budget)
        if fmt == "png" and pool is not None:
            _decode_png(im, data, pool)  # before getexif(), which loads a PNG to look for a late eXIf
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except _DECODE_ERRORS:
            orientation = 1  # unreadable EXIF: show the pixels as stored
        if orientation not in range(1, 9):
            orientation = 1
        swap = orientation in _SWAPS_AXES
        up_w, up_h = (stored_h, stored_w) if swap else (stored_w, stored_h)
        geos = {r.name: geometry(r, up_w, up_h) for r in renditions}
        eighths = _jpeg_scale(im, geos, budget) if fmt == "jpeg" and geos else 8
        icc = im.info.get("icc_profile")
        frames = _animated_frames(im, fmt, geos, opts, budget) if geos else 1
        loop = animation.webp_loop(im.info, fmt)
        im = _decode(im, fmt)
        first_duration = animation.duration(im.info)
    if eighths < 8:
        # The DCT-scaled decode is the original at exactly eighths/8 (its last pixel partial).
        sx = sy = eighths / 8
    else:
        sx, sy = im.size[0] / stored_w, im.size[1] / stored_h
    source_mode = im.mode
    work = _normalise(im, icc)
    anim = _Animation(im, frames, loop, first_duration, icc) if frames > 1 else None
    if work is im:
        work = im.copy() if anim else im  # the open file seeks on to its later frames
    elif anim is None:
        im.close()
    if source_mode == "CMYK":
        icc = None
    work.info.clear()  # nothing from the source's metadata rides along into saves
    info = SourceInfo(fmt, up_w, up_h, source_mode, icc)
    plan = colour.plan(icc, work.mode)
    decoded = _Decoded(info, _Source(work, sx, sy), orientation, (stored_w, stored_h), geos, plan, anim)
    if any(r.crop == "attention" for r in renditions):
        _attend(decoded, renditions)
    return decoded


def _resize(
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
    Alpha is premultiplied while resampling, as ``Image.resize`` does.
    """
    width, height = size
    mode = im.mode
    if mode in ("RGBA", "LA"):
        im = im.convert(mode[:-1] + "a")
    factor_x = int((box[2] - box[0]) / width / REDUCING_GAP) or 1
    factor_y = int((box[3] - box[1]) / height / REDUCING_GAP) or 1
    if factor_x > 1 or factor_y > 1:
        im = im.reduce((factor_x, factor_y))
        box = (box[0] / factor_x, box[1] / factor_y, box[2] / factor_x, box[3] / factor_y)
    if pool is None or workers < 2 or width * height < STRIP_MIN_PIXELS:
        out = im.resize(size, RESAMPLE, box=box)
    else:
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
    return out.convert(mode) if out.mode != mode else out


def _cut(
    decoded: _Decoded,
    renditions: Sequence[Rendition],
    opts: EngineOptions,
    on_ready: Callable[[Rendition, Image.Image], None] | None = None,
    pool: ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> dict[str, Image.Image]:
    """Every rendition, largest first, each from the smallest full-frame image that is good enough."""
    full_w, full_h = decoded.stored_size
    geos = decoded.geos
    swap = decoded.orientation in _SWAPS_AXES
    transpose = _ORIENT.get(decoded.orientation)
    order = sorted(renditions, key=lambda r: geos[r.name].scale, reverse=True)
    decode: _Source | None = decoded.source
    decoded.source = None  # type: ignore[assignment]  # lets the big decode be freed early
    made: list[_Source] = []  # contain renditions: full-frame, stored orientation, largest first
    images: dict[str, Image.Image] = {}
    for index, rendition in enumerate(order):
        geo = geos[rendition.name]
        out_w, out_h = (geo.height, geo.width) if swap else (geo.width, geo.height)
        good = [s for s in made if min(s.sx, s.sy) >= geo.scale * CASCADE_GAP]
        src = good[-1] if good else decode
        assert src is not None
        box = _stored_box(geo, swap, full_w, full_h, src)
        if src.image.size == (out_w, out_h) and box == (0, 0, *src.image.size):
            stored = src.image
        else:
            stored = _resize(src.image, (out_w, out_h), box, pool, workers)
            if rendition.fit == "contain":
                made.append(_Source(stored, out_w / full_w, out_h / full_h))
        later = [geos[r.name].scale for r in order[index + 1 :]]
        if not later:
            decode, made = None, []
        else:
            # Keep only what a later rendition can still use; the big decode goes first.
            if any(min(s.sx, s.sy) >= max(later) * CASCADE_GAP for s in made):
                decode = None
            made = [s for s in made if min(s.sx, s.sy) >= min(later) * CASCADE_GAP]
        upright = stored.transpose(transpose) if transpose is not None else stored
        upright = decoded.colour.apply(upright)  # to sRGB before the (sRGB) watermark goes on
        if opts.watermark is not None:
            upright = opts.watermark.apply(upright)
        images[rendition.name] = upright
        if on_ready is not None:
            on_ready(rendition, upright)
    return images


def render_images(
    data: bytes, renditions: Sequence[Rendition], opts: EngineOptions | None = None
) -> tuple[SourceInfo, dict[str, Image.Image]]:
    """The renditions as PIL images, before encoding (upright, watermarked if configured, alpha kept).

    For quality checks against a full LANCZOS resize of the fully decoded
    original (``reference_image``).
    """
    opts = opts or EngineOptions()
    decoded = _decode_source(data, renditions, opts)
    info = decoded.info
    if decoded.animation is not None:
        decoded.animation.image.close()  # the first frame only
    return info, _cut(decoded, renditions, opts)


def reference_image(data: bytes, rendition: Rendition) -> Image.Image:
    """The slow, straightforward rendition: full decode, upright, one LANCZOS resize. For checks only."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    im = _normalise(im, im.info.get("icc_profile"))
    geo = geometry(rendition, *im.size)
    x0, y0 = (im.size[0] - geo.crop[0]) / 2, (im.size[1] - geo.crop[1]) / 2
    box = (x0, y0, x0 + geo.crop[0], y0 + geo.crop[1])
    return im.resize((geo.width, geo.height), RESAMPLE, box=box)


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


def _cut_animation(
    decoded: _Decoded,
    renditions: Sequence[Rendition],
    opts: EngineOptions,
    pool: ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> tuple[dict[str, list[Image.Image]], animation.Timing]:
    """Every rendition of every frame (the same geometry and crop as the first), and the timing."""
    anim = decoded.animation
    assert anim is not None
    full_w, full_h = decoded.stored_size
    first = _cut(decoded, renditions, opts, pool=pool, workers=workers)
    sequences = {name: [im] for name, im in first.items()}
    durations = [anim.first_duration]
    try:
        with _pixel_limit():
            for frame, duration in animation.later_frames(anim.image, anim.frames):
                work = _normalise(frame, anim.icc)
                work = work.copy() if work is frame else work  # the file seeks on; _cut may keep the frame
                work.info.clear()
                source = _Source(work, work.size[0] / full_w, work.size[1] / full_h)
                each = dataclasses.replace(decoded, source=source, animation=None)
                for name, im in _cut(each, renditions, opts, pool=pool, workers=workers).items():
                    sequences[name].append(im)
                durations.append(duration)
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"{decoded.info.format} frame {len(durations)} cannot be decoded: {exc}") from None
    finally:
        anim.image.close()
    return sequences, animation.Timing(tuple(durations), anim.loop)


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


def _threads(opts: EngineOptions) -> int:
    return opts.threads or max(1, min(4, os.cpu_count() or 1))


def render(data: bytes, renditions: Sequence[Rendition], opts: EngineOptions | None = None) -> RenderResult:
    """Every rendition in every configured format, outputs in the order configured.

    Raises an ``imgpipe.errors.PermanentError`` subclass for input that can
    never be processed (``not_an_image``, ``too_many_pixels``, ``corrupt_image``,
    ``unsupported_format``).
    """
    opts = opts or EngineOptions()
    futures: dict[tuple[str, str], Future[bytes]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    frames: dict[tuple[str, str], int] = {}
    workers = _threads(opts)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine") as pool:
        decoded = _decode_source(data, renditions, opts, pool if workers >= 2 else None)
        info = decoded.info
        profile = decoded.colour.profile

        def submit(rendition: Rendition, im: Image.Image) -> None:
            sizes[rendition.name] = im.size
            for fmt in rendition.formats:
                args = (im, fmt, rendition.quality, opts.background, profile, opts.avif_speed)
                futures[(rendition.name, fmt)] = pool.submit(encode, *args)

        def submit_animated(rendition: Rendition, seq: list[Image.Image], timing: animation.Timing) -> None:
            submit(dataclasses.replace(rendition, formats=("jpeg",) * ("jpeg" in rendition.formats)), seq[0])
            for fmt in rendition.formats:
                if fmt != "jpeg":
                    args = (seq, timing, fmt, rendition.quality, profile, opts.avif_speed)
                    futures[(rendition.name, fmt)] = pool.submit(encode_animation, *args)
                    frames[(rendition.name, fmt)] = len(seq)

        try:
            if decoded.animation is None:
                _cut(decoded, renditions, opts, submit, pool, workers)
            else:
                sequences, timing = _cut_animation(decoded, renditions, opts, pool, workers)
                for rendition in renditions:
                    submit_animated(rendition, sequences.pop(rendition.name), timing)
        except BaseException:
            for job in futures.values():
                job.cancel()
            raise
        del decoded
        outputs = []
        for rendition in renditions:
            width, height = sizes[rendition.name]
            for fmt in rendition.formats:
                body = futures.pop((rendition.name, fmt)).result()
                count = frames.get((rendition.name, fmt), 1)
                outputs.append(Output(rendition.name, fmt, width, height, body, CONTENT_TYPES[fmt], count))
    return RenderResult(info.format, info.width, info.height, outputs)
