"""Rendition geometry: output sizes, crop regions and EXIF orientation, as numbers only.

Never upscales:

``contain``  fit inside width x height, keeping the aspect ratio. A smaller
             source keeps its size.
``cover``    fill width x height, cropping the centre (``crop: centre``) or the
             most interesting window (``crop: attention``, ``attention``). A source smaller than
             the box in either direction is cropped to the box's aspect ratio
             at source resolution (a 100x50 source for a 200x200 thumb gives a
             50x50 centre square), never enlarged.

Sizes are in upright coordinates (after EXIF orientation); ``stored_box`` maps a
region back to the pixels as stored, at the scale of a (reduced) decode.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from imgpipe.renditions import Rendition

# EXIF orientation -> the transpose that makes the stored pixels upright.
ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_AXES = {5, 6, 7, 8}


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


def stored_box(
    geo: Geometry, swap: bool, full_w: int, full_h: int, sx: float, sy: float
) -> tuple[float, ...]:
    """The region ``geo`` shows, in the stored pixels of a decode at ``sx`` x ``sy`` of the original."""
    cw, ch = (geo.crop[1], geo.crop[0]) if swap else geo.crop
    x0, y0 = geo.origin if geo.origin is not None else ((full_w - cw) / 2, (full_h - ch) / 2)
    return (x0 * sx, y0 * sy, (x0 + cw) * sx, (y0 + ch) * sy)
