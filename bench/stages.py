"""Where the CPU time goes, stage by stage: the engine on one thread against libvips on one thread.

``python -m bench.stages [--only TEXT]`` (default: the corpus's large JPEGs and
PNGs) prints, per image, the CPU milliseconds (``time.process_time``, median of
``BENCH_ROUNDS`` rounds, default 5) of each stage, and writes
``bench/results/stages.json``:

- engine: ``decode`` (``imgpipe.decode.decode_source``: header checks, the
  DCT-scaled JPEG or ISA-L PNG decode, mode normalisation), ``resize``
  (``imgpipe.resize.cascade``: each rendition cut, turned upright and
  converted to sRGB, largest first), ``encode`` (``imgpipe.encode`` of each
  output, one after another);
- libvips: ``decode`` (the load alone: for a JPEG at the largest
  shrink-on-load factor that still holds the largest rendition, as
  ``thumbnail`` may pick), ``resize`` (the ``thumbnail`` cascade of
  ``bench.methods.Vips`` without its encodes, less that decode: an estimate,
  since libvips decodes and resizes in one pipeline), ``encode`` (the same
  savers and settings as ``bench.methods.Vips``).

Both run in this one process, taking turns in each round. The stage with the
largest gap is where the engine loses to libvips.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import ROOT, corpus, methods, results_file
from imgpipe import encode as encoder
from imgpipe.decode import decode_source
from imgpipe.options import EngineOptions
from imgpipe.renditions import default_renditions
from imgpipe.resize import cascade

OUT = ROOT / "bench" / "results" / "stages.json"
STAGES = ("decode", "resize", "encode")


def _cpu_ms(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


def engine_stages(data: bytes, renditions) -> dict[str, float]:
    """One round of the engine, on one thread, stage by stage (CPU ms)."""
    opts = EngineOptions(threads=1)
    out: dict[str, float] = {}
    start = time.process_time()
    decoded = decode_source(data, renditions, opts)
    out["decode"] = (time.process_time() - start) * 1000
    profile = decoded.colour.profile
    start = time.process_time()
    images = cascade(decoded, renditions, opts)
    out["resize"] = (time.process_time() - start) * 1000
    out["encode"] = sum(
        _cpu_ms(lambda r=r, f=f: encoder.encode(images[r.name], f, r.quality, (255, 255, 255), profile))
        for r in renditions
        for f in r.formats
    )
    return out


def _vips_shrink(vips, data: bytes, renditions) -> int:
    """The largest JPEG shrink-on-load factor (1, 2, 4, 8) whose decode still holds the largest rendition."""
    head = vips.pyvips.Image.new_from_buffer(data, "")
    if head.get("vips-loader") != "jpegload_buffer":
        return 1
    sizes = methods.rendition_sizes(data, renditions)
    need = max(max(w / head.width, h / head.height) for w, h in sizes.values())
    return max(s for s in (1, 2, 4, 8) if 1 / s >= need)


def vips_stages(vips, data: bytes, renditions) -> dict[str, float]:
    """One round of libvips, on one thread, stage by stage (CPU ms); resize is an estimate (module doc)."""
    pyvips = vips.pyvips
    shrink = _vips_shrink(vips, data, renditions)
    params = {"shrink": shrink} if shrink > 1 else {}
    out = {"decode": _cpu_ms(lambda: pyvips.Image.new_from_buffer(data, "", **params).copy_memory())}
    made: list = []

    def thumbnails() -> None:
        previous = None
        for r in sorted(renditions, key=lambda r: r.width * r.height, reverse=True):
            crop = "centre" if r.fit == "cover" else "none"
            if previous is None:
                im = pyvips.Image.thumbnail_buffer(data, r.width, height=r.height, size="down", crop=crop)
            else:
                im = previous.thumbnail_image(r.width, height=r.height, size="down", crop=crop)
            im = im.copy_memory()
            made.append((r, im))
            previous = im if r.fit == "contain" else previous

    out["resize"] = max(0.0, _cpu_ms(thumbnails) - out["decode"])
    out["encode"] = sum(
        _cpu_ms(lambda r=r, f=f, im=im: vips._encode(im, f, r.quality)) for r, im in made for f in r.formats
    )
    return out


def measure(image: corpus.CorpusImage, rounds: int, vips: methods.Vips) -> dict:
    data = image.path.read_bytes()
    renditions = default_renditions()
    vips.set_threads(1)
    runs = {
        "engine": lambda: engine_stages(data, renditions),
        "vips_1thread": lambda: vips_stages(vips, data, renditions),
    }
    for fn in runs.values():  # warm-up
        fn()
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            samples[name].append(fn())
    row: dict = {"file": image.name, "megapixels": round(image.width * image.height / 1e6, 1)}
    for name, rows in samples.items():
        row[name] = {stage: round(statistics.median(r[stage] for r in rows), 1) for stage in STAGES}
        row[name]["total"] = round(sum(row[name][stage] for stage in STAGES), 1)
    row["gap_ms"] = {s: round(row["engine"][s] - row["vips_1thread"][s], 1) for s in (*STAGES, "total")}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT", help="only images whose name holds TEXT"
    )
    args = parser.parse_args(argv)
    rounds = int(os.environ.get("BENCH_ROUNDS") or 5)
    images = corpus.load(Path(os.environ.get("BENCH_CORPUS") or corpus.DEFAULT_DIR))
    if args.only:
        images = [i for i in images if any(text in i.name for text in args.only)]
    else:
        images = [i for i in images if i.category in ("jpeg-large", "png-large")]
    if not images:
        print("bench.stages: no images (make bench-corpus)", file=sys.stderr)
        return 2
    vips = methods.Vips()
    load = results_file.load_average()
    rows = [measure(image, rounds, vips) for image in images]
    results = results_file.write(OUT, rounds, load, rows)
    print(
        f"CPU ms, one thread, median of {rounds} rounds; load average {load} -> {results['load_average_end']}"
    )
    print(f"{'image':42} {'stage':7} {'engine':>7} {'libvips':>7} {'gap':>7}")
    for row in rows:
        for stage in (*STAGES, "total"):
            e, v, gap = row["engine"][stage], row["vips_1thread"][stage], row["gap_ms"][stage]
            print(f"{row['file'][:42]:42} {stage:7} {e:7.1f} {v:7.1f} {gap:+7.1f}")
    print(f"bench.stages: results in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
