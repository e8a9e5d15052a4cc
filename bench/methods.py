"""What is timed: the engine, naive Pillow, a libvips cascade, and the floor.

Every method takes the source bytes and the renditions and returns its encoded
outputs as ``{(rendition, format): bytes}``, so the runner can time them the
same way and compare sizes. All make the same outputs: the renditions' sizes,
formats and qualities, with the engine's encoder settings (``imgpipe.encode``
for the Pillow methods; the same libjpeg/libwebp options for libvips). Quality
is PSNR against ``quality.reference_image``, the same measure the tests assert.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Sequence

from PIL import Image, ImageOps

from imgpipe import encode as encoder
from imgpipe import engine
from imgpipe.geometry import geometry
from imgpipe.renditions import Rendition
from quality import psnr, reference_image

Outputs = dict[tuple[str, str], bytes]


def render_engine(data: bytes, renditions: Sequence[Rendition], threads: int = 0) -> Outputs:
    """The engine as the resize handler calls it (``threads=0``: its own default)."""
    result = engine.render(data, renditions, engine.EngineOptions(threads=threads))
    return {(o.name, o.format): o.data for o in result.outputs}


def engine_threads() -> int:
    """The threads ``engine.render`` uses by default on this machine (wall-time figures say it)."""
    return engine._threads(engine.EngineOptions())


def handler_threads() -> int:
    """The engine's threads in the resize handler at the configured memory (``limits.engine_threads``)."""
    from bench import cost
    from imgpipe import limits

    return limits.engine_threads(cost.configured_memory()[0])


def rendition_sizes(data: bytes, renditions: Sequence[Rendition]) -> dict[str, tuple[int, int]]:
    """Each rendition's output size, from the header alone (``imgpipe.geometry``: all methods match it)."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w, h = h, w
    sizes = {}
    for r in renditions:
        geo = geometry(r, w, h)
        sizes[r.name] = (geo.width, geo.height)
    return sizes


def _upright(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    im = ImageOps.exif_transpose(im)
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    return im


def centre_box(size: tuple[int, int], rendition: Rendition) -> tuple[float, float, float, float]:
    """The region of an upright source a rendition shows: all of it, or the centre for ``cover``."""
    w, h = size
    if rendition.fit != "cover":
        return (0.0, 0.0, float(w), float(h))
    aspect = rendition.width / rendition.height
    cw, ch = (h * aspect, float(h)) if w / h > aspect else (float(w), w / aspect)
    return ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)


def naive_images(
    data: bytes, renditions: Sequence[Rendition], sizes: dict[str, tuple[int, int]]
) -> dict[str, Image.Image]:
    """Full decode, upright, one LANCZOS resize per rendition from the full image."""
    im = _upright(data)
    return {
        r.name: im.resize(sizes[r.name], Image.Resampling.LANCZOS, box=centre_box(im.size, r))
        for r in renditions
    }


def encode_all(images: dict[str, Image.Image], renditions: Sequence[Rendition], icc: bytes | None) -> Outputs:
    """The engine's own encoder, one output after another (no threads)."""
    return {
        (r.name, fmt): encoder.encode(images[r.name], fmt, r.quality, (255, 255, 255), icc)
        for r in renditions
        for fmt in r.formats
    }


def _icc(data: bytes) -> bytes | None:
    with Image.open(io.BytesIO(data)) as im:
        return im.info.get("icc_profile")


def render_naive(data: bytes, renditions: Sequence[Rendition]) -> Outputs:
    sizes = rendition_sizes(data, renditions)
    return encode_all(naive_images(data, renditions, sizes), renditions, _icc(data))


def draft_decode(data: bytes, renditions: Sequence[Rendition]) -> Image.Image:
    """Decode at the smallest JPEG DCT scale that still holds the largest rendition (others: full)."""
    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        orientation = im.getexif().get(0x0112, 1)
        w, h = im.size
        up_w, up_h = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        # the largest rendition's pixels per source pixel (cover: per cropped source pixel)
        scale = 0.0
        for r in renditions:
            x0, _, x1, _ = centre_box((up_w, up_h), r)
            if r.fit == "cover":
                s = min(1.0, r.width / (x1 - x0))
            else:
                s = min(1.0, r.width / up_w, r.height / up_h)
            scale = max(scale, s)
        im.draft(im.mode, (math.ceil(w * scale), math.ceil(h * scale)))
    im.load()
    return im


