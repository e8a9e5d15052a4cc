"""An optional watermark: text, or an image, laid over each rendition.

Sized relative to the rendition (``scale`` = watermark width / rendition
width), placed in a corner or the centre with a margin (a fraction of the
rendition's shorter side), blended at ``opacity``, and skipped on renditions
whose shorter side is below ``min_size`` pixels (thumbnails stay clean).
Off unless configured (see ``resize_config``); the defaults and bounds are
declared once, in ``watermark_settings``. An image watermark arrives decoded
(``imgpipe.engine.load_mark`` decodes its bytes): this module knows nothing of
the engine, and the engine knows it only as an overlay.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

from imgpipe.watermark_settings import DEFAULT_POSITION, MARGIN, MIN_SIZE, OPACITY, POSITIONS, SCALE

_REFERENCE_FONT_SIZE = 64


@dataclass(frozen=True)
class Watermark:
    """Exactly one of ``text`` or ``image`` (a decoded PIL image)."""

    text: str | None = None
    image: Image.Image | None = field(default=None, repr=False, compare=False)
    position: str = DEFAULT_POSITION
    opacity: float = OPACITY.default
    margin: float = MARGIN.default
    scale: float = SCALE.default
    min_size: int = MIN_SIZE.default

    def __post_init__(self) -> None:
        if (self.text is None) == (self.image is None):
            raise ValueError("a watermark needs exactly one of text or image")
        if self.image is not None and not isinstance(self.image, Image.Image):
            raise TypeError("a watermark image is a decoded image: imgpipe.engine.load_mark(data)")
        if self.text is not None and not self.text.strip():
            raise ValueError("watermark text is empty")
        if self.position not in POSITIONS:
            raise ValueError(f"watermark position {self.position!r} is not one of {list(POSITIONS)}")
        for name, declared in (
            ("opacity", OPACITY),
            ("margin", MARGIN),
            ("scale", SCALE),
            ("min_size", MIN_SIZE),
        ):
            value = getattr(self, name)
            if value not in declared:
                raise ValueError(f"watermark {name} {value!r} is not in {declared.bounds}")

    def mark(self) -> Image.Image:
        """The watermark at its own resolution, RGBA, full opacity."""
        if self.text is not None:
            return _text_mark(self.text)
        assert self.image is not None
        return _rgba(self.image)

    def apply(self, im: Image.Image) -> Image.Image:
        """A watermarked copy of ``im`` (``im`` itself when it is too small)."""
        if min(im.size) < self.min_size or self.opacity == 0:
            return im
        mark = self.mark()
        width = max(1, round(im.size[0] * self.scale))
        height = max(1, round(mark.size[1] * width / mark.size[0]))
        limit = max(1, im.size[1] - 2 * round(self.margin * min(im.size)))
        if height > limit:  # a tall mark on a wide picture: fit the height instead
            width, height = max(1, round(width * limit / height)), limit
        mark = mark.resize((width, height), Image.Resampling.LANCZOS)
        if self.opacity < 1:
            alpha = mark.getchannel("A").point(lambda v: round(v * self.opacity))
            mark.putalpha(alpha)
        x, y = _place(im.size, mark.size, self.position, round(self.margin * min(im.size)))
        out = im.copy()
        if out.mode == "RGBA":
            out.alpha_composite(mark, (x, y))
        elif out.mode == "LA":
            out = out.convert("RGBA")
            out.alpha_composite(mark, (x, y))
            out = out.convert("LA")
        else:
            target = "L" if out.mode == "L" else "RGB"
            out.paste(mark.convert(target), (x, y), mask=mark.getchannel("A"))
        return out


def _place(size: tuple[int, int], mark: tuple[int, int], position: str, margin: int) -> tuple[int, int]:
    (w, h), (mw, mh) = size, mark
    left, top = margin, margin
    right, bottom = w - mw - margin, h - mh - margin
    x = {"left": left, "right": right}.get(position.split("-")[-1], (w - mw) // 2)
    y = {"top": top, "bottom": bottom}.get(position.split("-")[0], (h - mh) // 2)
    return max(0, x), max(0, y)


def _rgba(im: Image.Image) -> Image.Image:
    return im if im.mode == "RGBA" else im.convert("RGBA")


@functools.lru_cache(maxsize=4)
def _text_mark(text: str) -> Image.Image:
    """White text with a dark outline, readable on light and dark pictures."""
    font = ImageFont.load_default(size=_REFERENCE_FONT_SIZE)
    stroke = max(1, _REFERENCE_FONT_SIZE // 16)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    im = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(im).text(
        (-left, -top),
        text,
        font=font,
        fill=(255, 255, 255, 255),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 255),
    )
    return im
