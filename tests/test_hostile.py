"""Hostile inputs: one bad upload costs only itself (issue 12: items 1, 2, 3, 5, 7, 12).

Each image here is small and built in milliseconds (tests/hostile.py), and is
refused before it can cost much: checked by its outcome code, by the CPU it
took, and by the memory the local runtime lets a function use.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from PIL import Image, ImageCms

from imgpipe.engine import EngineOptions, render
from imgpipe.errors import PermanentError
from imgpipe.renditions import Rendition, load_renditions
from tests import hostile, images
from tests.test_resize_handler import Pipeline, pipeline  # noqa: F401 - the fixture

RENDITIONS = load_renditions(None)


@pytest.fixture
def function_options(monkeypatch):
    """The engine options of a resize function of ``memory_mb`` (1536 MB: Terraform's default)."""
    import resize_handler

    def options(memory_mb: int = 1536) -> EngineOptions:
        monkeypatch.setenv("RESIZED_BUCKET", "resized")
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(memory_mb))
        resize_handler.reset()
        return resize_handler.setup().options

    yield options
    resize_handler.reset()


def outcome(data: bytes, opts: EngineOptions | None = None) -> tuple[str, str, float]:
    """(code or "done", message, CPU seconds) of rendering ``data`` with the default renditions."""
    started = time.process_time()
    try:
        render(data, RENDITIONS, opts)
    except PermanentError as exc:
        return exc.code, exc.message, time.process_time() - started
    return "done", "", time.process_time() - started


# -- 1. work per image is bounded ------------------------------------------


def test_progressive_jpeg_with_1000_scans_is_refused_before_decoding(function_options):
    # 2000x2000 with 1010 scans: 1.8 s of CPU to decode (the 10000x10000 x 10000: 77 s).
    data = hostile.scan_bomb(2000, 2000, 1000)
    assert len(data) < 100_000 and hostile.scans_in(data) == 1010
    code, message, cpu = outcome(data, function_options())
    assert code == "too_many_scans" and "100" in message
    assert cpu < 0.1


def test_scan_limit_is_configurable_and_ordinary_progressive_jpegs_pass():
    ordinary = images.encode(images.photo(320, 240), "JPEG", progressive=True)
    assert hostile.scans_in(ordinary) == 10  # libjpeg's own progressive script
    assert outcome(ordinary)[0] == "done"
    assert outcome(hostile.scan_bomb(64, 64, 20), EngineOptions(max_scans=20))[0] == "too_many_scans"
    assert outcome(hostile.scan_bomb(64, 64, 10), EngineOptions(max_scans=20))[0] == "done"


def test_render_child_is_killed_at_its_deadline_and_replaced():
    from imgpipe import sandbox

    data = hostile.scan_bomb(2000, 2000, 1000)
    opts = EngineOptions(max_scans=10_000)  # let the decoder at it: 1.8 s of CPU
    renderer = sandbox.Renderer(1536)
    try:
        started, cpu = time.monotonic(), time.process_time()
        with pytest.raises(sandbox.Timeout):
            renderer.call(render, data, RENDITIONS, opts, seconds=0.3)
        assert time.monotonic() - started < 1.0 and time.process_time() - cpu < 0.1
        small = images.encode(images.quadrants(), "PNG")
        assert len(renderer.call(render, small, RENDITIONS, opts, seconds=10).outputs) == 6
    finally:
        renderer.close()
    assert not _children()  # killed and reaped: no zombie


def _children() -> list[str]:
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()


