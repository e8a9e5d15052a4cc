"""AVIF renditions and animations (docs/formats.md): outputs decoded back and checked."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, features

from imgpipe import limits, sandbox
from imgpipe.engine import EngineOptions, render
from imgpipe.errors import ConfigError, PermanentError
from imgpipe.renditions import CONTENT_TYPES, Rendition, default_renditions
from imgpipe.resize_config import from_env
from quality import psnr, reference_image
from tests import images

BASE_ENV = {"RESIZED_BUCKET": "resized"}
AVIF = Rendition("hero", 400, 300, "contain", ("avif",), 70)
ANIMATED = Rendition("anim", 80, 60, "contain", ("webp", "avif", "jpeg"), 90)
DURATIONS = [40, 80, 120, 160, 200, 240]


def by_key(result):
    return {(o.name, o.format): o for o in result.outputs}


def frames_of(data: bytes) -> tuple[list[Image.Image], list[int], Image.Image]:
    """Every frame (RGBA copies), its duration, and the opened image (for ``info``)."""
    im = Image.open(io.BytesIO(data))
    out, durations = [], []
    for index in range(getattr(im, "n_frames", 1)):
        im.seek(index)
        im.load()
        out.append(im.convert("RGBA"))
        durations.append(im.info.get("duration"))
    return out, durations, im


def near(pixel, expected, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=False))


def square_left(frame: Image.Image, y: int) -> int:
    """The first column of the yellow square on row ``y``."""
    return next(x for x in range(frame.width) if near(frame.getpixel((x, y)), (250, 220, 20, 255)))


# -- AVIF ----------------------------------------------------------------------------------------


def test_pillow_has_avif_in_this_environment():
    """Pillow 13's wheels bundle libavif; the package test checks the Lambda's wheels do too."""
    assert features.check("avif")


def test_avif_rendition_decodes_to_the_size_and_pixels_it_reports():
    data = images.encode(images.photo(1200, 900), "JPEG", quality=95)
    both = Rendition("hero", 400, 300, "contain", ("avif", "jpeg"), 70)
    outputs = by_key(render(data, [both]))
    output = outputs[("hero", "avif")]
    assert (output.format, output.content_type) == ("avif", "image/avif") == ("avif", CONTENT_TYPES["avif"])
    avif = Image.open(io.BytesIO(output.data))
    assert avif.format == "AVIF" and avif.size == (output.width, output.height) == (400, 300)
    reference = reference_image(data, both)
    jpeg = Image.open(io.BytesIO(outputs[("hero", "jpeg")].data))
    # the noisy synthetic photo: 27.8 dB for AVIF, 25.7 dB for JPEG at the same quality
    assert psnr(avif.convert("RGB"), reference) > max(26, psnr(jpeg, reference))


def test_avif_speed_is_a_setting_that_trades_time_for_bytes():
    data = images.encode(images.photo(800, 600), "JPEG", quality=95)
    fast = by_key(render(data, [AVIF], EngineOptions(avif_speed=10)))[("hero", "avif")]
    slow = by_key(render(data, [AVIF], EngineOptions(avif_speed=4)))[("hero", "avif")]
    assert len(slow.data) < len(fast.data)  # speed 10 skips the searches that find a smaller coding
    for output in (fast, slow):
        assert Image.open(io.BytesIO(output.data)).size == (400, 300)


def test_avif_speed_is_read_from_the_environment_with_bounds():
    assert from_env(BASE_ENV).avif_speed == 8
    assert from_env({**BASE_ENV, "AVIF_SPEED": "6"}).avif_speed == 6
    for bad in ("11", "-1", "fast", "6.5"):
        with pytest.raises(ConfigError, match="AVIF_SPEED"):
            from_env({**BASE_ENV, "AVIF_SPEED": bad})


def test_default_renditions_stay_webp_and_jpeg():
    assert {fmt for r in default_renditions() for fmt in r.formats} == {"webp", "jpeg"}


# -- animation -----------------------------------------------------------------------------------


def test_an_animated_gif_becomes_an_animated_webp_and_avif_with_its_timing():
    frames = images.moving_square(6)
    data = images.animation(frames, "GIF", DURATIONS, loop=2)
    outputs = by_key(render(data, [ANIMATED]))
    for fmt in ("webp", "avif"):
        output = outputs[("anim", fmt)]
        got, durations, im = frames_of(output.data)
        assert output.frames == len(got) == 6
        assert durations == DURATIONS
        assert im.size == (output.width, output.height) == (80, 60)
        for index, frame in enumerate(got):  # the square moves as in the source, at half scale
            assert abs(square_left(frame, 30) - images.square_x(index) / 2) <= 2, (fmt, index)
    # a GIF's loop count is repeats after the first play; WebP's is plays (animation.webp_loop)
    assert Image.open(io.BytesIO(outputs[("anim", "webp")].data)).info["loop"] == 3


@pytest.mark.parametrize(("gif_loop", "webp_loop"), [(0, 0), (1, 2), (None, 1)])
def test_loop_counts_carry_over_from_gif_to_webp(gif_loop, webp_loop):
    params = {} if gif_loop is None else {"loop": gif_loop}
    data = images.animation(images.moving_square(3), "GIF", [100, 100, 100], **params)
    [output] = render(data, [Rendition("a", 80, 60, "contain", ("webp",))]).outputs
    assert Image.open(io.BytesIO(output.data)).info["loop"] == webp_loop


def test_an_animated_webp_keeps_its_frames_durations_and_loop():
    data = images.animation(images.moving_square(6), "WEBP", DURATIONS, loop=5, lossless=True)
    [output] = render(data, [Rendition("a", 160, 120, "contain", ("webp",), 90)]).outputs
    got, durations, im = frames_of(output.data)
    assert (len(got), durations, im.info["loop"], im.size) == (6, DURATIONS, 5, (160, 120))
    for index, frame in enumerate(got):  # lossy edges: within a pixel
        assert abs(square_left(frame, 60) - images.square_x(index)) <= 1, index


def test_jpeg_of_an_animation_is_its_first_frame():
    data = images.animation(images.moving_square(6), "GIF", DURATIONS)
    jpeg = by_key(render(data, [ANIMATED]))[("anim", "jpeg")]
    im = Image.open(io.BytesIO(jpeg.data))
    assert jpeg.frames == 1 and im.format == "JPEG" and im.size == (80, 60)
    assert square_left(im.convert("RGBA"), 30) <= 1


def test_gif_disposal_is_honoured_by_compositing_each_frame():
    """Disposal 1 (leave in place) keeps every earlier square; disposal 2 (restore background) clears them."""
    frames = images.moving_square(4, alpha=True)
    rendition = Rendition("a", 160, 120, "contain", ("webp",), 100)
    for disposal, trail in ((1, True), (2, False)):
        data = images.animation(frames, "GIF", [100] * 4, disposal=disposal, loop=0)
        [output] = render(data, [rendition]).outputs
        got, _, _ = frames_of(output.data)
        last = got[-1]
        assert near(last.getpixel((images.square_x(3, 4) + 15, 60)), (250, 220, 20, 255))
        first_square = last.getpixel((15, 60))
        assert near(first_square, (250, 220, 20, 255)) is trail, disposal
        if not trail:
            assert first_square[3] == 0  # transparency kept in the animated WebP


def test_an_animation_over_the_frame_pixel_budget_gives_its_first_frame():
    data = images.animation(images.moving_square(6), "GIF", DURATIONS)
    budget = 6 * 160 * 120
    kept = render(data, [ANIMATED], EngineOptions(max_animation_pixels=budget))
    over = render(data, [ANIMATED], EngineOptions(max_animation_pixels=budget - 1))
    assert {o.frames for o in kept.outputs if o.format != "jpeg"} == {6}
    assert {o.frames for o in over.outputs} == {1}
    for output in over.outputs:
        got, _, _ = frames_of(output.data)
        assert len(got) == 1 and square_left(got[0], 30) <= 1


def test_an_animation_whose_frames_do_not_fit_the_memory_budget_gives_its_first_frame():
    data = images.animation(images.moving_square(6), "GIF", DURATIONS)
    rendition = Rendition("a", 160, 120, "contain", ("webp",))
    kept = limits.animation_bytes(6, [(160, 120)])
    need = 160 * 120 * 20 + limits.FIXED_DECODE_BYTES  # far more than the decode of one frame needs
    assert render(data, [rendition], EngineOptions(memory_budget=need + kept)).outputs[0].frames == 6
    assert render(data, [rendition], EngineOptions(memory_budget=need)).outputs[0].frames == 1


def test_max_animation_pixels_is_read_from_the_environment():
    assert from_env(BASE_ENV).max_animation_pixels == 50_000_000
    assert from_env({**BASE_ENV, "MAX_ANIMATION_PIXELS": "0"}).max_animation_pixels == 0
    with pytest.raises(ConfigError, match="MAX_ANIMATION_PIXELS"):
        from_env({**BASE_ENV, "MAX_ANIMATION_PIXELS": "-1"})


def test_animations_render_in_the_sandboxed_child_like_stills():
    data = images.animation(images.moving_square(6), "GIF", DURATIONS, loop=0)
    renderer = sandbox.Renderer(memory_mb=1024)
    try:
        result = renderer.call(render, data, [ANIMATED], EngineOptions(threads=1), seconds=30)
    finally:
        renderer.close()
    output = by_key(result)[("anim", "webp")]
    got, durations, _ = frames_of(output.data)
    assert (output.frames, len(got), durations) == (6, 6, DURATIONS)


_MEASURE = """
import io, sys
sys.path.insert(0, sys.argv[1])
from imgpipe.engine import EngineOptions, render
from imgpipe.renditions import load_renditions

def kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

data = open(sys.argv[2], "rb").read()
render(open(sys.argv[3], "rb").read(), load_renditions(None), EngineOptions(threads=2))  # codecs loaded
before = kb("VmRSS")
result = render(data, load_renditions(None), EngineOptions(threads=2))
assert {o.frames for o in result.outputs if o.format == "webp"} == {40}
print(kb("VmHWM") - before)
"""


def test_memory_estimate_covers_an_animation_kept_animated(tmp_path):
    """In a fresh interpreter, a 40-frame 800x600 GIF to the default renditions grows the resident
    high-water mark by no more than one frame's decode estimate plus the kept rendition frames."""
    frames = images.moving_square(40, (800, 600), square=100)
    data = images.animation(frames, "GIF", [50] * 40, loop=0)
    (tmp_path / "anim.gif").write_bytes(data)
    (tmp_path / "warm.gif").write_bytes(images.animation(images.moving_square(2, (64, 48)), "GIF", [50] * 2))
    opened = Image.open(io.BytesIO(data))
    sizes = [(200, 200), (800, 600), (800, 600)]  # thumb (cover), medium, large (never upscaled)
    estimate = limits.decode_bytes(opened, "gif") + limits.animation_bytes(40, sizes)
    lambda_dir = Path(limits.__file__).parents[1]
    grown = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE,
            str(lambda_dir),
            str(tmp_path / "anim.gif"),
            str(tmp_path / "warm.gif"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 0 < int(grown) <= estimate


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_a_truncated_animation_is_a_corrupt_image_or_the_frames_it_holds(fmt):
    """Cut anywhere, an animation gives a recorded corrupt_image or renders; never another error."""
    data = images.animation(
        images.moving_square(6), fmt, DURATIONS, **({"lossless": True} if fmt == "WEBP" else {})
    )
    rendition = Rendition("a", 80, 60, "contain", ("webp", "jpeg"))
    outcomes = set()
    for cut in range(20, len(data), max(1, len(data) // 80)):
        try:
            result = render(data[:cut], [rendition])
        except PermanentError as exc:
            outcomes.add(exc.code)
        else:
            webp = by_key(result)[("a", "webp")]
            assert webp.frames == len(frames_of(webp.data)[0]) <= 6
            outcomes.add("done")
    assert "corrupt_image" in outcomes and outcomes <= {"corrupt_image", "done"}
