"""PNG decoding with a faster inflate: ISA-L inflates, Pillow un-filters the same bytes.

Pillow's PNG decoder inflates each row with the system's zlib and undoes its
filter in one call. Here the IDAT stream is inflated by ISA-L (``isal``, about
twice as fast as zlib 1.2 on this machine's CPU and the bench's PNGs) and the
inflated bytes are handed to Pillow's own PNG decoder, re-wrapped as stored
(uncompressed) deflate blocks: the same decoder code un-filters and unpacks the
same bytes, so the pixels are the same, byte for byte. On one thread (the
resize function at up to 1,769 MB) a 12 MP photo PNG decodes in 190 ms of CPU
instead of 268 ms; with a pool (two threads or more) the inflate runs on a
worker while the calling thread un-filters, so the two halves overlap.

Pillow's wheel is built against zlib-ng but links the system's ``libz.so.1``
(on the manylinux allow-list, so not bundled): ``PIL.features`` says
"compiled for zlib-ng", yet the inflate that runs is the runtime's zlib.
Without ``isal`` the standard library's ``zlib`` inflates, and one thread is
left to Pillow's ``load()`` (the same work, without the re-wrapping).

Only plain PNGs take this path: one image (not APNG), not interlaced, in L,
LA, RGB or RGBA, of at least ``MIN_PIXELS``, with nothing but IEND after the
image data (so no metadata Pillow would read after it, such as a late eXIf).
Anything else, and anything malformed, is left to Pillow's usual ``load()``,
which then gives its usual errors.
"""

from __future__ import annotations

import functools
import queue
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor, wait
from types import ModuleType

from PIL import Image, ImageFile

MIN_PIXELS = 1_000_000
MODES = ("L", "LA", "RGB", "RGBA")
SLICE = 1 << 16  # compressed bytes per inflate step: keeps the two threads in step
MAX_OUT = 1 << 20  # inflated bytes per step at most (a highly compressed stream cannot balloon)
_STORED_MAX = 0xFFFF  # bytes in one stored deflate block
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, no preset dictionary
_DONE = object()


class DecodeError(ValueError):
    """The image data is corrupt or truncated."""


@functools.cache
def _inflater() -> tuple[ModuleType, tuple[type[Exception], ...]]:
    """ISA-L's zlib module (``isal.isal_zlib``), else the standard library's; and the errors it raises.

    Imported with the first big PNG, not at every cold start (about 1 ms).
    """
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib, (zlib.error,)
    return isal_zlib, (isal_zlib.error, zlib.error)


def fast() -> bool:
    """Whether a faster inflate than the system's zlib is here (``isal``): worth taking on one thread too."""
    return _inflater()[0] is not zlib


def idat_chunks(im: ImageFile.ImageFile, data: bytes) -> list[memoryview] | None:
    """The IDAT payloads of ``im`` (opened from ``data``, not loaded); None where this path does not apply."""
    if im.format != "PNG" or im.mode not in MODES or im.info.get("interlace"):
        return None
    if "default_image" in im.info or len(im.tile) != 1 or im.decoderconfig:
        return None  # an APNG (Pillow notes whether its IDAT is a frame), or not one whole tile
    tile = im.tile[0]
    if tile[0] != "zip" or tuple(tile[1]) != (0, 0, *im.size) or tile[3] != im.mode:
        return None  # 8 bits per sample only (rawmode == mode), the whole image
    if im.size[0] * im.size[1] < MIN_PIXELS:
        return None
    view = memoryview(data)
    pos = tile[2] - 8  # the first IDAT's chunk header
    chunks = []
    while True:
        if pos + 8 > len(data):
            return None
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length + 4  # data, CRC
        if end > len(data):
            return None
        if kind != b"IDAT":
            break
        chunks.append(view[pos + 8 : pos + 8 + length])
        pos = end
    return chunks if kind == b"IEND" else None


