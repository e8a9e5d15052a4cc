"""Decoding: source bytes to one full-frame image a resize can start from.

One decode per source: the format is sniffed (``detect``) and only its Pillow
plugin imported; what the image may cost is checked from its header first
(``limits``: pixels, row width, memory, JPEG scans); JPEGs decode at the
smallest DCT scale that still holds the largest rendition, still WebPs at a
reduced size by libwebp's own scaling (``webpdecode``), big PNGs inflate with
ISA-L, on a second thread when there is one (``pngdecode``). The pixels stay in stored
orientation, in a mode LANCZOS can resize (L, LA, RGB or RGBA), with the
colour plan (``icc``) and, for a source kept animated, its open file
(``animation``). ``crop: attention`` windows are placed here, on the decode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image, ImageFile, UnidentifiedImageError

from imgpipe import animation, attention, limits, pngdecode
from imgpipe import icc as colour
from imgpipe.detect import sniff
from imgpipe.errors import CorruptImage, NotAnImage, UnsupportedFormat
from imgpipe.geometry import SWAPS_AXES, Geometry, geometry
from imgpipe.options import EngineOptions
from imgpipe.renditions import Rendition

# Truncated files are errors, never silently grey-filled.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DRAFT_GAP = 1.0  # JPEG DCT scaling keeps >= 1x the largest rendition's needed resolution
# JPEG DCT scales, in eighths: 1/8, 1/4, 3/8 and 1/2. 3/8 needs libjpeg-turbo (_dct_scale); it
# takes the large rendition of a 16 MP photo from a 1992 px decode instead of 2656 px (seeding,
# 5312x2988): 25 % less decode and resize CPU, 50.4 dB instead of 52.8 dB.
_LIBJPEG_TURBO = bool(getattr(Image.core, "HAVE_LIBJPEGTURBO", False))

# Pillow plugin module per sniffed format: only the one needed is imported.
_PLUGINS = {
    "jpeg": ("JpegImagePlugin", "JPEG"),
    "png": ("PngImagePlugin", "PNG"),
    "webp": ("WebPImagePlugin", "WEBP"),
    "gif": ("GifImagePlugin", "GIF"),
    "tiff": ("TiffImagePlugin", "TIFF"),
    "avif": ("AvifImagePlugin", "AVIF"),
}

DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, RuntimeError)


@dataclass(frozen=True)
class SourceInfo:
    """The source as decoded: format (``detect.sniff`` name) and upright full size."""

    format: str
    width: int
    height: int
    mode: str
    icc_profile: bytes | None = field(default=None, repr=False)


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
    except DECODE_ERRORS as exc:
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
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"{fmt} data cannot be decoded: {exc}") from None
    return im


def _still_webp(im: ImageFile.ImageFile, fmt: str) -> bool:
    """Whether ``im`` is a still WebP that libwebp can decode scaled (``webpdecode``)."""
    if fmt != "webp" or getattr(im, "n_frames", 1) != 1:
        return False
    from imgpipe import webpdecode  # ctypes: imported with the first WebP, not at every cold start

    return webpdecode.available()


def _decode_webp(im: ImageFile.ImageFile, data: bytes, needed: float) -> Image.Image:
    """A still WebP decoded by libwebp at the size the renditions need (``webpdecode``), else by Pillow."""
    from imgpipe import webpdecode

    try:
        scaled = webpdecode.decode(data, needed)
    except webpdecode.DecodeError as exc:
        raise CorruptImage(f"webp data cannot be decoded: {exc}") from None
    if scaled is None:
        return _decode(im, "webp")
    im.close()
    return scaled


def _webp_size(width: int, height: int, needed: float) -> tuple[int, int]:
    from imgpipe import webpdecode

    return webpdecode.scaled_size(width, height, needed)


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


def normalise(im: Image.Image, icc: bytes | None) -> Image.Image:
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


def without_opaque_alpha(im: Image.Image) -> Image.Image:
    """``im`` without its alpha channel when every pixel is opaque (RGBA -> RGB, LA -> L); else ``im``.

    A fully opaque alpha changes no rendition (each is encoded without it), but
    carrying it costs: resizing premultiplies RGBA first, 94 ms of CPU for a
    13 MP photo, and LANCZOS then works on four bands instead of three. The
    check reads the band extremes once (about 6 ms there).
    """
    if im.mode not in ("RGBA", "LA") or im.getextrema()[-1] != (255, 255):
        return im
    return im.convert(im.mode[:-1])


@dataclass
class Source:
    """A full-frame image in stored (not yet transposed) orientation."""

    image: Image.Image
    sx: float  # its pixels per original stored pixel, horizontally
    sy: float


@contextlib.contextmanager
def pixel_limit() -> Iterator[None]:
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
class Decoded:
    """One decoded source: what the renditions are cut from, and where each one comes from."""

    info: SourceInfo
    source: Source
    orientation: int
    stored_size: tuple[int, int]
    geos: dict[str, Geometry]
    colour: colour.ColourPlan = field(default_factory=colour.ColourPlan)
    animation: Animation | None = None


@dataclass
class Animation:
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
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} frames cannot be read: {exc}") from None
    if frames < 2 or not animation.within_budget(frames, *im.size, opts.max_animation_pixels):
        return 1
    if budget is not None:
        kept = limits.animation_bytes(frames, [(g.width, g.height) for g in geos.values()])
        if limits.decode_bytes(im, fmt) + kept > budget:
            return 1
    return frames


def _attend(decoded: Decoded, renditions: Sequence[Rendition]) -> None:
    """Place every ``crop: attention`` window on the most interesting part of the decoded source."""
    source = decoded.source
    swap = decoded.orientation in SWAPS_AXES
    scored = None
    for rendition in renditions:
        geo = decoded.geos[rendition.name]
        if rendition.crop != "attention" or rendition.fit != "cover":
            continue
        scored = scored or attention.saliency(source.image)  # once per image
        cw, ch = (geo.crop[1], geo.crop[0]) if swap else geo.crop
        x0, y0 = attention.window(source.image, (cw * source.sx, ch * source.sy), scored)
        decoded.geos[rendition.name] = dataclasses.replace(geo, origin=(x0 / source.sx, y0 / source.sy))


def _decode_png(im: ImageFile.ImageFile, data: bytes, pool: ThreadPoolExecutor | None) -> None:
    """A big plain PNG decoded by ``pngdecode`` (the same pixels), on ``pool`` if any; others left alone."""
    chunks = pngdecode.idat_chunks(im, data)
    if chunks is not None:
        try:
            pngdecode.decode(im, chunks, pool)
        except pngdecode.DecodeError as exc:
            raise CorruptImage(f"png data cannot be decoded: {exc}") from None


def _format(data: bytes, opts: EngineOptions) -> str:
    """The sniffed format of ``data`` (``detect``), a JPEG's scans checked: before anything is parsed."""
    if not data:
        raise NotAnImage("the object is empty (0 bytes)")
    fmt = sniff(data)
    if fmt is None:
        raise NotAnImage("the bytes are not a supported image (JPEG, PNG, WebP, GIF, TIFF, AVIF, HEIC)")
    if fmt == "jpeg":
        limits.check_scans(data, opts.max_scans)
    return fmt


