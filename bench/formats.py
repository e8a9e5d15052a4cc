"""``python -m bench.formats``: CPU per rendition for each output format and AVIF speed (docs/formats.md).

Per photograph, each rendition size is cut once (the engine's own resize), then
encoded by ``engine.encode`` as JPEG, WebP and AVIF at several speeds,
``BENCH_ROUNDS`` times: medians of the process's CPU time (``time.process_time``,
every thread: libavif encodes on as many threads as there are CPUs, as Pillow
sets it) and of wall time.
Also: ``crop: attention`` on a decoded photograph, and an animated GIF's
renditions. Photographs: ``BENCH_CORPUS`` or the fetched ``bench/corpus`` when
present (its JPEGs), else generated ones (``tests.images.photo``). Prints a
Markdown table and writes ``bench/results/formats.json`` (``BENCH_FORMATS_OUT``).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from pathlib import Path

from PIL import Image

from bench import ROOT
from imgpipe import attention, engine
from imgpipe.renditions import Rendition
from tests import images

SIZES = (200, 800, 1024, 1600)
QUALITY = 82
AVIF_SPEEDS = (4, 6, 8, 10)
ANIMATION_FRAMES = 24


def _cpu_ms(fn, rounds: int) -> tuple[float, object, float]:
    """Median CPU ms (all threads), the last result, median wall ms."""
    cpu, wall, result = [], [], None
    for _ in range(rounds):
        start, started = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append((time.process_time() - start) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(cpu), 1), result, round(statistics.median(wall), 1)


def photographs() -> list[tuple[str, bytes]]:
    folder = os.environ.get("BENCH_CORPUS") or str(ROOT / "bench" / "corpus")
    found = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:3]
    if found:
        return [(p.name, p.read_bytes()) for p in found]
    return [("generated 4000x3000", images.photo_jpeg(4000, 3000))]


def encoders() -> dict[str, dict]:
    out = {"jpeg": {"fmt": "jpeg"}, "webp": {"fmt": "webp"}}
    for speed in AVIF_SPEEDS:
        out[f"avif speed {speed}"] = {"fmt": "avif", "avif_speed": speed}
    return out


def measure_formats(rounds: int) -> list[dict]:
    rows = []
    for name, data in photographs():
        for size in SIZES:
            rendition = Rendition(f"r{size}", size, size, "contain", ("jpeg",), QUALITY)
            _, cut = engine.render_images(data, [rendition])
            im = cut[rendition.name]
            for label, params in encoders().items():
                fmt = params["fmt"]
                speed = params.get("avif_speed", engine.AVIF_SPEED)
                ms, body, wall = _cpu_ms(
                    lambda im=im, fmt=fmt, speed=speed: engine.encode(im, fmt, QUALITY, avif_speed=speed),
                    rounds,
                )
                rows.append(
                    {
                        "photo": name,
                        "size": f"{im.width}x{im.height}",
                        "edge": size,
                        "encoder": label,
                        "cpu_ms": ms,
                        "wall_ms": wall,
                        "bytes": len(body),
                    }
                )
    return rows


def measure_attention(rounds: int) -> dict:
    data = images.photo_jpeg(4000, 3000)
    im = Image.open(io.BytesIO(data)).convert("RGB")
    ms, _, _ = _cpu_ms(lambda: attention.window(im, (3000, 3000)), rounds)
    return {"source": "4000x3000 decoded", "cpu_ms": ms}


def measure_animation(rounds: int) -> dict:
    frames = images.moving_square(ANIMATION_FRAMES, (480, 360), square=60)
    data = images.animation(frames, "GIF", [80] * ANIMATION_FRAMES, loop=0)
    renditions = [
        Rendition("thumb", 200, 200, "cover", ("webp", "jpeg"), 80),
        Rendition("medium", 800, 800, "contain", ("webp", "jpeg"), 82),
    ]
    opts = engine.EngineOptions(threads=1)
    ms, result, _ = _cpu_ms(lambda: engine.render(data, renditions, opts), rounds)
    ms_avif, _, _ = _cpu_ms(
        lambda: engine.render(data, [Rendition("a", 480, 360, "contain", ("avif",), 70)], opts), rounds
    )
    return {
        "source": f"GIF {ANIMATION_FRAMES} frames 480x360",
        "webp_jpeg_default_renditions_cpu_ms": ms,
        "avif_480x360_cpu_ms": ms_avif,
        "bytes": {f"{o.name}.{o.format}": o.size for o in result.outputs},
    }


def table(rows: list[dict]) -> str:
    lines = ["| photo | rendition | encoder | CPU ms | wall ms | bytes |", "|---|---|---|---:|---:|---:|"]
    lines += [
        f"| {r['photo']} | {r['size']} | {r['encoder']} | {r['cpu_ms']} | {r['wall_ms']} | {r['bytes']:,} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    results = {
        "cpu": _cpu_name(),
        "rounds": rounds,
        "quality": QUALITY,
        "formats": measure_formats(rounds),
        "attention": measure_attention(rounds),
        "animation": measure_animation(rounds),
    }
    print(table(results["formats"]))
    print(json.dumps({k: results[k] for k in ("attention", "animation")}, indent=2))
    out = Path(os.environ.get("BENCH_FORMATS_OUT", ROOT / "bench" / "results" / "formats.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def _cpu_name() -> str:
    with open("/proc/cpuinfo") as fh:
        return next(
            (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "unknown"
        )


if __name__ == "__main__":
    main()
