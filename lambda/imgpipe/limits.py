"""What one image may cost, checked from its header before any pixel is decoded.

Three bounds, each refused with ``too_many_pixels`` or ``too_many_scans``:

- pixels: width x height against ``MAX_PIXELS``;
- rows: width x bands x bits per sample must fit the decoders' C ``int``
  (Pillow computes a row's size in bits there; past 2**31 it raises
  ``MemoryError`` instead of decoding);
- memory: what decoding and resizing need (bytes per pixel by format and mode,
  measured; see docs/hostile-inputs.md) against the function's memory (an
  animation also keeps its rendition frames: ``animation_bytes``);
- JPEG scans: each progressive scan is a pass over every block, so CPU grows
  with pixels x scans. More than ``MAX_JPEG_SCANS`` are refused before
  decoding, as libjpeg-turbo's ``djpeg -maxscans`` does.
"""

from __future__ import annotations

import math
import os

from PIL import Image

from imgpipe.errors import TooManyPixels, TooManyScans

MAX_JPEG_SCANS = 100  # libjpeg's own progressive scripts use 10; mozjpeg's searched ones stay under 70
MIB = 1 << 20
RUNTIME_RESERVE_MB = 256  # the runtime, the handler's imports, the source bytes' neighbours, outputs
ROW_BITS_LIMIT = (1 << 31) - 1
VCPU_MB = 1769  # Lambda memory that comes with one vCPU of CPU credit (engine_threads)

# Bytes per pixel Pillow stores for each mode; every other mode takes 4.
_STORAGE = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# What decode.normalise allocates beside the decoded image, per pixel.
_CONVERTED = {"L": 0, "LA": 0, "RGB": 0, "RGBA": 0, "1": 1, "F": 1}
_I16_CONVERTED = 5  # I;16 -> I (4 bytes) -> L (1 byte)
# Decoder working memory per pixel beyond the image, measured at 12 MP (docs/hostile-inputs.md):
# libwebp's animation decoder keeps two RGBA canvases and hands Pillow a third copy.
_DECODER_EXTRA = {"webp": 12, "avif": 4, "heif": 4, "tiff": 2, "gif": 0, "jpeg": 0}
_RESIZE_EXTRA = 3  # reduce() and LANCZOS intermediates, rounded up from the measurements
# Whatever the size: thread stacks and allocator arenas of the engine's pool, and the encoded
# outputs (measured: 17-20 MB beyond the per-pixel cost at 1.5 MP, after the codecs are loaded).
FIXED_DECODE_BYTES = 32 * MIB


def memory_budget(memory_mb: int, source_bytes: int = 0) -> int:
    """Bytes one decode may use in a function of ``memory_mb``: its memory less the runtime's share."""
    return max(0, (memory_mb - RUNTIME_RESERVE_MB) * MIB - source_bytes)


def engine_threads(memory_mb: int, cpus: int | None = None) -> int:
    """The engine's threads in a function of ``memory_mb``: one per vCPU of CPU credit it gets, rounded up.

    AWS: "At 1,769 MB, a function has the equivalent of one vCPU (one vCPU-second
    of credits per second)", in proportion below and above. Below that a second
    thread shortens nothing and costs CPU (on the bench's 12 MP PNG, 568 ms of CPU
    on two threads against 462 ms on one), so it gets one; above, one more thread
    for each vCPU begun, at most the CPUs it sees and 4.
    """
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(4, cpus, math.ceil(memory_mb / VCPU_MB)))


def storage_bytes(mode: str) -> int:
    return _STORAGE.get(mode, 4)


def _converted_bytes(mode: str) -> int:
    if mode.startswith("I;16"):
        return _I16_CONVERTED
    return _CONVERTED.get(mode, 4)


def _bits_per_sample(im: Image.Image) -> int:
    rawmode = str(im.tile[0][3] if im.tile and isinstance(im.tile[0][3], str) else im.mode)
    if ";16" in rawmode or im.mode.startswith("I;16"):
        return 16
    if im.mode in ("I", "F") or ";32" in rawmode:
        return 32
    return 1 if im.mode == "1" else 8


def _png_raw_bytes(im: Image.Image) -> float:
    return len(im.getbands()) * _bits_per_sample(im) / 8