def _orientation(im: ImageFile.ImageFile) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 when it has none or it cannot be read."""
    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except DECODE_ERRORS:
        orientation = 1  # unreadable EXIF: show the pixels as stored
    return orientation if orientation in range(1, 9) else 1


def _scale_of(im: Image.Image, eighths: int, stored_w: int, stored_h: int) -> tuple[float, float]:
    """The decode's size as a fraction of the stored original's, across and down."""
    if eighths < 8:
        # The DCT-scaled decode is the original at exactly eighths/8 (its last pixel partial).
        return eighths / 8, eighths / 8
    return im.size[0] / stored_w, im.size[1] / stored_h


def _working_image(im: Image.Image, icc: bytes | None, anim: Animation | None) -> Image.Image:
    """What the renditions are cut from: ``im`` in a mode LANCZOS can resize, an opaque alpha
    dropped, none of the source's metadata. An animated source's open file stays open at its
    first frame (``anim``); a still one is closed once converted."""
    work = normalise(im, icc)
    if work is im:
        work = im.copy() if anim else im  # the open file seeks on to its later frames
    elif anim is None:
        im.close()
    if anim is None:
        work = without_opaque_alpha(work)
    work.info.clear()  # nothing from the source's metadata rides along into saves
    return work


def decode_source(
    data: bytes,
    renditions: Sequence[Rendition],
    opts: EngineOptions,
    pool: ThreadPoolExecutor | None = None,
) -> Decoded:
    """Decode once (DCT-scaled for JPEG), in stored orientation, in a mode LANCZOS can resize.

    Big PNGs inflate with ISA-L (``pngdecode``); with a ``pool`` (two threads or more), on it
    while this thread un-filters.
    """
    fmt = _format(data, opts)
    budget = None if opts.memory_budget is None else opts.memory_budget - len(data)
    with pixel_limit():
        im = _open(data, fmt)
        stored_w, stored_h = im.size
        # a still WebP decodes at the renditions' size (webpdecode): its memory is checked there
        still_webp = _still_webp(im, fmt)
        limits.check_header(im, fmt, opts.max_pixels, None if fmt == "jpeg" or still_webp else budget)
        if fmt == "png" and (pool is not None or pngdecode.fast()):
            _decode_png(im, data, pool)  # before getexif(), which loads a PNG to look for a late eXIf
        orientation = _orientation(im)
        swap = orientation in SWAPS_AXES
        up_w, up_h = (stored_h, stored_w) if swap else (stored_w, stored_h)
        geos = {r.name: geometry(r, up_w, up_h) for r in renditions}
        eighths = _jpeg_scale(im, geos, budget) if fmt == "jpeg" and geos else 8
        if still_webp:
            needed = max((g.scale for g in geos.values()), default=1.0)
            limits.check_scaled_memory(im, _webp_size(stored_w, stored_h, needed), fmt, budget)
        icc = im.info.get("icc_profile")
        frames = _animated_frames(im, fmt, geos, opts, budget) if geos else 1
        loop = animation.webp_loop(im.info, fmt)
        if fmt == "webp" and frames == 1 and geos:
            im = _decode_webp(im, data, max(g.scale for g in geos.values()))
        else:
            im = _decode(im, fmt)
        first_duration = animation.duration(im.info)
    sx, sy = _scale_of(im, eighths, stored_w, stored_h)
    source_mode = im.mode
    anim = Animation(im, frames, loop, first_duration, icc) if frames > 1 else None
    work = _working_image(im, icc, anim)
    if source_mode == "CMYK":
        icc = None
    info = SourceInfo(fmt, up_w, up_h, source_mode, icc)
    plan = colour.plan(icc, work.mode)
    decoded = Decoded(info, Source(work, sx, sy), orientation, (stored_w, stored_h), geos, plan, anim)
    if any(r.crop == "attention" for r in renditions):
        _attend(decoded, renditions)
    return decoded
