"""Still WebPs decode at a reduced size in libwebp (``imgpipe.webpdecode``): less memory, same renditions."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageOps

from imgpipe import limits, webpdecode
from imgpipe.decode import decode_source
from imgpipe.engine import EngineOptions, render, render_images
from imgpipe.errors import PermanentError
from imgpipe.renditions import Rendition, default_renditions
from quality import psnr, reference_image
from tests import images

SIZE = (3000, 2000)


@pytest.fixture(scope="module")
def photo_webp() -> bytes:
    return images.encode(images.photo(*SIZE), "WEBP", quality=90)


@pytest.fixture(scope="module")
def alpha_webp() -> bytes:
    im = images.photo(*SIZE)
    im.putalpha(ImageOps.invert(im.convert("L")))
    return images.encode(im, "WEBP", quality=90)


def test_pillows_wheel_carries_the_libwebp_this_path_uses():
    # Without it a WebP would still decode (by Pillow, in full): this says the fast path is on.
    assert webpdecode.available()


def test_a_big_still_webp_is_decoded_at_what_the_largest_rendition_needs(photo_webp):
    # 1600 px wide from 3000: the decode is 1600 px wide (webpdecode.GAP), never the full 6 MP.
    decoded = decode_source(photo_webp, default_renditions(), EngineOptions())
    assert decoded.source.image.size == (1600, 1067)
    assert decoded.source.image.mode == "RGB"


@pytest.mark.parametrize("fixture", ["photo_webp", "alpha_webp"])
def test_every_rendition_stays_within_40_db_of_a_full_lanczos_resize(fixture, request):
    data = request.getfixturevalue(fixture)
    renditions = [*default_renditions(), Rendition("tiny", 96, 96, "cover", ("webp",))]
    _, made = render_images(data, renditions)
    for rendition in renditions:
        reference = reference_image(data, rendition)
        assert made[rendition.name].mode == reference.mode
        assert psnr(made[rendition.name], reference) >= 40, rendition.name


def test_transparency_survives_the_scaled_decode():
    im = images.photo(*SIZE)
    alpha = Image.new("L", SIZE, 255)
    alpha.paste(0, (0, 0, SIZE[0] // 3, SIZE[1]))  # the left third fully transparent
    im.putalpha(alpha)
    data = images.encode(im, "WEBP", quality=90)
    out = render(data, [Rendition("small", 300, 300, "contain", ("webp",), 95)]).outputs[0]
    with Image.open(io.BytesIO(out.data)) as small:
        assert small.mode == "RGBA"
        assert small.getpixel((40, 100))[3] == 0
        assert small.getpixel((260, 100))[3] == 255


def test_a_webp_no_bigger_than_its_rendition_is_decoded_whole():
    data = images.encode(images.photo(300, 200), "WEBP", quality=90)
    decoded = decode_source(data, [Rendition("big", 1600, 1600, "contain", ("webp",))], EngineOptions())
    assert decoded.source.image.size == (300, 200)


def test_an_animated_webp_is_left_to_pillow_and_stays_animated():
    frames = [images.photo(160, 120, seed=s) for s in (1, 2, 3)]
    data = images.animation(frames, "WEBP", [100, 100, 100])
    outputs = render(data, [Rendition("small", 80, 80, "contain", ("webp",), 90)]).outputs
    assert outputs[0].frames == 3


def test_a_truncated_big_webp_is_corrupt_image(photo_webp):
    with pytest.raises(PermanentError) as caught:
        render(photo_webp[: len(photo_webp) // 2], default_renditions())
    assert caught.value.code == "corrupt_image"


def test_the_memory_check_counts_the_reduced_decode_not_the_full_canvas(photo_webp):
    # 6 MP through Pillow's plugin is estimated at ~140 MB (three RGBA canvases); decoded at
    # 1600x1067 it needs ~44 MB. A function with 80 MB to spare renders it.
    budget = 80 * limits.MIB
    result = render(photo_webp, default_renditions(), EngineOptions(memory_budget=budget))
    assert len(result.outputs) == sum(len(r.formats) for r in default_renditions())
    with pytest.raises(PermanentError) as caught:
        render(photo_webp, default_renditions(), EngineOptions(memory_budget=30 * limits.MIB))
    assert caught.value.code == "too_many_pixels"
    assert "decoded at 1600x1067" in caught.value.message
