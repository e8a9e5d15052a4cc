"""Giant sources: can the resize function, as configured, handle the biggest images it accepts?

``python -m bench.giants`` (``make bench-giants``) makes three sources at the
edge of the default pixel limit (``MAX_PIXELS``, 100 MP) into
``bench/corpus/giants`` (git-ignored), each enlarged from a corpus photograph
(``make bench-corpus`` first): a 100 MP JPEG, a 50 MP PNG and a 16000 x 6000
panorama JPEG, with a sensor-like grain so that they compress like photographs.
Each is rendered with the default renditions in a fresh process,
once by the engine as the resize handler runs it (its threads and memory budget
at the configured memory, ``variables.tf``) and once by libvips on one thread,
after one warm-up: CPU time, wall time and peak RSS (``VmHWM``).

Then, for the configured memory, timeout and batch size: the time Lambda would
take per image (CPU time stretched by 1,769 MB / memory below one vCPU; not
the wall time, which on a shared machine carries other people's load), a
whole batch of that image against the timeout and the per-image render limit
(``imgpipe.timebox``), and the peak against the memory.
Prints a table and writes ``bench/results/giants.json``.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import ROOT, corpus, cost

OUT = corpus.DEFAULT_DIR / "giants"
GRAIN_SIGMA = 6  # per-channel Gaussian grain added to the enlargements, in 8-bit levels
# (file, made from, size, format, what)
GIANTS = [
    ("giant-100mp.jpg", "Painting-Colors_by__herobrine7gamer.jpg", (12247, 8165), "JPEG", "100 MP JPEG"),
    ("giant-50mp.png", "sunset_by_Aitzol_Berasategi.jpg", (8660, 5773), "PNG", "50 MP PNG"),
    ("giant-panorama.jpg", "Kleiber_by_Lukas_Baubkus.jpg", (16000, 6000), "JPEG", "16000 x 6000 panorama"),
]


def make(out: Path = OUT) -> list[Path]:
    """The giant files, made once (LANCZOS enlargements of corpus photos; the panorama a centre band)."""
    from PIL import Image, ImageChops

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, source, size, fmt, _ in GIANTS:
        path = out / name
        if not path.exists():
            with Image.open(corpus.DEFAULT_DIR / source) as im:
                im = im.convert("RGB")
                w, h = im.size
                band = round(w * size[1] / size[0])  # the source's centre band of the giant's aspect
                if band < h:
                    im = im.crop((0, (h - band) // 2, w, (h - band) // 2 + band))
                big = im.resize(size, Image.Resampling.LANCZOS)
            # grain, as a camera's sensor gives: an enlargement alone is smooth and compresses
            # (and decodes) like a much smaller image
            grain = Image.merge("RGB", [Image.effect_noise(size, GRAIN_SIGMA) for _ in "RGB"])
            big = ImageChops.add(big, grain, scale=1.0, offset=-128)
            params = {"quality": 90} if fmt == "JPEG" else {"compress_level": 6}
            big.save(path, fmt, **params)
        paths.append(path)
    return paths


def _settings() -> dict:
    text = (ROOT / "variables.tf").read_text()

    def default(name: str) -> int:
        block = re.search(rf'variable\s+"{name}"\s*\{{(.*?)\n\}}', text, re.S)
        assert block, name
        value = re.search(r"^\s*default\s*=\s*(\d+)", block.group(1), re.M)
        assert value, name
        return int(value.group(1))

    return {
        "memory_mb": default("resize_memory_mb"),
        "timeout_s": default("resize_timeout_seconds"),
        "batch_size": default("resize_batch_size"),
    }


def one(method: str, path: str, memory_mb: int) -> dict:
    """Render ``path`` once to warm up, then once measured; in this (fresh) process."""
    from bench import methods, rss
    from imgpipe import engine, limits
    from imgpipe.renditions import default_renditions

    renditions = default_renditions()
    data = Path(path).read_bytes()
    if method == "engine":
        opts = engine.EngineOptions(
            memory_budget=limits.memory_budget(memory_mb), threads=limits.engine_threads(memory_mb)
        )

        def run() -> object:
            return engine.render(data, renditions, opts)
    else:
        vips = methods.Vips()
        vips.set_threads(1)

        def run() -> object:
            return vips.render(data, renditions)

    baseline = rss._peak_mib()
    c0, t0 = time.process_time(), time.perf_counter()
    run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "cpu_ms": round(cpu * 1000),
        "wall_ms": round(wall * 1000),
        "peak_rss_mib": round(rss._peak_mib(), 1),
        "baseline_rss_mib": round(baseline, 1),
    }


def _measure(method: str, path: Path, memory_mb: int, rounds: int) -> dict:
    runs = []
    for _ in range(rounds):
        proc = subprocess.run(
            [sys.executable, "-m", "bench.giants", "--one", method, str(path), str(memory_mb)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
        runs.append(json.loads(proc.stdout))
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def fits(engine_row: dict, settings: dict) -> dict:
    """Per image at the configured memory: Lambda ms, a whole batch's seconds, and what fits."""
    from imgpipe.timebox import TimeBox

    memory, timeout, batch = settings["memory_mb"], settings["timeout_s"], settings["batch_size"]
    # CPU time stretched to the function's share of a vCPU: on this shared machine the wall time
    # carries other people's load (the engine runs one thread below 1,769 MB: limits.engine_threads)
    lambda_ms = engine_row["cpu_ms"] * max(1.0, cost.FULL_VCPU_MB / memory)
    box = TimeBox(timeout)
    return {
        "lambda_ms_per_image": round(lambda_ms),
        "batch_s": round(batch * lambda_ms / 1000, 1),
        "within_render_limit": lambda_ms / 1000 <= box.render_limit_s,
        "batch_within_timeout": batch * lambda_ms / 1000 <= timeout - box.reserve_s,
        "images_per_invocation": int((timeout - box.reserve_s) // (lambda_ms / 1000)),
        "within_memory": engine_row["peak_rss_mib"] <= memory,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        print(json.dumps(one(argv[1], argv[2], int(argv[3]))))
        return 0
    rounds = int(argv[0]) if argv else 1
    settings = _settings()
    results = {"settings": settings, "images": []}
    for (name, source, size, _fmt, what), path in zip(GIANTS, make(), strict=True):
        row = {
            "file": name,
            "what": what,
            "made_from": source,
            "megapixels": round(size[0] * size[1] / 1e6, 1),
            "bytes": path.stat().st_size,
            "engine": _measure("engine", path, settings["memory_mb"], rounds),
            "vips_1thread": _measure("vips", path, settings["memory_mb"], rounds),
        }
        if "error" not in row["engine"]:
            row["fits"] = fits(row["engine"], settings)
        results["images"].append(row)
        print(f"bench.giants: {name}: {row['engine']}", file=sys.stderr, flush=True)
    out = ROOT / "bench" / "results" / "giants.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    s = settings
    print(f"\nConfigured: {s['memory_mb']} MB, {s['timeout_s']} s timeout, batch size {s['batch_size']}")
    print(
        f"{'image':24} {'MP':>5} {'MB':>5} | {'CPU ms':>7} {'wall ms':>7} {'RSS MiB':>7} | "
        f"{'vips CPU':>8} {'vips RSS':>8} | {'Lambda ms':>9} {'batch s':>7} {'per call':>8} {'fits':>4}"
    )
    for r in results["images"]:
        e, v, f = r["engine"], r["vips_1thread"], r.get("fits", {})
        if "error" in e:
            print(f"{r['file']:24} engine: {e['error']}")
            continue
        ok = f["within_render_limit"] and f["within_memory"]
        print(
            f"{r['file']:24} {r['megapixels']:5.0f} {r['bytes'] / 1e6:5.1f} | {e['cpu_ms']:7.0f} "
            f"{e['wall_ms']:7.0f} {e['peak_rss_mib']:7.0f} | {v.get('cpu_ms', 0):8.0f} "
            f"{v.get('peak_rss_mib', 0):8.0f} | {f['lambda_ms_per_image']:9} {f['batch_s']:7} "
            f"{f['images_per_invocation']:8} {'yes' if ok else 'NO':>4}"
        )
    print(f"\nbench.giants: results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
