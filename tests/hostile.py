"""Builders of hostile images: small files that cost a decoder far more than their size.

Each is built by hand around a real Pillow-encoded core, in milliseconds, and
scaled by its arguments so a test can keep it cheap. ``tests/test_hostile.py``
feeds them to the engine, the handler and the local runtime.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each JPEG segment; a scan's end includes its entropy-coded data."""
    out, i = [], 2
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, i, i + 2))
            break
        end = i + 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker == 0xDA:
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
        out.append((marker, i, end))
        i = end
    return out


def scan_bomb(width: int, height: int, extra_scans: int) -> bytes:
    """A progressive JPEG whose last scan (with its Huffman table) is repeated ``extra_scans`` times.

    libjpeg decodes every scan over every block: the CPU grows with
    width x height x scans while the file grows by ~40 bytes a scan (a flat
    picture codes a whole scan as a few end-of-band runs).
    """
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (128, 100, 90)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    segments = _segments(data)
    scans = [s for s in segments if s[0] == 0xDA]
    start = next(s[1] for s in segments if s[2] == scans[-1][1] and s[0] == 0xC4)
    repeat = data[start : scans[-1][2]]
    eoi = segments[-1][1]
    return data[:eoi] + repeat * extra_scans + data[eoi:]


def scans_in(data: bytes) -> int:
    return sum(1 for s in _segments(data) if s[0] == 0xDA)


def wide_png(width: int, height: int = 1, *, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A valid PNG of ``width`` x ``height`` zero pixels: it deflates ~1000:1."""
    bands = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = 1 + (width * bands * bit_depth + 7) // 8
    packer = zlib.compressobj(9)
    zero_row = b"\x00" * row
    idat = b"".join(packer.compress(zero_row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _riff(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def _u24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def animated_webp(width: int, height: int, frames: int = 2) -> bytes:
    """An animated WebP whose canvas is ``width`` x ``height``, each frame one 1x1 lossless pixel.

    The file is ~150 bytes; the decoder composes every frame on a full RGBA canvas.
    """
    buf = io.BytesIO()
    Image.new("RGBA", (1, 1), (200, 30, 30, 255)).save(buf, "WEBP", lossless=True)
    pixel = buf.getvalue()[12:]  # the VP8L chunk after RIFF....WEBP
    vp8x = _riff(b"VP8X", bytes([0x12, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1))
    anim = _riff(b"ANIM", b"\x00\x00\x00\x00" + struct.pack("<H", 0))
    frame = _riff(b"ANMF", _u24(0) + _u24(0) + _u24(0) + _u24(0) + _u24(100) + b"\x00" + pixel)
    body = b"WEBP" + vp8x + anim + frame * frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fat_icc_jpeg(size: int = 64, profile_bytes: int = 3_900_000) -> bytes:
    """A JPEG carrying ``profile_bytes`` of junk as its ICC profile (a valid-looking 'RGB ' header)."""
    header = struct.pack(">I", profile_bytes) + b"lcms" + b"\x02\x10\x00\x00mntrRGB XYZ "
    junk = header + bytes(range(256)) * ((profile_bytes - len(header)) // 256 + 1)
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (10, 120, 200)).save(buf, "JPEG", icc_profile=junk[:profile_bytes])
    return buf.getvalue()


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode() + b"\x00"
    return b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_)) + ascii_ + b"\x00" * (8 + 3 + 67)


# Adobe RGB (1998): its primaries adapted to D50 and its 563/256 gamma, as the published profile holds them.
ADOBE_RGB = {
    "r": (0.60974, 0.31111, 0.01947),
    "g": (0.20528, 0.62567, 0.06087),
    "b": (0.14919, 0.06322, 0.74457),
    "gamma": 563 / 256,
}


def rgb_profile(name: str = "Adobe RGB (1998) compatible", colorants: dict | None = None) -> bytes:
    """A real ICC v2 matrix/TRC display profile (LittleCMS reads and converts it), built byte by byte."""
    spec = colorants or ADOBE_RGB
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(spec["gamma"] * 256)) + b"\x00\x00"
    tags = [
        (b"desc", _desc(name)),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(*spec["r"])),
        (b"gXYZ", _xyz(*spec["g"])),
        (b"bXYZ", _xyz(*spec["b"])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\x00\x00\x00\x00no copyright, test data\x00"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\x00" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + b"\x02\x10\x00\x00mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\x00" * 24
        + struct.pack(">I", 0)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\x00" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
