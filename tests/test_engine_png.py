"""Big PNGs inflate with ISA-L, on a second thread when there is one (``imgpipe.pngdecode``): the same
pixels, the same errors."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageOps

from imgpipe import pngdecode
from imgpipe.engine import EngineOptions, render
from imgpipe.errors import PermanentError
from imgpipe.renditions import default_renditions
from tests import images

SIZE = (1600, 1000)  # 1.6 MP: over pngdecode.MIN_PIXELS


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data)."""
    out, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        out.append((kind, png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def build(parts: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in parts
    )
    return b"\x89PNG\r\n\x1a\n" + body


def one_idat(png: bytes) -> bytes:
    """The same PNG with all its image data in one IDAT chunk."""
    parts = chunks(png)
    data = b"".join(d for k, d in parts if k == b"IDAT")
    head = [p for p in parts if p[0] not in (b"IDAT", b"IEND")]
    return build([*head, (b"IDAT", data), (b"IEND", b"")])


def photo(mode: str) -> Image.Image:
    im = images.photo(*SIZE)
    if mode in ("RGBA", "LA"):
        im.putalpha(ImageOps.invert(im.convert("L")))
    return im.convert(mode)


@functools.cache
def photo_png(mode: str) -> bytes:
    """``photo(mode)`` as Pillow writes it, encoded once for the module (bytes: nothing can change
    them): 0.1-0.3 s of CPU a 1.6 MP encode, and most tests here start from one of these four."""
    return images.encode(photo(mode), "PNG")


@pytest.fixture(scope="module")
def two_threads():
    with ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(params=["one thread", "two threads"])
def pool(request, two_threads):
    return two_threads if request.param == "two threads" else None


@pytest.fixture(params=["isal", "zlib"])
def inflater(request, monkeypatch):
    """pngdecode with ISA-L's inflate (as packaged), or with the standard library's (without ``isal``)."""
    if request.param == "zlib":
        monkeypatch.setattr(pngdecode, "_inflater", lambda: (zlib, (zlib.error,)))
    else:
        from isal import isal_zlib

        assert pngdecode._inflater()[0] is isal_zlib
    return request.param


def test_isal_is_the_inflater_that_ships():
    # requirements.txt pins isal for lambda.zip: ISA-L inflates a 12 MP photo PNG in 54 ms of CPU
    # where zlib 1.2 takes 125 ms (docs/performance.md), so one thread takes this path too.
    assert pngdecode.fast()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("layout", ["64 KiB IDATs", "one IDAT"])
def test_pngdecode_gives_the_same_pixels_as_pillows_load(mode, layout, pool, inflater):
    data = photo_png(mode)
    if layout == "one IDAT":
        data = one_idat(data)
    assert (sum(k == b"IDAT" for k, _ in chunks(data)) > 1) is (layout == "64 KiB IDATs")
    im = Image.open(io.BytesIO(data))
    idat = pngdecode.idat_chunks(im, data)
    assert idat is not None
    pngdecode.decode(im, idat, pool)
    reference = Image.open(io.BytesIO(data))
    reference.load()
    assert (im.mode, im.size) == (reference.mode, reference.size)
    assert im.tobytes() == reference.tobytes()


@pytest.mark.parametrize("threads", [1, 2])
def test_renditions_are_the_same_bytes_either_way(monkeypatch, threads):
    data = photo_png("RGB")
    fast = render(data, default_renditions(), EngineOptions(threads=threads))
    monkeypatch.setattr(pngdecode, "MIN_PIXELS", 10**12)  # every PNG through Pillow's load()
    pillow = render(data, default_renditions(), EngineOptions(threads=threads))
    assert [o.data for o in fast.outputs] == [o.data for o in pillow.outputs]


def with_chunk_before_iend(png: bytes, kind: bytes, data: bytes) -> bytes:
    parts = chunks(png)
    return build([*parts[:-1], (kind, data), parts[-1]])


@pytest.mark.parametrize(
    "case",
    ["small", "interlaced", "16-bit", "palette", "animated", "text after the image data", "truncated"],
)
def test_other_pngs_are_left_to_pillow(case):
    if case == "small":
        data = images.encode(images.photo(800, 600), "PNG")
    elif case == "interlaced":
        # Pillow cannot write Adam7: set the flag in IHDR; the stream is not decoded here.
        parts = chunks(photo_png("RGB"))
        ihdr = parts[0][1][:12] + b"\x01"
        data = build([(b"IHDR", ihdr), *parts[1:]])
    elif case == "16-bit":
        data = images.encode(photo("L").convert("I;16"), "PNG")
    elif case == "palette":
        # The fast quantizer: 0.07 s of CPU where median cut takes 0.57; a palette PNG either way.
        data = images.encode(photo("RGB").quantize(64, method=Image.Quantize.FASTOCTREE), "PNG")
    elif case == "animated":
        first = photo("RGB")  # compress_level 1: how hard the frames are deflated is not the point
        data = images.encode(
            first, "PNG", save_all=True, append_images=[ImageOps.flip(first)], compress_level=1
        )
        assert Image.open(io.BytesIO(data)).n_frames == 2
    elif case == "text after the image data":
        data = with_chunk_before_iend(photo_png("RGB"), b"tEXt", b"Comment\x00late")
    else:
        data = photo_png("RGB")
        data = data[: len(data) // 2]
    assert pngdecode.idat_chunks(Image.open(io.BytesIO(data)), data) is None


def test_a_late_exif_orientation_is_still_applied():
    # eXIf after the image data: Pillow's load() reads it, so such a PNG goes that way.
    upright = images.quadrants(1600, 1000)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = images.encode(upright.transpose(Image.Transpose.ROTATE_90), "PNG")
    data = with_chunk_before_iend(stored, b"eXIf", exif.tobytes()[6:])
    assert pngdecode.idat_chunks(Image.open(io.BytesIO(data)), data) is None
    result = render(data, [default_renditions()[2]], EngineOptions(threads=2))
    out = Image.open(io.BytesIO(result.outputs[0].data)).convert("RGB")
    assert out.size == (1600, 1000)
    for xy, colour in (((400, 250), images.TOP_LEFT), ((1200, 750), images.BOTTOM_RIGHT)):
        assert all(abs(a - b) <= 24 for a, b in zip(out.getpixel(xy), colour, strict=True)), xy


def error_code(data: bytes, threads: int) -> str:
    with pytest.raises(PermanentError) as err:
        render(data, default_renditions(), EngineOptions(threads=threads))
    return err.value.code


# One thread without ISA-L is Pillow's load(), which stops once the rows are filled: bytes that
# still inflate that far are not found out there (as before pngdecode took one thread).
CHECKED = pytest.mark.parametrize(
    ("threads", "inflater"), [(1, "isal"), (2, "isal"), (2, "zlib")], indirect=["inflater"]
)


@CHECKED
def test_corrupt_image_data_is_a_corrupt_image(threads, inflater):
    parts = chunks(one_idat(photo_png("RGB")))
    kind, idat = parts[-2]
    broken = idat[:2] + bytes(b ^ 0x5A for b in idat[2:2000]) + idat[2000:]
    data = build([*parts[:-2], (kind, broken), parts[-1]])
    assert pngdecode.idat_chunks(Image.open(io.BytesIO(data)), data) is not None
    assert error_code(data, threads) == "corrupt_image"


@CHECKED
def test_image_data_that_ends_early_is_a_corrupt_image(threads, inflater):
    # A whole zlib stream of half the rows, in a well-formed file.
    parts = chunks(photo_png("RGB"))
    raw = zlib.decompress(b"".join(d for k, d in parts if k == b"IDAT"))
    head = [p for p in parts if p[0] not in (b"IDAT", b"IEND")]
    data = build([*head, (b"IDAT", zlib.compress(raw[: len(raw) // 2])), (b"IEND", b"")])
    assert pngdecode.idat_chunks(Image.open(io.BytesIO(data)), data) is not None
    assert error_code(data, threads) == "corrupt_image"


def test_one_thread_without_isal_leaves_a_big_png_to_pillow(monkeypatch):
    # Without ISA-L, inflating apart would be zlib's same work plus the re-wrapping: no gain.
    called = []
    monkeypatch.setattr(pngdecode, "_inflater", lambda: (zlib, (zlib.error,)))
    monkeypatch.setattr(pngdecode, "decode", lambda *a: called.append(a))
    data = photo_png("RGB")
    result = render(data, default_renditions(), EngineOptions(threads=1))
    assert called == []
    assert len(result.outputs) == 6


def test_one_thread_with_isal_takes_pngdecode(monkeypatch):
    calls = []
    decode = pngdecode.decode
    monkeypatch.setattr(pngdecode, "decode", lambda *a: calls.append(a[2:]) or decode(*a))
    data = photo_png("RGB")
    result = render(data, default_renditions(), EngineOptions(threads=1))
    assert calls == [(None,)]  # inflated on this thread: no pool
    assert len(result.outputs) == 6
