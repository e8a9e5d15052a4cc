"""Still WebP decoded by libwebp at a reduced size (scaled decoding), as libvips does.

Pillow's WebP plugin decodes every file through libwebp's animation decoder:
the whole canvas as RGBA, then copied into the image (a 17 MP photo peaks at
278 MiB and spends 0.9 s of CPU there). libwebp itself can scale while it
decodes (``WebPDecoderOptions.use_scaling``, an area-averaging rescaler run
row by row), so only the reduced image is ever held. Pillow 13 does not offer
it, so this calls the libwebp that Pillow's own wheel carries
(``pillow.libs/libwebp-*.so``, the one its plugin already loaded) through
``ctypes``, with the advanced decoding API of ``webp/decode.h``
(``WebPInitDecoderConfig``, ``WebPGetFeatures``, ``WebPDecode``), into memory
this module owns; libwebp checks the ABI version it was built with.

Only still images (no animation) take this path, decoded to RGB or, with an
alpha channel, to RGBA (not premultiplied, as Pillow's plugin gives). The size
keeps ``GAP`` times the largest rendition's resolution: the largest rendition
is then libwebp's rescaler output itself, the others LANCZOS from it (>= 41 dB
against a full decode and one LANCZOS resize on the tests' synthetic photo,
>= 44 dB on the corpus photographs). Where no libwebp can be loaded, ``decode``
returns None and the caller uses Pillow.
"""

from __future__ import annotations

import ctypes
import functools
import math
from pathlib import Path

from PIL import Image

# Decoded pixels per pixel of the largest rendition, at least (as JPEG's DRAFT_GAP). Measured
# (bench, 17 MP night-sky WebP; tests' synthetic photo): 1.0 -> 280 ms CPU, worst rendition 48.9 dB
# (synthetic 41.1 dB); 1.25 -> 361 ms, 48.9 dB (41.4 dB): what LANCZOS adds after libwebp's
# area-averaging rescaler is not worth a 29 % longer render.
GAP = 1.0
LIBRARY_GLOB = "libwebp-*.so*"  # in pillow.libs/ beside PIL/, as auditwheel names it
ABI_VERSION = 0x0209  # WEBP_DECODER_ABI_VERSION of libwebp 1.0; libwebp accepts any 2.x
MODE_RGB, MODE_RGBA = 0, 1  # WEBP_CSP_MODE
STATUS = {
    1: "out of memory",
    2: "invalid parameter",
    3: "bitstream error",
    4: "unsupported feature",
    5: "suspended",
    6: "user abort",
    7: "not enough data (truncated)",
}

_int, _u32, _size, _ptr = ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t, ctypes.c_void_p


class DecodeError(ValueError):
    """libwebp refused the data (``STATUS``)."""


class _Features(ctypes.Structure):  # WebPBitstreamFeatures
    _fields_ = [
        ("width", _int),
        ("height", _int),
        ("has_alpha", _int),
        ("has_animation", _int),
        ("format", _int),
        ("pad", _u32 * 5),
    ]


class _RGBA(ctypes.Structure):  # WebPRGBABuffer
    _fields_ = [("rgba", _ptr), ("stride", _int), ("size", _size)]


class _YUVA(ctypes.Structure):  # WebPYUVABuffer: only its size matters (the union's)
    _fields_ = [
        *[(name, _ptr) for name in ("y", "u", "v", "a")],
        *[(name, _int) for name in ("y_stride", "u_stride", "v_stride", "a_stride")],
        *[(name, _size) for name in ("y_size", "u_size", "v_size", "a_size")],
    ]


class _Buffers(ctypes.Union):
    _fields_ = [("RGBA", _RGBA), ("YUVA", _YUVA)]


class _DecBuffer(ctypes.Structure):  # WebPDecBuffer
    _fields_ = [
        ("colorspace", _int),
        ("width", _int),
        ("height", _int),
        ("is_external_memory", _int),
        ("u", _Buffers),
        ("pad", _u32 * 4),
        ("private_memory", _ptr),
    ]


_OPTIONS = [
    "bypass_filtering",
    "no_fancy_upsampling",
    "use_cropping",
    "crop_left",
    "crop_top",
    "crop_width",
    "crop_height",
    "use_scaling",
    "scaled_width",
    "scaled_height",
    "use_threads",
    "dithering_strength",
    "flip",
    "alpha_dithering_strength",
]


class _Options(ctypes.Structure):  # WebPDecoderOptions
    _fields_ = [*[(name, _int) for name in _OPTIONS], ("pad", _u32 * 5)]


class _Config(ctypes.Structure):  # WebPDecoderConfig
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


@functools.cache
def _library() -> ctypes.CDLL | None:
    """Pillow's own libwebp (its wheel's ``pillow.libs``); None where Pillow was built otherwise."""
    libs = Path(Image.__file__).resolve().parent.parent / "pillow.libs"
    for path in sorted(libs.glob(LIBRARY_GLOB)):
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), _int]
        lib.WebPGetFeaturesInternal.argtypes = [ctypes.c_char_p, _size, ctypes.POINTER(_Features), _int]
        lib.WebPDecode.argtypes = [ctypes.c_char_p, _size, ctypes.POINTER(_Config)]
        config = _Config()
        if lib.WebPInitDecoderConfigInternal(ctypes.byref(config), ABI_VERSION):
            return lib
    return None


def available() -> bool:
    return _library() is not None


def scaled_size(width: int, height: int, needed: float) -> tuple[int, int]:
    """The decode size that keeps ``GAP`` x ``needed`` pixels per source pixel (at most the source's)."""
    scale = min(1.0, needed * GAP)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def decode(data: bytes, needed: float) -> Image.Image | None:
    """A still WebP at ``scaled_size`` (RGB, or RGBA with alpha); None for an animation or without libwebp.

    Raises ``DecodeError`` when libwebp cannot decode the data.
    """
    lib = _library()
    if lib is None:
        return None
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), ABI_VERSION):
        return None
    status = lib.WebPGetFeaturesInternal(data, len(data), ctypes.byref(config.input), ABI_VERSION)
    if status != 0:
        raise DecodeError(STATUS.get(status, f"status {status}"))
    features = config.input
    if features.has_animation:
        return None
    width, height = scaled_size(features.width, features.height, needed)
    mode, bands = ("RGBA", 4) if features.has_alpha else ("RGB", 3)
    pixels = ctypes.create_string_buffer(width * height * bands)
    if (width, height) != (features.width, features.height):
        config.options.use_scaling = 1
        config.options.scaled_width, config.options.scaled_height = width, height
    config.output.colorspace = MODE_RGBA if bands == 4 else MODE_RGB
    config.output.is_external_memory = 1
    config.output.u.RGBA.rgba = ctypes.addressof(pixels)
    config.output.u.RGBA.stride = width * bands
    config.output.u.RGBA.size = len(pixels)
    status = lib.WebPDecode(data, len(data), ctypes.byref(config))  # the GIL is released meanwhile
    if status != 0:
        raise DecodeError(STATUS.get(status, f"status {status}"))
    return Image.frombytes(mode, (width, height), pixels)
