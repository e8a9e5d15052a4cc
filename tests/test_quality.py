"""One PSNR for tests and bench (``quality``): "40 dB" means the same whatever the image's mode."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from imgpipe.engine import render_images
from imgpipe.renditions import Rendition
from quality import psnr, reference_image
from tests import hostile, images

ONE_LEVEL_DB = 10 * math.log10(255**2)  # every sample one level off: MSE 1, 48.13 dB


def test_grey_counts_once_with_or_without_alpha_and_as_rgb():
    a, b = Image.new("L", (8, 8), 100), Image.new("L", (8, 8), 101)
    assert psnr(a, b) == pytest.approx(ONE_LEVEL_DB)
    assert psnr(a.convert("RGB"), b.convert("RGB")) == pytest.approx(ONE_LEVEL_DB)
    # LA: grey and alpha (equal here) are two channels, so the MSE halves: + 3 dB, not 1.25 dB as
    # when the grey counted three times beside alpha (RGBa).
    assert psnr(a.convert("LA"), b.convert("LA")) == pytest.approx(ONE_LEVEL_DB + 10 * math.log10(2))
    assert psnr(a, b.convert("RGB")) == pytest.approx(ONE_LEVEL_DB)  # grey against the same grey in RGB
    assert psnr(a, a.convert("RGB")) == math.inf


def test_alpha_is_compared_premultiplied():
    hidden = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    other = Image.new("RGBA", (8, 8), (0, 255, 0, 0))
    assert psnr(hidden, other) == math.inf  # the colour of a transparent pixel does not count
    opaque = Image.new("RGB", (8, 8), (10, 20, 30))
    assert psnr(opaque, opaque.convert("RGBA")) == math.inf  # no alpha counts as opaque


def test_sizes_must_match():
    with pytest.raises(ValueError, match="sizes differ"):
        psnr(Image.new("RGB", (8, 8)), Image.new("RGB", (8, 9)))


def test_the_reference_of_an_adobe_rgb_photo_is_in_srgb_like_its_renditions():
    # The engine converts a source's colours to sRGB (imgpipe.icc); a reference left in Adobe RGB
    # put a 640x427 photo that the engine reproduces exactly at 29.8 dB (the bench's rocket.jpg).
    profile = hostile.rgb_profile()
    data = images.encode(images.photo(640, 427), "JPEG", quality=95, icc_profile=profile)
    same_size = Rendition("same", 640, 640, "contain", ("jpeg",))
    _, made = render_images(data, [same_size])
    assert psnr(made["same"], reference_image(data, same_size)) == math.inf