class Clock:
    """A Lambda context whose remaining time runs down with the wall clock, as Lambda's does."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def test_a_slow_image_fails_alone_and_late_messages_are_handed_back(pipeline):
    # A 1.5 s function: one image may render for 0.75 s. The slow one (6000x6000 with 95 scans,
    # under the scan limit: 1.3 s of CPU here) is killed at 0.75 s and recorded; the image before
    # it is done; the message after it starts with too little time and goes back to SQS (a batch
    # item failure), where Lambda's timeout would have failed the whole batch.
    import resize_handler

    warm = pipeline.upload("warm.png", images.encode(images.quadrants(), "PNG"))
    assert pipeline.invoke(warm) == {"batchItemFailures": []}  # cold start and clients, outside the 1.5 s
    good = pipeline.upload("good.png", images.encode(images.quadrants(), "PNG"))
    slow = pipeline.upload("slow.jpg", hostile.scan_bomb(6000, 6000, 85))
    late = pipeline.upload("late.png", images.encode(images.quadrants(), "PNG"))
    response = resize_handler.handler({"Records": [good, slow, late]}, _context(Clock(1.5)))
    assert response == {"batchItemFailures": [{"itemIdentifier": late["messageId"]}]}
    assert pipeline.item(pipeline.image_id("good.png"))["status"] == "done"
    failed = pipeline.item(pipeline.image_id("slow.jpg"))
    assert failed["status"] == "failed" and failed["error"]["code"] == "render_timeout"
    assert pipeline.item(pipeline.image_id("late.png")) is None  # untouched, for the next invocation


def _context(clock: Clock):
    from conftest import LambdaContext

    context = LambdaContext()
    context.get_remaining_time_in_millis = clock.get_remaining_time_in_millis  # type: ignore[method-assign]
    return context


# -- 2. every exception ends in a recorded outcome --------------------------


def test_rows_wider_than_the_decoder_holds_are_too_many_pixels():
    # 100,000,000 x 1 RGB: 2.4 billion bits a row; Pillow raised MemoryError (the 292 KB PNG).
    code, message, _ = outcome(images.png_claiming(100_000_000, 1))
    assert code == "too_many_pixels" and "wider than the decoder can hold" in message


def _denied(monkeypatch):
    from imgpipe import aws

    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject"
    )
    monkeypatch.setattr(aws.client("s3"), "get_object", lambda **kw: (_ for _ in ()).throw(denied))


def test_unknown_error_on_the_last_receive_is_recorded_internal_and_still_dead_lettered(
    pipeline,
    monkeypatch,
):
    # SQS moves a message to the DLQ once ApproximateReceiveCount passes the redrive policy's
    # maxReceiveCount (MAX_RECEIVE_COUNT, from Terraform's resize_max_receive_count).
    import resize_handler

    monkeypatch.setenv("MAX_RECEIVE_COUNT", "3")
    resize_handler.reset()
    record = pipeline.upload("denied.png", images.encode(images.quadrants(), "PNG"))
    image_id = pipeline.image_id("denied.png")
    _denied(monkeypatch)
    record["attributes"]["ApproximateReceiveCount"] = "2"
    assert pipeline.invoke(record) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert pipeline.item(image_id) is None  # retried: nothing recorded yet
    record["attributes"]["ApproximateReceiveCount"] = "3"
    assert pipeline.invoke(record) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    item = pipeline.item(image_id)
    assert item["status"] == "failed" and item["error"]["code"] == "internal"
    assert "AccessDenied" not in item["error"]["message"] and "uploads" not in item["error"]["message"]


def test_memory_the_render_process_cannot_get_is_too_many_pixels(pipeline, monkeypatch):
    # The engine's estimate is off here (no budget), so the child's memory ceiling is what stops it:
    # Pillow's allocation of the 8000x8000 16-bit image (128 MB, on the render's own thread)
    # fails with MemoryError in the child only.
    import resize_handler
    from imgpipe import limits

    # What this test process holds, plus 64 MB for the render child (and 64 MB for thread stacks).
    status = Path("/proc/self/status").read_text().splitlines()
    resident = int(next(x for x in status if x.startswith("VmRSS")).split()[1]) >> 10
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(resident + 32 + 64))
    monkeypatch.setattr(limits, "memory_budget", lambda memory_mb: None)
    resize_handler.reset()
    record = pipeline.upload("big.png", hostile.wide_png(8000, 8000, bit_depth=16))
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    item = pipeline.item(pipeline.image_id("big.png"))
    assert item["error"]["code"] == "too_many_pixels"
    assert item["error"]["message"].startswith("decoding needs more memory than the function has (")


# -- 3. memory --------------------------------------------------------------


def test_animated_webp_of_100_megapixels_is_refused_by_the_memory_estimate(function_options):
    data = hostile.animated_webp(10000, 10000)
    assert len(data) == 144
    code, message, cpu = outcome(data, function_options(1536))
    assert code == "too_many_pixels" and "1,280 MB" in message
    assert cpu < 0.1


def test_pixel_budget_follows_the_functions_memory(function_options):
    data = hostile.animated_webp(3000, 3000)  # ~ 170 MB to decode
    assert outcome(data, function_options(384))[0] == "too_many_pixels"
    assert outcome(data, function_options(1536))[0] == "done"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("png-gray16", hostile.wide_png(1500, 1000, bit_depth=16)),
        ("png-rgba8", images.encode(images.photo(1500, 1000).convert("RGBA"), "PNG", compress_level=1)),
        ("webp", images.encode(images.photo(1500, 1000), "WEBP", method=0)),
        ("tiff-cmyk", images.encode(images.photo(1500, 1000).convert("CMYK"), "TIFF")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_memory_estimate_covers_what_the_render_uses(name, data, tmp_path):
    # Rendered in a fresh interpreter, after a 64x64 image of the same format has loaded the
    # codecs: its resident high-water mark grows by no more than the estimate, plus a fixed cost
    # (thread stacks, allocator arenas, the encoded outputs) that the estimate's FIXED_DECODE_BYTES holds.
    from imgpipe import limits

    opened = Image.open(io.BytesIO(data))
    estimate = limits.decode_bytes(opened, name.split("-")[0])
    (tmp_path / "image").write_bytes(data)
    grown = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(Path(limits.__file__).parents[1]), str(tmp_path / "image")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 0 < int(grown) <= estimate


_MEASURE = """
import sys
sys.path.insert(0, sys.argv[1])
from imgpipe.engine import EngineOptions, render
from imgpipe.renditions import load_renditions

def kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

data = open(sys.argv[2], "rb").read()
from PIL import Image
import io
opened = Image.open(io.BytesIO(data))
small = io.BytesIO()
Image.new(opened.mode, (64, 64)).save(small, opened.format)
render(small.getvalue(), load_renditions(None), EngineOptions(threads=2))
before = kb("VmRSS")
render(data, load_renditions(None), EngineOptions(threads=2))
print(kb("VmHWM") - before)
"""


# -- 5. ICC profiles ----------------------------------------------------------


def test_a_3_9_mb_profile_is_not_copied_into_the_renditions():
    result = render(hostile.fat_icc_jpeg(), RENDITIONS)
    assert len(result.outputs) == 6
    for output in result.outputs:
        assert output.size < 2_000
        assert Image.open(io.BytesIO(output.data)).info.get("icc_profile") in (None, b"")


def _pixel(data: bytes) -> tuple[int, ...]:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return im.getpixel((im.width // 2, im.height // 2))


def test_a_real_adobe_rgb_profile_is_converted_to_srgb_and_tagged_compactly():
    profile = hostile.rgb_profile()
    source = Image.new("RGB", (400, 300), (120, 160, 80))
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    expected = ImageCms.profileToProfile(source.crop((0, 0, 1, 1)), adobe, ImageCms.createProfile("sRGB"))
    expected = expected.getpixel((0, 0))
    assert abs(expected[0] - 120) > 15  # the conversion matters here
    data = images.encode(source, "PNG", icc_profile=profile)
    result = render(data, [Rendition("small", 200, 150, "contain", ("jpeg", "webp"), 95)])
    for output in result.outputs:
        tagged = ImageCms.ImageCmsProfile(io.BytesIO(Image.open(io.BytesIO(output.data)).info["icc_profile"]))
        assert tagged.profile.profile_description == "sRGB built-in" and len(tagged.tobytes()) < 600
        assert all(abs(a - b) <= 3 for a, b in zip(_pixel(output.data), expected, strict=True))


def test_an_srgb_profile_keeps_the_pixels_and_becomes_the_compact_one():
    bulky = images.srgb_icc() + b"\x00" * 3000  # a genuine sRGB profile, padded as some editors do
    source = Image.new("RGB", (400, 300), (120, 160, 80))
    data = images.encode(source, "JPEG", quality=95, icc_profile=bulky)
    for output in render(data, [Rendition("small", 200, 150, "contain", ("jpeg",), 95)]).outputs:
        tagged = Image.open(io.BytesIO(output.data)).info["icc_profile"]
        assert len(tagged) == 588 and tagged[36:40] == b"acsp"
        assert all(abs(a - b) <= 3 for a, b in zip(_pixel(output.data), (120, 160, 80), strict=True))


# -- 7 and 12. public messages ----------------------------------------------


def test_pixel_limit_message_states_the_configured_limit():
    code, message, _ = outcome(images.png_claiming(20000, 10001))  # over twice Pillow's own limit
    assert code == "too_many_pixels"
    assert message == "20000x10001 is 200,020,000 pixels; the limit (MAX_PIXELS) is 100,000,000 pixels"


def test_missing_source_message_names_no_bucket_or_key(pipeline):
    record = pipeline.record("photos/gone.jpg", 1234, None)
    assert pipeline.invoke(record) == {"batchItemFailures": []}
    error = pipeline.item(pipeline.image_id("photos/gone.jpg"))["error"]
    assert error["code"] == "source_not_found"
    assert "s3://" not in error["message"] and "uploads" not in error["message"]
    assert "photos" not in error["message"]


# -- the local runtime enforces MemorySize ----------------------------------

HOSTILE_ROOT = Path(__file__).parent / "fixtures" / "hostile_lambda"


def _function(handler: str, memory_mb: int, env: dict | None = None):
    from local.functions import TASK_ROOT, FunctionConfig, LocalFunction

    config = FunctionConfig(
        name=f"hostile-{handler}",
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:hostile-{handler}",
        handler=f"hostile_handler.{handler}",
        timeout=60,
        memory_mb=memory_mb,
        environment=env or {},
    )
    extra = {"PYTHONPATH": str(TASK_ROOT)}  # the engine, beside the stand-in handler
    return LocalFunction(config, "http://127.0.0.1:9", max_workers=1, task_root=HOSTILE_ROOT, extra_env=extra)


@pytest.mark.slow
def test_local_function_over_its_memory_size_is_killed_as_lambda_does():
    # Lambda: a function that uses more than its memory setting is stopped; the invocation fails
    # with Runtime.OutOfMemory ("Runtime exited with error: signal: killed") and the next one
    # gets a new execution environment.
    fn = _function("hog", 128)
    try:
        small, spike, after = fn.invoke({"mb": 20}), fn.invoke({"mb": 200}), fn.invoke({"mb": 20})
    finally:
        fn.close()
    assert small.ok and after.ok
    assert spike.error["errorType"] == "Runtime.OutOfMemory"
    assert "signal: killed" in spike.error["errorMessage"]
    assert after.payload["pid"] != small.payload["pid"]


@pytest.mark.slow
def test_the_animated_webp_fits_a_1536_mb_function():
    # The 144-byte animated WebP of 10000x10000 peaked at 1.56 GB: in a 1536 MB function
    # that is an out-of-memory kill of the whole batch; now it is refused from its header.
    data = hostile.animated_webp(10000, 10000)
    fn = _function("render", 1536, {"RESIZED_BUCKET": "resized"})
    try:
        result = fn.invoke({"image": base64.b64encode(data).decode()})
    finally:
        fn.close()
    assert result.ok, json.dumps(result.error)
    assert result.payload["code"] == "too_many_pixels"