def _stored(piece: bytes, first: bool) -> bytes:
    """``piece`` as stored deflate blocks (after the zlib header when ``first``)."""
    view = memoryview(piece)
    parts = [_ZLIB_HEADER] if first else []
    for start in range(0, len(piece), _STORED_MAX):
        block = view[start : start + _STORED_MAX]
        parts.append(struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    return b"".join(parts)


def _inflated(chunks: list[memoryview], stop: threading.Event | None = None) -> Iterator[bytes]:
    """``chunks`` inflated, as stored deflate blocks, until the stream ends (or ``stop`` is set).

    Raises the inflater's own error (``_inflater``) for corrupt data.
    """
    inflater = _inflater()[0].decompressobj()
    first = True
    for chunk in chunks:
        for start in range(0, len(chunk), SLICE):
            pending: bytes | memoryview = chunk[start : start + SLICE]
            while pending and not (stop and stop.is_set()):
                piece = inflater.decompress(pending, MAX_OUT)
                pending = inflater.unconsumed_tail
                if piece:
                    yield _stored(piece, first)
                    first = False
            if inflater.eof or (stop and stop.is_set()):
                return


def _inflate(chunks: list[memoryview], out: queue.Queue, stop: threading.Event) -> None:
    """Inflate ``chunks`` into ``out`` (``_inflated``) until the stream ends or ``stop``; then _DONE.

    An inflate error is put in ``out`` too, to be raised by the consumer.
    """
    result: object = _DONE
    try:
        for piece in _inflated(chunks, stop):
            out.put(piece)
    except _inflater()[1] as exc:
        result = exc
    finally:
        out.put(result)


def decode(im: ImageFile.ImageFile, chunks: list[memoryview], pool: Executor | None = None) -> None:
    """Decode ``im`` from its IDAT ``chunks`` (``idat_chunks``), inflating on ``pool`` if any; then loaded.

    Raises ``DecodeError`` for corrupt or truncated image data.
    """
    codec, extents, _, args = im.tile[0]
    decoder = Image._getdecoder(im.mode, codec, args, im.decoderconfig)  # as ImageFile.load() does
    pixels = Image.core.new(im.mode, im.size)
    decoder.setimage(pixels, extents)
    try:
        if pool is None:
            finished = _unfilter_inline(decoder, chunks)
        else:
            finished = _unfilter_beside(decoder, chunks, pool)
    finally:
        decoder.cleanup()
    if not finished:
        raise DecodeError("the image data is truncated")
    im.im = pixels
    im.tile = []  # loaded: load() has nothing left to do
    im.readonly = 0


def _unfilter(decoder: Image.core.ImagingDecoder, piece: bytes) -> bool:
    """Hand ``piece`` to Pillow's decoder (un-filters and unpacks the rows); True once the image is whole."""
    status, code = decoder.decode(piece)  # the GIL is released meanwhile
    if status < 0:
        if code < 0:
            raise DecodeError(f"the image data is corrupt (decoder error {code})")
        return True
    return False


def _unfilter_inline(decoder: Image.core.ImagingDecoder, chunks: list[memoryview]) -> bool:
    """Inflate and un-filter in turn on this thread; whether the image came out whole."""
    try:
        return any(_unfilter(decoder, piece) for piece in _inflated(chunks))
    except _inflater()[1] as exc:
        raise DecodeError(f"the image data is corrupt: {exc}") from None


def _unfilter_beside(decoder: Image.core.ImagingDecoder, chunks: list[memoryview], pool: Executor) -> bool:
    """Inflate on ``pool`` while this thread un-filters; whether the image came out whole."""
    out: queue.Queue = queue.Queue(maxsize=16)  # at most 16 MiB of inflated rows waiting
    stop = threading.Event()
    job = pool.submit(_inflate, chunks, out, stop)
    finished = False
    try:
        while not finished:
            item = out.get()
            if item is _DONE:
                break
            if isinstance(item, Exception):
                raise DecodeError(f"the image data is corrupt: {item}")
            finished = _unfilter(decoder, item)
    finally:
        stop.set()
        while True:  # take what the worker still puts, so that it ends
            try:
                out.get_nowait()
            except queue.Empty:
                if job.done():
                    break
                wait([job], timeout=0.01)
    job.result()  # anything but an inflate error (MemoryError, ...) is raised as it is
    return finished
