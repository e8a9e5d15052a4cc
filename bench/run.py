"""``make bench``: measure the engine against naive Pillow and libvips, and the rest of issue 6.

Environment: ``BENCH_CORPUS`` (a directory of your own images; default the
fetched corpus in ``bench/corpus``), ``BENCH_ROUNDS`` (timed rounds per
measurement, default 3; medians are reported), ``BENCH_UPLOADS`` (concurrent
uploads through the local stack, default 20; 0 skips the stack),
``BENCH_OUT`` (the JSON results, default ``bench/results/latest.json``).

Per image, in one process, the methods take turns within each round (so a
burst of load on the machine hits them alike): the engine (``engine.render``,
default renditions, its own encoder threads), the engine with one thread,
naive Pillow, libvips with one thread and with its default threads, and the
floor (draft decode + encodes). Then the engine's PSNR against a full LANCZOS
resize, and peak RSS of the engine, naive Pillow and libvips, each in a fresh
process.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import hashlib
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bench import ROOT, coldstart, corpus, cost, methods, results_file, stack
from imgpipe.detect import MIME_TYPES
from imgpipe.renditions import default_renditions

# Speed targets are on CPU time (all threads of the process, ``time.process_time``): below
# 1,769 MB a Lambda function has less than one vCPU, so threads shorten no bill. The engine
# runs as the handler calls it (its own threads); libvips on one thread.
TARGETS = {
    "jpeg_large_cpu_vs_vips": 0.85,
    "png_large_cpu_vs_vips": 1.1,
    "webp_cpu_vs_vips": 1.0,
    "jpeg_large_cpu_vs_naive": 0.5,
    "rss_vs_vips": 1.5,
    "rss_20mp_jpeg_mib": 125,
    "import_ms": 150,
    "zip_bytes": 15_000_000,
    "psnr_db": 40.0,
}
RSS_METHODS = ("engine", "naive", "vips")
# The engine's threads in the resize handler at the configured memory (imgpipe.limits.engine_threads):
# the CPU targets measure the engine run that way.
HANDLER_THREADS = methods.handler_threads()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def machine() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import PIL
    from PIL import features

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    engine_path = ROOT / "lambda" / "imgpipe" / "engine.py"
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "lambda"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": model,
        "cores": methods.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "libwebp": features.version("webp"),
        "pillow_heif": version("pillow-heif"),
        "isal": version("isal"),  # ISA-L's inflate for big PNGs (imgpipe.pngdecode)
        "pyvips": version("pyvips"),
        "libvips": methods.Vips().version(),
        "git_commit": git.stdout.strip(),
        "lambda_dir_uncommitted_changes": bool(dirty),
        "engine_sha256": hashlib.sha256(engine_path.read_bytes()).hexdigest()[:12],
    }


def bench_image(image: corpus.CorpusImage, renditions, rounds: int, vips: methods.Vips) -> dict:
    data = image.path.read_bytes()
    load_1min = results_file.load_average()[0]  # other work on the machine skews the numbers: keep a note
    floor = methods.Floor(data, renditions)

    def run_vips(threads: int):
        vips.set_threads(threads)
        return vips.render(data, renditions)

    runs = {
        "engine": lambda: methods.render_engine(data, renditions),
        "engine_1thread": lambda: methods.render_engine(data, renditions, threads=1),
        "naive": lambda: methods.render_naive(data, renditions),
        "vips_1thread": lambda: run_vips(1),
        "vips_default": lambda: run_vips(0),
        "floor_decode": floor.decode,
        "floor_encode": floor.encode,
    }
    walls: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[float]] = {k: [] for k in runs}
    outputs: dict[str, dict] = {}
    for name, fn in runs.items():  # warm-up: first-call imports and caches are not timed
        outputs[name] = fn()
    for _ in range(rounds):
        for name, fn in runs.items():
            wall, cpu, _ = methods.timed(fn, 1)
            walls[name] += wall
            cpus[name] += cpu
    ms = {k: _median(v) for k, v in walls.items()}
    handler = "engine_1thread" if HANDLER_THREADS == 1 else "engine"
    cpu_ms = {k: _median(v) for k, v in cpus.items()}
    ms["floor"] = round(ms["floor_decode"] + ms["floor_encode"], 1)
    cpu_ms["floor"] = round(cpu_ms["floor_decode"] + cpu_ms["floor_encode"], 1)
    mp = image.width * image.height / 1e6
    result = {
        **image.describe(),
        "load_average_1min": load_1min,
        "ms": ms,
        "cpu_ms": cpu_ms,
        "engine_threads": methods.engine_threads(),
        "handler_threads": HANDLER_THREADS,
        "engine_mp_per_s": round(mp / (ms["engine"] / 1000), 1),
        "engine_cpu_mp_per_s": round(mp / (cpu_ms["engine"] / 1000), 1),
        "output_bytes": {
            k: sum(len(b) for b in outputs[k].values())
            for k in ("engine", "naive", "vips_1thread", "floor_encode")
        },
        # CPU time: what a Lambda function at under one vCPU is billed for (the targets' figure)
        # engine = as the resize handler runs it at the configured memory (HANDLER_THREADS)
        "cpu_ratios": {
            "engine/vips_1thread": round(cpu_ms[handler] / cpu_ms["vips_1thread"], 2),
            "engine_all_cpus/vips_1thread": round(cpu_ms["engine"] / cpu_ms["vips_1thread"], 2),
            "engine/naive": round(cpu_ms[handler] / cpu_ms["naive"], 2),
            "engine/floor": round(cpu_ms[handler] / (cpu_ms["floor_decode"] + cpu_ms["floor_encode"]), 2),
        },
        # wall time: the engine with its own threads (engine) or one (engine_1thread)
        "ratios": {
            "engine/vips_1thread": round(ms["engine"] / ms["vips_1thread"], 2),
            "engine/vips_default": round(ms["engine"] / ms["vips_default"], 2),
            "engine/naive": round(ms["engine"] / ms["naive"], 2),
            "engine/floor": round(ms["engine"] / ms["floor"], 2),
            "engine_1thread/vips_1thread": round(ms["engine_1thread"] / ms["vips_1thread"], 2),
        },
        "rendition_sizes": {
            r.name: list(s) for r, s in zip(renditions, _sizes(data, renditions), strict=True)
        },
    }
    result["psnr_db"] = {
        k: (round(v, 2) if v != float("inf") else None) for k, v in methods.quality(data, renditions).items()
    }
    result["psnr_min_db"] = min((v for v in result["psnr_db"].values() if v is not None), default=None)
    rss = result["peak_rss_mib"] = {m: _rss(m, image.path) for m in RSS_METHODS}
    result["rss_ratio"] = round(rss["engine"] / rss["vips"], 2) if rss["engine"] and rss["vips"] else None
    return result


def _sizes(data: bytes, renditions) -> list[tuple[int, int]]:
    sizes = methods.rendition_sizes(data, renditions)
    return [sizes[r.name] for r in renditions]


def _rss(method: str, path: Path) -> float | None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rss", method, str(path)], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)["peak_mib"]


def profile_engine(image: corpus.CorpusImage, renditions) -> dict:
    """Where the engine's time goes on one image, all on one thread so cProfile sees it.

    ``render_images`` (decode + resize cascade) then ``engine.encode`` of each output:
    the same work ``render`` does, without the encoder pool.
    """
    from imgpipe import engine

    data = image.path.read_bytes()
    methods.Floor(data, renditions)  # warm-up
    profiler = cProfile.Profile()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    profiler.enable()
    info, images = engine.render_images(data, renditions)
    profiler.disable()
    stages["decode + resize cascade (render_images)"] = (time.perf_counter() - t0) * 1000
    for r in renditions:
        for fmt in r.formats:
            t0 = time.perf_counter()
            profiler.enable()
            engine.encode(images[r.name], fmt, r.quality, (255, 255, 255), info.icc_profile)
            profiler.disable()
            stages[f"encode {r.name} {fmt} {images[r.name].size[0]}x{images[r.name].size[1]}"] = (
                time.perf_counter() - t0
            ) * 1000
    decode = methods.timed(methods.Floor(data, renditions).decode, 3)[0]
    stages["of which: draft decode alone"] = statistics.median(decode)
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, func), (_, ncalls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = func if filename == "~" else f"{Path(filename).name}:{line}({func})"
        rows.append({"function": where, "calls": ncalls, "self_ms": round(tottime * 1000, 1)})
    rows.sort(key=lambda r: -r["self_ms"])
    return {
        "image": image.name,
        "stages_ms": {k: round(v, 1) for k, v in stages.items()},
        "top_self_time": rows[:12],
    }


def evaluate(images: list[dict], cold: dict, package: dict) -> list[dict]:
    """Each target: where the engine stands, per image where it applies."""
    checks = []

    def add(
        target: str, limit: float, rows: list[tuple[str, float]], unit: str, lower_is_better=True
    ) -> None:
        for name, value in rows:
            ok = value <= limit if lower_is_better else value >= limit
            checks.append(
                {"target": target, "image": name, "value": value, "limit": limit, "unit": unit, "met": ok}
            )

    large_jpeg = [i for i in images if i["category"] == "jpeg-large"]
    large_png = [i for i in images if i["category"] == "png-large"]
    webp = [i for i in images if i["format"] == "webp"]
    for label, key, group in (
        ("large JPEG", "jpeg_large_cpu_vs_vips", large_jpeg),
        ("large PNG", "png_large_cpu_vs_vips", large_png),
        ("WebP input", "webp_cpu_vs_vips", webp),
    ):
        add(
            f"{label}: engine / libvips (1 thread), CPU",
            TARGETS[key],
            [(i["file"], i["cpu_ratios"]["engine/vips_1thread"]) for i in group],
            "x",
        )
    add(
        "large JPEG: engine / naive Pillow, CPU",
        TARGETS["jpeg_large_cpu_vs_naive"],
        [(i["file"], i["cpu_ratios"]["engine/naive"]) for i in large_jpeg],
        "x",
    )
    add(
        "peak RSS: engine / libvips (1 thread)",
        TARGETS["rss_vs_vips"],
        [(i["file"], i["rss_ratio"]) for i in images if i.get("rss_ratio") is not None],
        "x",
    )
    twenty = [i for i in images if i["format"] == "jpeg" and 18 <= i["megapixels"] <= 22]
    add(
        "peak RSS, 20 MP JPEG",
        TARGETS["rss_20mp_jpeg_mib"],
        [(i["file"], i["peak_rss_mib"]["engine"]) for i in twenty if i["peak_rss_mib"]["engine"]],
        "MiB",
    )
    for module, row in cold.get("handlers", {}).items():
        if "import_ms" in row:
            add("handler import, boto3 excluded", TARGETS["import_ms"], [(module, row["import_ms"])], "ms")
    if "zipped_bytes" in package:
        add("lambda.zip size", TARGETS["zip_bytes"], [("build/lambda.zip", package["zipped_bytes"])], "bytes")
    add(
        "PSNR vs full LANCZOS (worst rendition)",
        TARGETS["psnr_db"],
        [(i["file"], i["psnr_min_db"]) for i in images if i["psnr_min_db"] is not None],
        "dB",
        lower_is_better=False,
    )
    return checks


def _median_image(images: list[corpus.CorpusImage]) -> corpus.CorpusImage:
    """The image of median pixel count (ties: a JPEG, the usual upload)."""
    ordered = sorted(images, key=lambda i: (i.width * i.height, i.format != "jpeg"))
    middle = ordered[len(ordered) // 2]
    same = [i for i in ordered if i.width * i.height == middle.width * middle.height and i.format == "jpeg"]
    return same[0] if same else middle


def _ensure_package() -> Path:
    zip_path = ROOT / "build" / "lambda.zip"
    if not zip_path.exists():
        make = subprocess.run(["make", "-s", "package"], cwd=ROOT, capture_output=True, text=True)
        if make.returncode != 0:
            print(f"bench: make package failed: {make.stderr.strip()[-500:]}", file=sys.stderr)
    return zip_path


def print_report(results: dict) -> None:
    m = results["machine"]
    print(
        f"\nMachine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, Pillow {m['pillow']}, "
        f"libvips {m['libvips']} (pyvips {m['pyvips']}); load average {results['load_average']['start']} "
        f"-> {results['load_average']['end']}; {results['rounds']} rounds, medians"
    )
    first = results["images"][0] if results["images"] else {}
    threads, handler = first.get("engine_threads", "?"), first.get("handler_threads", "?")
    head = (
        f"{'image':38} {'MP':>5} | {'engine':>6} {'eng1':>6} {'vips1':>6} {'naive':>6} {'e/v1':>5} "
        f"{'e/n':>5} | {'engine':>6} {'vips1':>6} {'vipsN':>6} | {'RSS':>5} {'e/v':>5} {'PSNR':>5}"
    )
    print(f"\n{'':44} | CPU ms (all threads){'':20} | wall ms{'':15} |")
    print(head)
    print("-" * len(head))
    for i in results["images"]:
        cpu, ms, r = i["cpu_ms"], i["ms"], i["cpu_ratios"]
        rss = i["peak_rss_mib"]["engine"]
        print(
            f"{i['file'][:38]:38} {i['megapixels']:5.1f} | {cpu['engine']:6.0f} {cpu['engine_1thread']:6.0f} "
            f"{cpu['vips_1thread']:6.0f} {cpu['naive']:6.0f} {r['engine/vips_1thread']:5.2f} "
            f"{r['engine/naive']:5.2f} | {ms['engine']:6.0f} {ms['vips_1thread']:6.0f} "
            f"{ms['vips_default']:6.0f} | {(rss or 0):5.0f} {(i['rss_ratio'] or 0):5.2f} "
            f"{(i['psnr_min_db'] or 99):5.1f}"
        )
    print(
        f"\nCPU ms: process CPU time for the whole rendition set, every thread counted (what Lambda bills "
        f"below one vCPU); engine = on all {threads} CPUs, eng1 = engine on one thread, vips1 = libvips on "
        f"one thread; e/v1, e/n = engine as the resize handler runs it at the configured memory ({handler} "
        f"thread(s)) / libvips 1 thread, and / naive Pillow, in CPU time. Wall ms: engine on {threads} "
        "threads, libvips on 1 (vips1) and on its default threads (vipsN). RSS = engine peak MiB in a "
        "fresh process, e/v = engine / libvips (1 thread); "
        "PSNR = worst rendition, dB (99 = identical)"
    )
    cold = results["cold_start"]
    for module, row in cold.get("handlers", {}).items():
        if "error" in row:
            print(f"cold start {module}: {row['error']}")
        else:
            print(
                f"cold start {module}: import {row['import_ms']} ms without boto3 "
                f"({row['import_with_boto_ms']} ms with), fresh-process wall {row['wall_ms']} ms"
            )
    pkg = results["package"]
    if "error" in pkg:
        print(f"lambda.zip: {pkg['error']}")
    else:
        print(
            f"lambda.zip: {pkg['zipped_bytes'] / 1e6:.2f} MB zipped, "
            f"{pkg['unzipped_bytes'] / 1e6:.2f} MB unzipped"
        )
    st = results["local_stack"]
    if "error" in st:
        print(f"local stack: {st['error']}")
    elif "latency_p50_ms" in st:
        fn = st.get("resize_function") or {}
        if fn:
            print(
                f"local stack resize function: {fn['invocations']} batches, "
                f"{fn.get('ms_per_image')} ms per image, max memory used {fn['max_memory_used_mb']} MB"
            )
        if st.get("handler_stages_ms"):
            steps = ", ".join(f"{k} {v}" for k, v in st["handler_stages_ms"].items())
            print(f"local stack resize handler, median ms per image by step: {steps}")
        print(
            f"local stack: {st['done']}/{st['uploads']} done, upload-to-done p50 {st['latency_p50_ms']} ms, "
            f"p95 {st['latency_p95_ms']} ms, {st['images_per_s']} images/s ({st['image']}); "
            f"ready in {st['ready_s']} s from nothing, {st.get('ready_warm_s', 'n/a')} s from its snapshot"
        )
    else:
        print(f"local stack: {st}")
    c = results["cost"]
    for row in c["lambda"]:
        usd = row["usd_per_million"]
        configured = " (configured)" if row["configured"] else ""
        print(
            f"cost ({row['basis']}) at {row['memory_mb']} MB{configured}, {row['duration_ms']} ms per image: "
            f"${usd['arm64']} arm64, ${usd['x86_64']} x86_64 per million images"
        )
    print(
        f"other services (S3, SQS, DynamoDB, API): ${c['other_services_total_usd_per_million']} per million"
    )
    print("\nTargets:")
    for check in results["targets"]:
        mark = "met " if check["met"] else "MISS"
        print(
            f"  {mark} {check['target']:46} {check['image'][:40]:40} {check['value']} {check['unit']} "
            f"(limit {check['limit']})"
        )


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT", help="only the images whose name holds TEXT"
    )
    parser.add_argument("--skip-cold", action="store_true", help="no cold-start or package measurement")
    parser.add_argument("--skip-stack", action="store_true", help="no local stack (as BENCH_UPLOADS=0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    rounds = int(os.environ.get("BENCH_ROUNDS") or 3)
    uploads = 0 if args.skip_stack else int(os.environ.get("BENCH_UPLOADS") or 20)
    corpus_dir = Path(os.environ.get("BENCH_CORPUS") or corpus.DEFAULT_DIR)
    out_path = Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "results" / "latest.json")
    images = corpus.load(corpus_dir)
    if args.only:
        images = [i for i in images if any(text in i.name for text in args.only)]
    if not images:
        print(f"bench: no images in {corpus_dir} (make bench-corpus, or BENCH_CORPUS=dir)", file=sys.stderr)
        return 2
    renditions = default_renditions()
    started = datetime.datetime.now(datetime.UTC)
    load_start = results_file.load_average()
    vips = methods.Vips()
    results: dict = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "rounds": rounds,
        "corpus": str(corpus_dir),
        "renditions": [r.__dict__ | {"formats": list(r.formats)} for r in renditions],
        "targets_defined": TARGETS,
        "images": [],
    }
    t0 = time.monotonic()
    for image in images:
        row = bench_image(image, renditions, rounds, vips)
        results["images"].append(row)
        print(
            f"bench: {image.name}: engine {row['ms']['engine']:.0f} ms, "
            f"libvips {row['ms']['vips_1thread']:.0f} ms, naive {row['ms']['naive']:.0f} ms",
            file=sys.stderr,
            flush=True,
        )

    if args.skip_cold:
        results["cold_start"], results["package"] = {}, {"error": "skipped (--skip-cold)"}
    else:
        results["cold_start"] = coldstart.measure(max(5, rounds))
        results["package"] = coldstart.package_size(_ensure_package())
    typical = _median_image(images)
    if uploads > 0:
        upload = (
            typical
            if typical.path.stat().st_size <= 4 * 1024 * 1024
            else min(images, key=lambda i: i.path.stat().st_size)
        )
        results["local_stack"] = stack.measure(upload.path, MIME_TYPES[upload.format], uploads)
    else:
        results["local_stack"] = {"error": "skipped (BENCH_UPLOADS=0 or --skip-stack)"}
    row = next(r for r in results["images"] if r["file"] == typical.name)
    handler_ms = results["local_stack"].get("resize_function", {}).get("ms_per_image")
    if results["local_stack"].get("image") != typical.name:
        handler_ms = None  # measured on another image: not comparable
    results["cost"] = cost.estimate(typical.name, row["ms"]["engine"], row["cpu_ms"]["engine"], handler_ms)
    results["targets"] = evaluate(results["images"], results["cold_start"], results["package"])
    # a profile of the worst miss of each speed target, for the engine's author
    missed = [c for c in results["targets"] if not c["met"] and "CPU" in c["target"]]
    results["profiles"] = []
    for target in dict.fromkeys(c["target"] for c in missed):
        worst = max((c for c in missed if c["target"] == target), key=lambda c: c["value"])
        image = next(i for i in images if i.name == worst["image"])
        results["profiles"].append({"target": target, **profile_engine(image, renditions)})
    results["load_average"] = {"start": load_start, "end": results_file.load_average()}
    results["duration_s"] = round(time.monotonic() - t0, 1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    for p in results["profiles"]:
        print(f"\nProfile of the engine on {p['image']} (one thread; missed: {p['target']}):")
        for stage, value in p["stages_ms"].items():
            print(f"  {value:8.1f} ms  {stage}")
        for row in p["top_self_time"][:6]:
            print(f"  {row['self_ms']:8.1f} ms self  {row['function']} x{row['calls']}")
    print(f"\nbench: results in {out_path} ({results['duration_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
