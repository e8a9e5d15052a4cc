"""The Pillow engine on real images: formats, modes, orientation, metadata, geometry, bad input."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from imgpipe import decode
from imgpipe.engine import EngineOptions, render, render_images
from imgpipe.errors import PermanentError
from imgpipe.geometry import geometry
from imgpipe.renditions import Rendition, default_renditions
from quality import psnr
from tests import images

THUMB = Rendition("thumb", 100, 100, "cover", ("webp", "jpeg"), 90)
SMALL = Rendition("small", 200, 200, "contain", ("webp", "jpeg"), 90)
EVERY_FORMAT = Rendition("all", 200, 200, "contain", ("jpeg", "webp", "avif"), 90)
MAGIC = {
    "jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
    "webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
}
MAGIC["avif"] = lambda b: b[4:8] == b"ftyp" and b"avif" in b[8:32]


def decoded(output) -> Image.Image:
    im = Image.open(io.BytesIO(output.data))
    im.load()
    return im


def by_key(result):
    return {(o.name, o.format): o for o in result.outputs}


def close(pixel, expected, tolerance=24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=False))


def quadrant_colours(im: Image.Image) -> tuple:
    im = im.convert("RGB")
    w, h = im.size
    return tuple(
        im.getpixel(xy)
        for xy in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4))
    )


def assert_upright(im: Image.Image) -> None:
    tl, tr, bl, br = quadrant_colours(im)
    assert close(tl, images.TOP_LEFT), tl
    assert close(tr, images.TOP_RIGHT), tr
    assert close(bl, images.BOTTOM_LEFT), bl
    assert close(br, images.BOTTOM_RIGHT), br


def assert_no_metadata(data: bytes) -> None:
    assert b"Exif" not in data
    assert b"xmpmeta" not in data and b"XMP" not in data
    assert b"TestCam" not in data
    assert not Image.open(io.BytesIO(data)).getexif()


# --- orientation, metadata ---


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright_without_metadata(orientation):
    # 1600x800 upright: DCT-scaled decoding (1/8) and the orientation must combine.
    data = images.oriented_jpeg(orientation, 1600, 800)
    result = render(data, [SMALL, THUMB])
    assert (result.width, result.height) == (1600, 800)
    outputs = by_key(result)
    for fmt in ("webp", "jpeg"):
        small = outputs[("small", fmt)]
        assert (small.width, small.height) == (200, 100)
        im = decoded(small)
        assert im.size == (200, 100)
        assert_upright(im)
        assert_no_metadata(small.data)
        # The cover thumb is the centre square: left half top-left/bottom-left colours.
        thumb = decoded(outputs[("thumb", fmt)])
        assert thumb.size == (100, 100)
        assert_upright(thumb)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_wide_cover_crop_of_an_oriented_photo(orientation):
    # Upright 800x400; a 200x50 cover crops the middle band (rows 100..300): still four quadrants.
    data = images.oriented_jpeg(orientation, 800, 400)
    band = Rendition("band", 200, 50, "cover", ("webp",), 95)
    _, ims = render_images(data, [band])
    assert ims["band"].size == (200, 50)
    assert_upright(ims["band"])


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_orientation_at_full_resolution(orientation):
    # Small enough that no DCT scaling happens: the plain decode path.
    data = images.oriented_jpeg(orientation, 400, 200)
    info, ims = render_images(data, [Rendition("same", 400, 400, "contain", ("webp",))])
    assert (info.width, info.height) == (400, 200)
    assert ims["same"].size == (400, 200)
    assert_upright(ims["same"])


def test_exif_xmp_gps_are_stripped_from_every_output_format():
    data = images.oriented_jpeg(1, 400, 200)
    assert b"Exif" in data and b"xmpmeta" in data
    result = render(data, [EVERY_FORMAT])
    assert {o.format for o in result.outputs} == {"jpeg", "webp", "avif"}
    for output in result.outputs:
        assert MAGIC[output.format](output.data), output.format
        assert_no_metadata(output.data)


def test_srgb_profile_becomes_the_one_compact_srgb_profile():
    # Outputs never carry the source's profile bytes (docs/hostile-inputs.md): an sRGB source is
    # tagged with LittleCMS's own sRGB profile, the same 588 bytes every time.
    from imgpipe.icc import srgb_bytes

    icc = images.srgb_icc()
    data = images.encode(images.quadrants(), "JPEG", quality=95, icc_profile=icc)
    for output in render(data, [EVERY_FORMAT]).outputs:
        assert decoded(output).info.get("icc_profile") == srgb_bytes(), output.format
    assert len(srgb_bytes()) == 588


def test_outputs_are_in_configured_order_with_content_types():
    data = images.encode(images.quadrants(), "PNG")
    result = render(data, default_renditions())
    assert [(o.name, o.format) for o in result.outputs] == [
        (r.name, f) for r in default_renditions() for f in r.formats
    ]
    types = {"webp": "image/webp", "jpeg": "image/jpeg"}
    for output in result.outputs:
        assert output.content_type == types[output.format]
        assert MAGIC[output.format](output.data)
        assert decoded(output).format == output.format.upper()


# --- geometry ---


def test_contain_keeps_aspect_and_cover_crops_the_centre():
    data = images.encode(images.quadrants(1200, 600), "PNG")
    result = render(
        data, [Rendition("c", 300, 300, "contain", ("webp",)), Rendition("v", 300, 150, "cover", ("webp",))]
    )
    contain, cover = result.outputs
    assert (contain.width, contain.height) == (300, 150)
    assert_upright(decoded(contain))
    assert (cover.width, cover.height) == (300, 150)
    assert_upright(decoded(cover))
    tall = render(data, [Rendition("t", 100, 200, "cover", ("webp",))]).outputs[0]
    assert (tall.width, tall.height) == (100, 200)
    im = decoded(tall).convert("RGB")
    # A centre crop of the middle quarter: left half from the left quadrants, right from the right.
    assert close(im.getpixel((10, 10)), images.TOP_LEFT)
    assert close(im.getpixel((90, 190)), images.BOTTOM_RIGHT)


def test_never_upscales():
    data = images.encode(images.quadrants(100, 50), "PNG")
    result = by_key(render(data, default_renditions()))
    for name in ("medium", "large"):
        assert (result[(name, "jpeg")].width, result[(name, "jpeg")].height) == (100, 50)
    # cover 200x200 from 100x50: the centre square at source resolution, not enlarged
    thumb = result[("thumb", "webp")]
    assert (thumb.width, thumb.height) == (50, 50)
    assert decoded(thumb).size == (50, 50)


@pytest.mark.parametrize(
    ("fit", "box", "source", "expected"),
    [
        ("contain", (800, 800), (4000, 3000), (800, 600)),
        ("contain", (800, 800), (3000, 4000), (600, 800)),
        ("contain", (800, 800), (640, 480), (640, 480)),
        ("cover", (200, 200), (4000, 3000), (200, 200)),
        ("cover", (200, 200), (150, 400), (150, 150)),
        ("cover", (300, 100), (200, 200), (200, 67)),
        ("cover", (200, 200), (1, 1), (1, 1)),
    ],
)
def test_geometry(fit, box, source, expected):
    geo = geometry(Rendition("r", *box, fit), *source)
    assert (geo.width, geo.height) == expected
    assert geo.scale <= 1


def test_one_pixel_image():
    data = images.encode(Image.new("RGB", (1, 1), (12, 34, 56)), "PNG")
    result = render(data, default_renditions())
    for output in result.outputs:
        im = decoded(output).convert("RGB")
        assert im.size == (1, 1)
        assert close(im.getpixel((0, 0)), (12, 34, 56), 12)


# --- input formats and pixel modes ---


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("PNG", {}),
        ("WEBP", {"quality": 95}),
        ("GIF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("AVIF", {"quality": 95}),
        ("HEIF", {"quality": 95}),
        ("JPEG", {"quality": 95, "progressive": True}),
    ],
)
def test_input_formats(fmt, params):
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    data = images.encode(images.quadrants(800, 400), fmt, **params)
    result = render(data, [SMALL])
    expected = {"PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff", "AVIF": "avif", "HEIF": "heif"}
    assert result.source_format == expected.get(fmt, "jpeg")
    assert (result.width, result.height) == (800, 400)
    for output in result.outputs:
        assert (output.width, output.height) == (200, 100)
        assert_upright(decoded(output))


def test_heic_phone_photo_with_rotation():
    import pillow_heif

    pillow_heif.register_heif_opener()
    # Stored sideways with an orientation: libheif rotates it, the engine must not rotate again.
    stored = images.quadrants(400, 200).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = images.encode(stored, "HEIF", quality=95, exif=exif.tobytes())
    result = render(data, [SMALL])
    assert result.source_format == "heif"
    assert (result.width, result.height) == (400, 200)
    for output in result.outputs:
        assert_upright(decoded(output))
        assert_no_metadata(output.data)


def test_progressive_jpeg_is_decoded_with_dct_scaling():
    data = images.photo_jpeg(1600, 1200, progressive=True)
    assert b"\xff\xc2" in data  # SOF2: progressive
    info, ims = render_images(data, [SMALL])
    assert (info.width, info.height) == (1600, 1200)
    assert ims["small"].size == (200, 150)


@pytest.mark.parametrize("orientation", [1, 6])
def test_jpeg_is_decoded_at_three_eighths_when_that_holds_the_largest_rendition(orientation):
    # 4300x2900 for a 1600 px rendition (0.372 px per source px): 3/8 is 1613x1088, the
    # fewest pixels that hold it; 1/2 (2150x1450) was the smallest scale before.
    data = images.oriented_jpeg(orientation, 4300, 2900)
    source = decode.decode_source(data, default_renditions(), EngineOptions()).source
    assert source.image.size == ((1088, 1613) if orientation == 6 else (1613, 1088))
    assert (source.sx, source.sy) == (3 / 8, 3 / 8)
    result = render(data, default_renditions())
    sizes = {o.name: (o.width, o.height) for o in result.outputs}
    assert sizes == {"thumb": (200, 200), "medium": (800, 540), "large": (1600, 1079)}
    for output in result.outputs:
        if output.name != "thumb":  # the thumb's centre crop has no quadrants to see
            im = decoded(output)
            assert im.size == sizes[output.name]
            assert_upright(im)


def test_a_4_2_2_jpeg_takes_three_eighths_with_room_for_lanczos():
    # 6028x3391 (as the benchmark's Kleiber photo): 3/8 is 2261 px, 1.41x the 1600 px needed.
    # The scale follows the size and the chroma subsampling, not the content: the quadrants
    # picture, not a 20 MP synthetic photo (1.3 s of CPU to generate, once per worker).
    data = images.encode(images.quadrants(6028, 3391), "JPEG", quality=90, subsampling="4:2:2")
    source = decode.decode_source(data, default_renditions(), EngineOptions()).source
    assert source.image.size == (2261, 1272)
    _, ims = render_images(data, default_renditions())
    assert ims["large"].size == (1600, 900)


def test_three_eighths_shows_the_same_picture_as_a_full_decode():
    # Exactly 3/8 of the original (the last pixel is partial: left out): 41.6 dB against a
    # LANCZOS resize of the full decode (1/2 gives 40.5 dB); a wrong scale or offset gives < 25.
    data = images.photo_jpeg(4300, 2900)
    source = decode.decode_source(data, default_renditions(), EngineOptions()).source
    w, h = source.image.size[0] - 1, source.image.size[1] - 1
    full = Image.open(io.BytesIO(data))
    full = full.resize((w, h), Image.Resampling.LANCZOS, box=(0, 0, w * 8 / 3, h * 8 / 3))
    assert psnr(source.image.crop((0, 0, w, h)), full) >= 40


@pytest.mark.parametrize("case", ["no libjpeg-turbo", "4:2:2 with < 1.4x left"])
def test_otherwise_the_jpeg_is_decoded_at_one_half(case, monkeypatch):
    if case == "no libjpeg-turbo":
        monkeypatch.setattr(decode, "_LIBJPEG_TURBO", False)
        data = images.photo_jpeg(4300, 2900)
    else:
        data = images.photo_jpeg(4300, 2900, subsampling="4:2:2")  # 3/8 would be 1.01x
    source = decode.decode_source(data, default_renditions(), EngineOptions()).source
    assert source.image.size == (2150, 1450)
    _, ims = render_images(data, default_renditions())
    assert ims["large"].size == (1600, 1079)


def test_cmyk_jpeg_colours_come_out_right():
    data = images.cmyk_jpeg((200, 40, 40))
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    for output in render(data, [SMALL]).outputs:
        im = decoded(output)
        assert im.mode == "RGB"
        assert close(im.getpixel((60, 40)), (200, 40, 40), 12), im.getpixel((60, 40))


def test_16_bit_png_is_scaled_to_8_bits_not_clipped():
    data = images.png_16bit_gray(256, 64)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    _, ims = render_images(data, [Rendition("same", 256, 256, "contain", ("webp",))])
    im = ims["same"].convert("L")
    assert im.getpixel((0, 32)) <= 2
    assert 120 <= im.getpixel((128, 32)) <= 135
    assert im.getpixel((255, 32)) >= 253
    for output in render(data, [SMALL]).outputs:
        out = decoded(output).convert("L")
        assert 110 <= out.getpixel((100, 25)) <= 140


def test_palette_png_with_transparency_keeps_alpha_and_flattens_for_jpeg():
    data = images.palette_png_transparent((120, 80))
    opts = EngineOptions(background=(10, 200, 30))
    outputs = by_key(render(data, [SMALL], opts))
    webp = decoded(outputs[("small", "webp")])
    assert webp.mode == "RGBA"
    assert webp.getpixel((10, 40))[3] == 0
    assert close(webp.getpixel((110, 40)), (255, 0, 0, 255), 8)
    jpeg = decoded(outputs[("small", "jpeg")])
    assert jpeg.mode == "RGB"
    assert close(jpeg.getpixel((10, 40)), (10, 200, 30), 16)
    assert close(jpeg.getpixel((110, 40)), (255, 0, 0), 16)


def test_rgba_png_flattens_onto_white_by_default():
    outputs = by_key(render(images.rgba_png((300, 200)), [SMALL]))
    jpeg = decoded(outputs[("small", "jpeg")])
    assert close(jpeg.getpixel((20, 60)), (255, 255, 255), 8)
    assert close(jpeg.getpixel((180, 60)), (0, 0, 255), 16)
    assert decoded(outputs[("small", "webp")]).getpixel((20, 60))[3] == 0


def test_opaque_alpha_is_dropped():
    data = images.encode(Image.new("RGBA", (300, 200), (0, 128, 0, 255)), "PNG")
    assert decoded(by_key(render(data, [SMALL]))[("small", "webp")]).mode == "RGB"


def test_animated_gif_starts_with_its_first_frame():
    """The JPEG is the first frame, the WebP an animation that opens on it (tests/test_formats.py)."""
    data = images.animated_gif(3, (90, 60))
    assert Image.open(io.BytesIO(data)).n_frames == 3
    for output in render(data, [SMALL]).outputs:
        im = decoded(output)
        assert getattr(im, "n_frames", 1) == output.frames == (3 if output.format == "webp" else 1)
        assert (output.width, output.height) == (90, 60)
        assert close(im.convert("RGB").getpixel((45, 30)), (255, 0, 0), 16)


def test_grayscale_stays_gray():
    gray = Image.linear_gradient("L").resize((400, 300))
    data = images.encode(gray, "JPEG", quality=95)
    outputs = by_key(render(data, [SMALL]))
    jpeg = decoded(outputs[("small", "jpeg")])
    assert jpeg.mode == "L"
    assert jpeg.size == (200, 150)
    assert jpeg.getpixel((100, 5)) < 20 and jpeg.getpixel((100, 145)) > 235
    r, g, b = decoded(outputs[("small", "webp")]).convert("RGB").getpixel((100, 75))
    assert abs(r - g) <= 3 and abs(g - b) <= 3


def test_bilevel_image():
    im = Image.new("1", (200, 100), 0)
    im.paste(1, (100, 0, 200, 100))
    outputs = render(images.encode(im, "PNG"), [SMALL]).outputs
    for output in outputs:
        out = decoded(output).convert("L")
        assert out.getpixel((20, 50)) < 20 and out.getpixel((180, 50)) > 235


# --- bad input: permanent errors with stable codes ----------------------------------------------------


def error_code(data: bytes, opts: EngineOptions | None = None) -> str:
    with pytest.raises(PermanentError) as err:
        render(data, default_renditions(), opts)
    return err.value.code


def test_png_claiming_40000_by_40000_is_refused_from_its_header():
    data = images.png_claiming(40000, 40000)
    assert len(data) < 200
    assert error_code(data) == "too_many_pixels"


def test_pixel_limit_is_configurable():
    data = images.encode(images.quadrants(400, 200), "PNG")
    assert error_code(data, EngineOptions(max_pixels=79_999)) == "too_many_pixels"
    assert render(data, [SMALL], EngineOptions(max_pixels=80_000)).width == 400


def test_truncated_jpeg():
    assert error_code(images.truncated_jpeg()) == "corrupt_image"


def test_random_bytes():
    data = random.Random(3).randbytes(5000)
    assert error_code(data) == "not_an_image"


def test_zero_bytes():
    assert error_code(b"") == "not_an_image"


def test_image_magic_followed_by_garbage():
    data = b"\x89PNG\r\n\x1a\n" + random.Random(4).randbytes(500)
    assert error_code(data) == "corrupt_image"
    data = b"\xff\xd8\xff\xe0" + random.Random(5).randbytes(500)
    assert error_code(data) == "corrupt_image"


def test_parallel_strips_match_one_thread_within_one_level():
    # 1600 px outputs are resized in strips on two threads: each strip's box is
    # floating point, so a rare pixel may round one level apart, never more.
    from concurrent.futures import ThreadPoolExecutor

    from PIL import ImageChops

    from imgpipe.resize import resize as _resize

    for source in (images.photo(3000, 2250), images.photo(4272, 2848)):
        size = (1600, round(1600 * source.height / source.width))
        box = (0, 0, *source.size)
        one = _resize(source, size, box)
        with ThreadPoolExecutor(2) as pool:
            two = _resize(source, size, box, pool, 2)
        assert two.size == one.size == size and two.mode == one.mode
        diff = ImageChops.difference(one, two)
        assert all(high <= 1 for _, high in diff.getextrema())
        differing = sum(sum(band.histogram()[1:]) for band in diff.split())  # samples off by one
        assert differing <= size[0] * size[1] // 10_000  # at most 0.01 % of them


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("PNG", {}),
        ("WEBP", {}),
        ("GIF", {}),
        ("TIFF", {}),
        ("AVIF", {}),
        ("HEIF", {}),
        ("JPEG", {"progressive": True}),
    ],
)
def test_truncated_files_of_every_format_are_corrupt(fmt, params):
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    data = images.encode(images.photo(320, 240), fmt, **params)
    assert error_code(data[: len(data) * 3 // 4]) == "corrupt_image"


def test_pillows_global_pixel_limit_is_left_alone():
    before = Image.MAX_IMAGE_PIXELS
    data = images.encode(images.quadrants(400, 200), "PNG")
    assert error_code(data, EngineOptions(max_pixels=1000)) == "too_many_pixels"
    render(data, [SMALL], EngineOptions(max_pixels=500_000_000))
    assert before == Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_a_fully_opaque_alpha_is_dropped_at_decode_and_changes_no_output_byte(mode):
    # Resizing premultiplies RGBA first (94 ms of CPU for a 13 MP photo): an alpha that is 255
    # everywhere is dropped right after decoding; each rendition was encoded without it anyway.
    plain = images.photo(1200, 900).convert(mode[:-1])
    opaque = plain.convert(mode)
    data = images.encode(opaque, "PNG")
    decoded = decode.decode_source(data, default_renditions(), EngineOptions(threads=1))
    assert decoded.info.mode == mode  # the source is still reported as it is stored
    assert decoded.source.image.mode == mode[:-1]
    got = render(data, default_renditions(), EngineOptions(threads=1))
    want = render(images.encode(plain, "PNG"), default_renditions(), EngineOptions(threads=1))
    assert [(o.name, o.format, o.data) for o in got.outputs] == [
        (o.name, o.format, o.data) for o in want.outputs
    ]


def test_an_alpha_with_one_translucent_pixel_is_kept():
    im = images.photo(600, 400).convert("RGBA")
    im.putpixel((599, 399), (10, 20, 30, 254))
    decoded = decode.decode_source(images.encode(im, "PNG"), default_renditions(), EngineOptions(threads=1))
    assert decoded.source.image.mode == "RGBA"
    assert decoded.source.image.getpixel((599, 399)) == (10, 20, 30, 254)
