"""crop: attention (lambda/imgpipe/attention.py): cover crops that keep an off-centre subject."""

from __future__ import annotations

import functools
import io
import json
import math
import random

import pytest
from PIL import Image, ImageDraw, ImageFilter

from imgpipe import attention
from imgpipe.engine import render
from imgpipe.errors import ConfigError
from imgpipe.renditions import Rendition, load_renditions
from tests import images

SKIN = (224, 172, 140)
PETAL = (200, 30, 160)


def background(size: tuple[int, int], seed: int = 3) -> Image.Image:
    """A dull, softly textured scene: a grey-green gradient with blurred noise (a wall, a sky).

    Each caller gets its own copy to draw on; the scene itself is made once per size and seed
    (its noise is one Python random number a pixel: 0.1-0.2 s of CPU each, sixteen tests here)."""
    return _background(size, seed).copy()


@functools.cache
def _background(size: tuple[int, int], seed: int) -> Image.Image:
    rnd = random.Random(seed)
    noise = Image.frombytes("L", size, bytes(rnd.randrange(90, 150) for _ in range(size[0] * size[1])))
    noise = noise.filter(ImageFilter.GaussianBlur(6))
    gradient = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (noise, Image.blend(noise, gradient, 0.3), noise))


def face(im: Image.Image, centre: tuple[int, int], radius: int = 45) -> None:
    """A skin-toned face: smooth, few edges (eyes and a mouth)."""
    x, y = centre
    draw = ImageDraw.Draw(im)
    draw.ellipse((x - radius, y - radius * 1.25, x + radius, y + radius * 1.25), fill=SKIN)
    for dx in (-radius // 3, radius // 3):
        draw.ellipse((x + dx - 5, y - 15, x + dx + 5, y - 5), fill=(40, 30, 30))
    draw.arc((x - 18, y + 5, x + 18, y + 30), 20, 160, fill=(150, 60, 60), width=3)


def flower(im: Image.Image, centre: tuple[int, int], radius: int = 45) -> None:
    """A saturated, detailed subject: petals around a striped centre."""
    x, y = centre
    draw = ImageDraw.Draw(im)
    for angle in range(0, 360, 45):
        dx = round(radius * 0.6 * math.cos(math.radians(angle)))
        dy = round(radius * 0.6 * math.sin(math.radians(angle)))
        draw.ellipse((x + dx - 18, y + dy - 18, x + dx + 18, y + dy + 18), fill=PETAL, outline=(90, 0, 60))
    for i in range(-12, 13, 4):
        draw.line((x + i, y - 12, x + i, y + 12), fill=(250, 210, 0) if i % 8 else (60, 40, 0), width=2)


def share(im: Image.Image, colour: tuple[int, int, int], tolerance: int = 30) -> int:
    """Pixels of ``im`` within ``tolerance`` of ``colour``."""
    rgb = im.convert("RGB")
    pixels = rgb.get_flattened_data()
    return sum(all(abs(a - b) <= tolerance for a, b in zip(p, colour, strict=True)) for p in pixels)


def cover(data: bytes, crop: str, size: int = 200) -> Image.Image:
    rendition = Rendition("thumb", size, size, "cover", ("webp",), 95, crop)
    [output] = render(data, [rendition]).outputs
    return Image.open(io.BytesIO(output.data))


SCENES = [  # (scene size, subject centre): every subject lies outside the centre crop
    ((800, 400), (90, 200)),
    ((800, 400), (700, 180)),
    ((400, 800), (200, 90)),
    ((400, 800), (210, 700)),
    ((1200, 500), (1080, 300)),
]


@pytest.mark.parametrize(("draw", "colour"), [(face, SKIN), (flower, PETAL)], ids=["face", "flower"])
@pytest.mark.parametrize(("size", "centre"), SCENES)
def test_attention_crop_keeps_an_off_centre_subject_that_the_centre_crop_cuts_out(draw, colour, size, centre):
    scene = background(size)
    draw(scene, centre)
    data = images.encode(scene, "JPEG", quality=92)
    whole = share(scene.resize((scene.width * 200 // min(size), scene.height * 200 // min(size))), colour)
    assert share(cover(data, "centre"), colour) < whole * 0.2  # the centre crop misses it
    assert share(cover(data, "attention"), colour) > whole * 0.9  # attention keeps it whole


def test_attention_without_a_subject_is_the_centre_crop():
    """A plain grey ramp scores the same everywhere it could be cut: equal scores keep the centre."""
    ramp = Image.linear_gradient("L").rotate(90).resize((400, 200))
    data = images.encode(ramp, "PNG")
    centre, attended = cover(data, "centre", 100), cover(data, "attention", 100)
    assert list(centre.get_flattened_data()) == list(attended.get_flattened_data())


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_attention_finds_the_subject_in_upright_coordinates(orientation):
    """The subject is right of centre as the picture is shown, whatever way the pixels are stored."""
    upright = background((800, 400))
    flower(upright, (700, 200))
    turn = Image.Transpose
    method = {1: None, 3: turn.ROTATE_180, 6: turn.ROTATE_90, 8: turn.ROTATE_270}  # as tests/images.py stores
    stored = upright.transpose(method[orientation]) if method[orientation] else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = images.encode(stored, "JPEG", quality=92, exif=exif.tobytes())
    thumb = cover(data, "attention")
    assert thumb.size == (200, 200)
    # the right 400 of 800 px kept: the flower (x 640-760) lands in the thumb's right half, whole
    whole = share(upright.resize((400, 200)), PETAL)
    assert share(thumb.crop((100, 0, 200, 200)), PETAL) > whole * 0.9


def test_window_slides_along_the_axis_the_crop_cuts_and_keeps_the_subject():
    scene = background((600, 300))
    flower(scene, (80, 150))  # petals span x 35..125
    sample = 600 / attention.SAMPLE_EDGE  # the search's resolution: one pixel of the small copy
    x0, y0 = attention.window(scene, (300, 300))
    assert y0 == 0.0 and x0 <= 35 + sample and x0 + 300 >= 125
    tall = scene.transpose(Image.Transpose.ROTATE_90)  # petals now span y 475..565
    x0, y0 = attention.window(tall, (300, 300))
    assert x0 == 0.0 and 265 - sample <= y0 <= 300


def test_crop_is_validated():
    good = [{"name": "t", "width": 100, "height": 100, "fit": "cover", "crop": "attention"}]
    assert load_renditions(json.dumps(good))[0].crop == "attention"
    assert load_renditions(json.dumps([{"name": "t", "width": 1, "height": 1}]))[0].crop == "centre"
    for bad, message in (
        ({"fit": "cover", "crop": "faces"}, "is not one of"),
        ({"fit": "contain", "crop": "attention"}, "needs fit 'cover'"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_renditions(json.dumps([{"name": "t", "width": 100, "height": 100, **bad}]))


def test_every_attention_rendition_of_one_image_keeps_the_subject():
    """One saliency map serves every attention rendition of an image, whatever its aspect ratio;
    the wide one spans the whole width of a JPEG decoded at 3/8, whose size rounds up (338 of 337.5 px)
    and must still slide vertically."""
    scene = background((900, 600))
    flower(scene, (800, 500))  # bottom right
    data = images.encode(scene, "JPEG", quality=92)
    square = Rendition("square", 200, 200, "cover", ("webp",), 95, "attention")
    wide = Rendition("wide", 300, 100, "cover", ("webp",), 95, "attention")
    outputs = {o.name: Image.open(io.BytesIO(o.data)) for o in render(data, [square, wide]).outputs}
    assert outputs["square"].size == (200, 200) and outputs["wide"].size == (300, 100)
    assert share(outputs["square"], PETAL) > share(scene.resize((300, 200)), PETAL) * 0.9
    assert share(outputs["wide"], PETAL) > share(scene.resize((300, 200)), PETAL) * 0.9
