"""The image engine: bytes in, renditions out. Pure Pillow, no AWS.

``render`` is its one entry: the resize handler calls it, in the render child
(``sandbox``). It runs the stages, each a module of its own:

``decode``     one decode per source, at the smallest JPEG DCT scale that still
               holds the largest rendition (big PNGs on two threads:
               ``pngdecode``), what it may cost checked first (``limits``);
``geometry``   output sizes and crop regions, never upscaling, and EXIF
               orientation (every output comes out upright);
``resize``     renditions cut largest to smallest in a cascade, big ones in
               parallel strips, then upright, in sRGB (``icc``) and watermarked;
``encode``     JPEG, WebP and AVIF without EXIF, XMP or GPS, in a small thread
               pool (Pillow releases the GIL while resizing and encoding).

EXIF orientation is applied to every output (the pixels come out upright) and
EXIF, XMP and GPS are never written. Colour: an RGB source with a usable ICC
profile is converted to sRGB and its outputs carry a compact sRGB profile,
never the source's bytes (``icc``); CMYK sources are converted to sRGB through
their profile when they carry one, and get no profile (sRGB is the web's default).
Animated GIF and WebP sources stay animated within their budget (``animation``).
The engine knows no watermark: ``EngineOptions.watermark`` is any overlay
with an ``apply(image)``, and ``load_mark`` decodes a watermark image for it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from imgpipe import animation
from imgpipe.decode import SourceInfo, decode_source
from imgpipe.encode import encode, encode_animation
from imgpipe.options import EngineOptions
from imgpipe.renditions import CONTENT_TYPES, Rendition
from imgpipe.resize import cascade, cascade_animation

__all__ = ["EngineOptions", "Output", "RenderResult", "SourceInfo", "load_mark", "render", "render_images"]


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
class RenderResult:
    source_format: str
    width: int
    height: int
    outputs: list[Output]


def render_images(
    data: bytes, renditions: Sequence[Rendition], opts: EngineOptions | None = None
) -> tuple[SourceInfo, dict[str, Image.Image]]:
    """The renditions as PIL images, before encoding (upright, watermarked if configured, alpha kept).

    For quality checks against a full LANCZOS resize of the fully decoded
    original (``quality.reference_image``, outside the Lambda package).
    """
    opts = opts or EngineOptions()
    decoded = decode_source(data, renditions, opts)
    info = decoded.info
    if decoded.animation is not None:
        decoded.animation.image.close()  # the first frame only
    return info, cascade(decoded, renditions, opts)


def _threads(opts: EngineOptions) -> int:
    return opts.threads or max(1, min(4, os.cpu_count() or 1))


class _Encoder:
    """Encodes each rendition on the pool as soon as it is made; collects the outputs in order."""

    def __init__(self, pool: ThreadPoolExecutor, opts: EngineOptions, profile: bytes | None) -> None:
        self.pool, self.opts, self.profile = pool, opts, profile
        self.futures: dict[tuple[str, str], Future[bytes]] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        self.frames: dict[tuple[str, str], int] = {}

    def submit(self, rendition: Rendition, im: Image.Image) -> None:
        self.sizes[rendition.name] = im.size
        for fmt in rendition.formats:
            args = (im, fmt, rendition.quality, self.opts.background, self.profile, self.opts.avif_speed)
            self.futures[(rendition.name, fmt)] = self.pool.submit(encode, *args)

    def submit_animated(self, rendition: Rendition, seq: list[Image.Image], timing: animation.Timing) -> None:
        self.submit(dataclasses.replace(rendition, formats=("jpeg",) * ("jpeg" in rendition.formats)), seq[0])
        for fmt in rendition.formats:
            if fmt != "jpeg":
                args = (seq, timing, fmt, rendition.quality, self.profile, self.opts.avif_speed)
                self.futures[(rendition.name, fmt)] = self.pool.submit(encode_animation, *args)
                self.frames[(rendition.name, fmt)] = len(seq)

    def cancel(self) -> None:
        for job in self.futures.values():
            job.cancel()

    def outputs(self, renditions: Sequence[Rendition]) -> list[Output]:
        outputs = []
        for rendition in renditions:
            width, height = self.sizes[rendition.name]
            for fmt in rendition.formats:
                body = self.futures.pop((rendition.name, fmt)).result()
                count = self.frames.get((rendition.name, fmt), 1)
                outputs.append(Output(rendition.name, fmt, width, height, body, CONTENT_TYPES[fmt], count))
        return outputs


def render(data: bytes, renditions: Sequence[Rendition], opts: EngineOptions | None = None) -> RenderResult:
    """Every rendition in every configured format, outputs in the order configured.

    Raises an ``imgpipe.errors.PermanentError`` subclass for input that can
    never be processed (``not_an_image``, ``too_many_pixels``, ``corrupt_image``,
    ``unsupported_format``).
    """
    opts = opts or EngineOptions()
    workers = _threads(opts)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine") as pool:
        decoded = decode_source(data, renditions, opts, pool if workers >= 2 else None)
        info = decoded.info
        encoder = _Encoder(pool, opts, decoded.colour.profile)
        try:
            if decoded.animation is None:
                cascade(decoded, renditions, opts, encoder.submit, pool, workers)
            else:
                sequences, timing = cascade_animation(decoded, renditions, opts, pool, workers)
                for rendition in renditions:
                    encoder.submit_animated(rendition, sequences.pop(rendition.name), timing)
        except BaseException:
            encoder.cancel()
            raise
        del decoded
        outputs = encoder.outputs(renditions)
    return RenderResult(info.format, info.width, info.height, outputs)


def load_mark(data: bytes) -> Image.Image:
    """A watermark image decoded once from bytes, RGBA (PNG with alpha is the usual choice).

    Any format the engine accepts, at most 4096 px on a side. Raises the
    engine's ``PermanentError`` subclasses for bytes that are not a usable image.
    """
    return _decoded_mark(bytes(data))


@functools.lru_cache(maxsize=4)
def _decoded_mark(data: bytes) -> Image.Image:
    limit = Rendition("watermark", 4096, 4096, "contain", ("webp",), 100)
    _, images = render_images(data, [limit], EngineOptions(max_pixels=50_000_000))
    mark = images["watermark"]
    return mark if mark.mode == "RGBA" else mark.convert("RGBA")