class Floor:
    """The floor: decode at the draft scale, plus encoding the renditions, nothing else.

    Timed as two parts, each without threads: ``decode`` (``draft_decode``) and
    ``encode`` (the engine's encoder on the renditions the engine made, made once
    beforehand). Resizing, orientation and mode conversions cost nothing here.
    """

    def __init__(self, data: bytes, renditions: Sequence[Rendition]) -> None:
        self.data = data
        self.renditions = renditions
        _, self.images = engine.render_images(data, renditions)
        self.icc = _icc(data)

    def decode(self) -> None:
        draft_decode(self.data, self.renditions).close()

    def encode(self) -> Outputs:
        return encode_all(self.images, self.renditions, self.icc)


class Vips:
    """libvips through pyvips: a ``thumbnail`` cascade, largest rendition first.

    One decode with shrink-on-load to the largest rendition, then each smaller
    one from the previous (``thumbnail_image``), each materialised in memory
    once and encoded to every format with the engine's quality and settings.
    libvips' operation cache is off, so every round decodes again.
    """

    def __init__(self) -> None:
        import pyvips

        self.pyvips = pyvips
        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        self.default_concurrency = pyvips.concurrency_get()

    def version(self) -> str:
        v = self.pyvips.version
        return f"{v(0)}.{v(1)}.{v(2)}"

    def set_threads(self, threads: int) -> None:
        self.pyvips.concurrency_set(threads or self.default_concurrency)

    def _encode(self, im, fmt: str, quality: int) -> bytes:
        if fmt == "jpeg":
            if im.hasalpha():
                im = im.flatten(background=[255, 255, 255])
            progressive = im.width * im.height >= encoder.JPEG_PROGRESSIVE_MIN_PIXELS
            return im.jpegsave_buffer(
                Q=quality,
                optimize_coding=bool(encoder.JPEG_PARAMS.get("optimize")),
                interlace=progressive,
                keep="icc",
            )
        if fmt == "webp":
            return im.webpsave_buffer(Q=quality, effort=encoder.WEBP_METHOD, keep="icc")
        if fmt == "avif":
            return im.heifsave_buffer(Q=quality, compression="av1", effort=9 - encoder.AVIF_SPEED, keep="icc")
        raise ValueError(fmt)

    def render(self, data: bytes, renditions: Sequence[Rendition]) -> Outputs:
        order = sorted(renditions, key=lambda r: r.width * r.height, reverse=True)
        outputs: Outputs = {}
        previous = None
        for r in order:
            crop = "centre" if r.fit == "cover" else "none"
            if previous is None:
                im = self.pyvips.Image.thumbnail_buffer(
                    data, r.width, height=r.height, size="down", crop=crop
                )
            else:
                im = previous.thumbnail_image(r.width, height=r.height, size="down", crop=crop)
            im = im.copy_memory()
            for fmt in r.formats:
                outputs[(r.name, fmt)] = self._encode(im, fmt, r.quality)
            if r.fit == "contain":
                previous = im
        return outputs


def quality(data: bytes, renditions: Sequence[Rendition]) -> dict[str, float]:
    """PSNR of each engine rendition (before encoding) against a full LANCZOS resize of the full decode."""
    _, images = engine.render_images(data, renditions)
    return {r.name: psnr(images[r.name], reference_image(data, r)) for r in renditions}


def timed(fn: Callable[[], object], rounds: int) -> tuple[list[float], list[float], object]:
    """Wall and process-CPU milliseconds of each of ``rounds`` calls, and the last result."""
    walls, cpus = [], []
    result = None
    for _ in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        t1, c1 = time.perf_counter(), time.process_time()
        walls.append((t1 - t0) * 1000)
        cpus.append((c1 - c0) * 1000)
    return walls, cpus, result


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