def bytes_per_pixel(im: Image.Image, fmt: str) -> float:
    """Peak memory per decoded pixel of ``im`` (opened, not loaded) through decode, normalise, resize."""
    extra = _png_raw_bytes(im) if fmt == "png" else _DECODER_EXTRA.get(fmt, 4)
    return storage_bytes(im.mode) + _converted_bytes(im.mode) + extra + _RESIZE_EXTRA


def decode_bytes(im: Image.Image, fmt: str) -> int:
    """What rendering ``im`` (opened, not loaded; JPEG: at its DCT-scaled size) needs at its peak."""
    width, height = im.size
    return round(width * height * bytes_per_pixel(im, fmt)) + FIXED_DECODE_BYTES


# An animation keeps every rendition's frames until they are encoded: RGBA, plus the encoder's
# copy of each frame as it converts them to one mode (animation.encode).
ANIMATION_FRAME_BYTES = 8


def animation_bytes(frames: int, sizes: list[tuple[int, int]]) -> int:
    """What keeping ``frames`` frames of renditions of ``sizes`` costs until they are encoded."""
    return frames * sum(width * height for width, height in sizes) * ANIMATION_FRAME_BYTES


def check_header(im: Image.Image, fmt: str, max_pixels: int, budget: int | None) -> None:
    """Every check an opened (not loaded) image must pass before it is decoded."""
    check_pixels(im.size[0], im.size[1], max_pixels)
    check_rows(im)
    check_memory(im, fmt, budget)


def check_scaled_memory(im: Image.Image, size: tuple[int, int], fmt: str, budget: int | None) -> None:
    """As ``check_memory``, for a source its decoder shrinks while decoding to ``size`` (a still WebP:
    ``webpdecode``): the reduced image and the resize's intermediates, no full-size canvas."""
    if budget is None:
        return
    need = round(size[0] * size[1] * (storage_bytes(im.mode) + _RESIZE_EXTRA)) + FIXED_DECODE_BYTES
    if need > budget:
        raise TooManyPixels(
            f"{im.size[0]}x{im.size[1]} {im.mode} {fmt}, decoded at {size[0]}x{size[1]}, needs about "
            f"{need / MIB:,.0f} MB; the function's memory allows {budget / MIB:,.0f} MB"
        )


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    pixels = width * height
    if pixels > max_pixels:
        raise TooManyPixels(
            f"{width}x{height} is {pixels:,} pixels; the limit (MAX_PIXELS) is {max_pixels:,} pixels"
        )


def check_rows(im: Image.Image) -> None:
    """Refuse rows wider than the decoders can count in bits (width x bands x bits per sample)."""
    width = im.size[0]
    bits = width * max(len(im.getbands()) * _bits_per_sample(im), storage_bytes(im.mode) * 8)
    if bits > ROW_BITS_LIMIT:
        raise TooManyPixels(
            f"rows of {width:,} pixels x {len(im.getbands())} bands x {_bits_per_sample(im)} bits are "
            f"wider than the decoder can hold ({ROW_BITS_LIMIT:,} bits a row)"
        )


def check_memory(im: Image.Image, fmt: str, budget: int | None) -> None:
    """Refuse an image whose decode would need more than ``budget`` bytes (None: no memory bound)."""
    if budget is None:
        return
    width, height = im.size
    need = decode_bytes(im, fmt)
    if need > budget:
        raise TooManyPixels(
            f"{width}x{height} {im.mode} {fmt} needs about {need / MIB:,.0f} MB to decode; "
            f"the function's memory allows {budget / MIB:,.0f} MB"
        )


def jpeg_scans(data: bytes, stop_after: int) -> int:
    """Start-of-scan markers in a JPEG, counted without decoding (stops once past ``stop_after``)."""
    scans, pos, end = 0, 2, len(data)
    while pos + 4 <= end and scans <= stop_after:
        if data[pos] != 0xFF:
            return scans  # not a marker: malformed, the decoder will say so
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            return scans
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            scans += 1
            pos = _after_entropy_data(data, pos)
    return scans


def _after_entropy_data(data: bytes, pos: int) -> int:
    """The next marker after a scan's entropy-coded data (0xFF00 stuffing and restarts skipped)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos += 1 if following == 0xFF else 2
            continue
        return pos


def check_scans(data: bytes, max_scans: int) -> None:
    scans = jpeg_scans(data, max_scans)
    if scans > max_scans:
        raise TooManyScans(
            f"the JPEG has more than {max_scans} progressive scans (each one a pass over the whole image); "
            f"the limit is {max_scans}"
        )
