"""The optional watermark: where it lands, how big, how opaque, and when it is skipped."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops

from imgpipe.engine import EngineOptions, load_mark, render_images
from imgpipe.renditions import Rendition, default_renditions
from imgpipe.watermark import Watermark
from tests import images

GREY = (128, 128, 128)


def grey(size=(1000, 600)) -> Image.Image:
    return Image.new("RGB", size, GREY)


def red_square_png(size=(100, 100)) -> bytes:
    return images.encode(Image.new("RGBA", size, (255, 0, 0, 255)), "PNG")


def red_square(size=(100, 100)) -> Image.Image:
    return load_mark(red_square_png(size))


def changed_box(before: Image.Image, after: Image.Image):
    return ImageChops.difference(before.convert("RGB"), after.convert("RGB")).getbbox()


def test_text_watermark_bottom_right_by_default():
    base = grey()
    out = Watermark(text="© Example").apply(base)
    assert out is not base and base.getpixel((10, 10)) == GREY  # the input is left alone
    left, top, right, bottom = changed_box(base, out)
    margin = round(0.02 * 600)
    assert right <= 1000 - margin and bottom <= 600 - margin
    assert right >= 1000 - margin - 3 and bottom >= 600 - margin - 8
    assert left > 500 and top > 400
    # about a quarter of the width (the outline adds a little)
    assert 0.2 * 1000 <= right - left <= 0.27 * 1000


@pytest.mark.parametrize(
    ("position", "check"),
    [
        ("top-left", lambda b: b[0] < 50 and b[1] < 50),
        ("top-right", lambda b: b[2] > 950 and b[1] < 50),
        ("bottom-left", lambda b: b[0] < 50 and b[3] > 550),
        ("center", lambda b: abs((b[0] + b[2]) / 2 - 500) <= 3 and abs((b[1] + b[3]) / 2 - 300) <= 3),
    ],
)
def test_positions(position, check):
    base = grey()
    box = changed_box(base, Watermark(image=red_square(), position=position).apply(base))
    assert check(box), box


def test_image_watermark_scale_margin_and_opacity():
    base = grey()
    mark = Watermark(image=red_square(), position="top-left", scale=0.1, margin=0.05, opacity=0.5)
    out = mark.apply(base)
    assert changed_box(base, out) == (30, 30, 130, 130)  # margin 5% of 600; width 10% of 1000
    r, g, _b = out.getpixel((80, 80))
    assert abs(r - (255 + 128) / 2) <= 2 and abs(g - 64) <= 2  # half red over grey


def test_small_renditions_are_not_watermarked():
    base = grey((299, 600))
    assert Watermark(text="x", min_size=300).apply(base) is base
    assert Watermark(text="x", min_size=299).apply(base) is not base


def test_transparent_image_keeps_its_alpha_under_the_watermark():
    base = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
    out = Watermark(image=red_square(), position="center", opacity=1.0).apply(base)
    assert out.mode == "RGBA"
    assert out.getpixel((300, 300)) == (255, 0, 0, 255)
    assert out.getpixel((10, 10)) == (0, 0, 0, 0)


def test_engine_watermarks_large_renditions_only():
    data = images.encode(Image.new("RGB", (2000, 1500), GREY), "PNG")
    plain = render_images(data, default_renditions())[1]
    mark = Watermark(image=red_square(), opacity=1.0)
    marked = render_images(data, default_renditions(), EngineOptions(watermark=mark))[1]
    assert changed_box(plain["thumb"], marked["thumb"]) is None  # 200 px < min size 300
    for name in ("medium", "large"):
        left, _top, right, _bottom = changed_box(plain[name], marked[name])
        width = plain[name].size[0]
        assert abs((right - left) - width / 4) <= 2, name
        assert right > width * 0.9


def test_watermark_bytes_are_decoded_once():
    data = red_square_png((40, 20))
    assert load_mark(data) is load_mark(data)
    assert load_mark(data).size == (40, 20)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "exactly one"),
        ({"text": "a", "image": b"x"}, "exactly one"),
        ({"text": "a", "position": "middle"}, "position"),
        ({"text": "a", "opacity": 1.5}, "opacity"),
        ({"text": "a", "scale": 0}, "scale"),
        ({"text": "   "}, "empty"),
    ],
)
def test_invalid_watermarks(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Watermark(**kwargs)


def test_watermark_on_rendition_sizes_from_config():
    # A 4:3 medium (800x600) gets a mark 200 px wide, 16 px from the corner.
    data = images.encode(Image.new("RGB", (1600, 1200), GREY), "JPEG", quality=95)
    mark = Watermark(image=red_square(), opacity=1.0, margin=16 / 600)
    renditions = [Rendition("medium", 800, 800, "contain", ("jpeg",))]
    _, ims = render_images(data, renditions, EngineOptions(watermark=mark))
    red = ims["medium"].getpixel((800 - 16 - 100, 600 - 16 - 100))
    assert red[0] > 240 and red[1] < 20
    assert ims["medium"].getpixel((800 - 10, 600 - 10)) != red


def test_an_image_watermark_arrives_decoded():
    # The watermark knows nothing of the engine: bytes are decoded by engine.load_mark first.
    with pytest.raises(TypeError, match="load_mark"):
        Watermark(image=red_square_png())
    assert Watermark(image=red_square()).mark().mode == "RGBA"
