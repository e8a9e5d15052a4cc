"""Colour profiles: renditions are converted to sRGB and never carry the source's profile bytes.

A source's ICC profile is attacker-controlled bytes (a 64x64 JPEG can carry
megabytes of "profile"). It is used only if LittleCMS parses it, it describes
the pixels' colour space and it is at most ``MAX_ICC_BYTES``; then each
rendition is converted from it to sRGB and tagged with LittleCMS's own sRGB
profile (588 bytes). Profiles that fail any check are ignored: the pixels are
taken as sRGB, the web's default, and outputs carry no profile. Grayscale
profiles are dropped (gray is written untagged, i.e. sRGB's gamma).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from PIL import Image, ImageCms

MAX_ICC_BYTES = 1 << 20  # display and camera profiles are a few KB; LUT profiles a few hundred KB
_SRGB_NAMES = ("srgb",)


@functools.cache
def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def srgb_bytes() -> bytes:
    """LittleCMS's sRGB profile, its creation date zeroed so every output carries the same 588 bytes."""
    data = bytearray(srgb_profile().tobytes())
    data[24:36] = bytes(12)  # dateTimeNumber; the profile ID (84..99) is left unset (zeros) by LittleCMS
    return bytes(data)


@dataclass(frozen=True)
class ColourPlan:
    """How renditions get to sRGB: a transform (None: already sRGB) and the profile outputs embed."""

    transform: ImageCms.ImageCmsTransform | None = None
    profile: bytes | None = None

    def apply(self, im: Image.Image) -> Image.Image:
        if self.transform is None or im.mode not in ("RGB", "RGBA"):
            return im
        if im.mode == "RGBA":
            alpha = im.getchannel("A")
            out = ImageCms.applyTransform(im.convert("RGB"), self.transform)
            out.putalpha(alpha)
            return out
        return ImageCms.applyTransform(im, self.transform)


def _parse(icc: bytes) -> ImageCms.ImageCmsProfile | None:
    if len(icc) > MAX_ICC_BYTES or len(icc) < 128 or icc[16:20] != b"RGB ":
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    description = (profile.profile.profile_description or "").lower()
    return any(name in description for name in _SRGB_NAMES)


def plan(icc: bytes | None, mode: str) -> ColourPlan:
    """What to do with a source profile ``icc`` for pixels in ``mode`` (after normalising)."""
    if not icc or mode not in ("RGB", "RGBA"):
        return ColourPlan()
    profile = _parse(icc)
    if profile is None:
        return ColourPlan()
    if _is_srgb(profile):
        return ColourPlan(None, srgb_bytes())
    try:
        transform = ImageCms.buildTransform(profile, srgb_profile(), "RGB", "RGB")
    except (OSError, ValueError, ImageCms.PyCMSError):
        return ColourPlan()  # a profile LittleCMS reads but cannot convert from: taken as sRGB
    return ColourPlan(transform, srgb_bytes())
