"""The resize stage's CPU against its quality, for each way of resizing we could ship (issue 16).

``python -m bench.resize_options [--only TEXT] [--option NAME]`` (a development
tool, not part of ``make bench``) decodes each image once as the engine does
(``imgpipe.decode.decode_source``, one thread), then runs the resize stage
(``imgpipe.resize.cascade``: every rendition cut, upright, in sRGB) once per
option per round, the options taking turns, and prints per image and option the
median CPU ms (``time.process_time``, ``BENCH_ROUNDS`` rounds, default 5) and
the worst rendition's PSNR against a full LANCZOS resize of the full decode
(``quality.reference_image``, what the tests assert). Results go to
``bench/results/resize_options.json``.

Images: the corpus's large JPEGs and PNGs, and the synthetic photos of
``tests/test_engine_quality.py`` with the renditions each test asks for (the
hard cases of the DCT scales and of the cascade), and a logo with hard alpha
edges. An option sets the final filter (``RESAMPLE``), ``REDUCING_GAP``,
``CASCADE_GAP`` and how RGBA is premultiplied, by patching a resize module for
its turn: the shipped ``imgpipe.resize``, or for every other option the one of
commit ``BEFORE``, read with ``git show`` (so the tool needs the repository's
history).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from PIL import Image, ImageDraw, ImageOps

from bench import ROOT, corpus, results_file
from imgpipe import resize as resizing
from imgpipe.decode import Decoded, Source, decode_source
from imgpipe.options import EngineOptions
from imgpipe.renditions import Rendition, default_renditions
from quality import CASCADED_RENDITIONS, psnr, reference_image
from tests import images

OUT = ROOT / "bench" / "results" / "resize_options.json"
LANCZOS = Image.Resampling.LANCZOS
BICUBIC = Image.Resampling.BICUBIC
HAMMING = Image.Resampling.HAMMING
BILINEAR = Image.Resampling.BILINEAR
MKS2013 = Image.Resampling.MKS2013


BEFORE = "bdc24fd"  # the commit before issue 16's resize work: its imgpipe/resize.py is "before"


@dataclasses.dataclass(frozen=True)
class Option:
    """One way to resize: the cascade's code, the final filter, the gaps, RGBA's order."""

    name: str
    resample: Image.Resampling = LANCZOS
    reducing_gap: float = 1.25
    cascade_gap: float = 2.0 * 0.99
    before: bool = True  # imgpipe/resize.py as of BEFORE (else as shipped in this tree)
    premultiply_after_reduce: bool = (
        False  # RGBA/LA: box-reduce straight alpha, premultiply the reduced image
    )
    cascaded: Image.Resampling | None = None  # the filter for renditions cut from a made rendition


OPTIONS = [
    Option("before: lanczos, gap 1.25, smallest made source"),
    Option("shipped: cheapest source, alpha premultiplied once", before=False),
    Option("lanczos, gap 1.1", reducing_gap=1.1),
    Option("lanczos, gap 1.0", reducing_gap=1.0),
    Option("bicubic", BICUBIC),
    Option("bicubic, gap 1.1", BICUBIC, 1.1),
    Option("hamming", HAMMING),
    Option("bilinear", BILINEAR),
    Option("mks2013", MKS2013),
    Option("lanczos; bicubic from a made rendition", cascaded=BICUBIC),
    Option("lanczos; hamming from a made rendition", cascaded=HAMMING),
    Option("cascade gap 3", cascade_gap=3.0 * 0.99),
    Option("cascade gap 1.5", cascade_gap=1.5 * 0.99),
    Option("RGBA box-reduced before premultiplying", premultiply_after_reduce=True),
]


@functools.cache
def _before() -> ModuleType:
    """``imgpipe/resize.py`` as of ``BEFORE``, read from git, as the module ``imgpipe.resize_before``."""
    text = subprocess.run(
        ["git", "show", f"{BEFORE}:lambda/imgpipe/resize.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = ModuleType("imgpipe.resize_before")
    exec(compile(text, f"{BEFORE}:lambda/imgpipe/resize.py", "exec"), module.__dict__)
    return module


def _premultiplying_late(module: ModuleType) -> Callable[..., Image.Image]:
    """``module.resize``, but an RGBA/LA source is box-reduced in straight alpha, then premultiplied."""
    shipped = module.resize

    def resize(im: Image.Image, size, box, pool=None, workers: int = 1) -> Image.Image:
        if im.mode not in ("RGBA", "LA"):
            return shipped(im, size, box, pool, workers)
        mode = im.mode
        factor_x = int((box[2] - box[0]) / size[0] / module.REDUCING_GAP) or 1
        factor_y = int((box[3] - box[1]) / size[1] / module.REDUCING_GAP) or 1
        if factor_x > 1 or factor_y > 1:
            im.load()
            im = im._new(im.im.reduce((factor_x, factor_y), (0, 0, *im.size)))  # Image.reduce premultiplies
            box = (box[0] / factor_x, box[1] / factor_y, box[2] / factor_x, box[3] / factor_y)
        out = im.convert(mode[:-1] + "a").resize(size, module.RESAMPLE, box=box)
        return out.convert(mode)

    return resize


_DECODES: list[Image.Image] = []  # the decode of the image being measured


def _filter_by_source(module: ModuleType, option: Option) -> Callable[..., Image.Image]:
    """``module.resize`` with ``option.cascaded`` as the filter when the source is a made rendition."""
    shipped = module.resize

    def resize(im: Image.Image, size, box, pool=None, workers: int = 1) -> Image.Image:
        module.RESAMPLE = option.resample if any(im is d for d in _DECODES) else option.cascaded
        try:
            return shipped(im, size, box, pool, workers)
        finally:
            module.RESAMPLE = option.resample

    return resize


@contextlib.contextmanager
def patched(option: Option) -> Iterator[ModuleType]:
    """The resize module of ``option``, its settings set for the duration."""
    module = _before() if option.before else resizing
    saved = (module.RESAMPLE, module.REDUCING_GAP, module.CASCADE_GAP, module.resize)
    module.RESAMPLE = option.resample
    module.REDUCING_GAP = option.reducing_gap
    module.CASCADE_GAP = option.cascade_gap
    if option.premultiply_after_reduce:
        module.resize = _premultiplying_late(module)
    elif option.cascaded is not None:
        module.resize = _filter_by_source(module, option)
    try:
        yield module
    finally:
        module.RESAMPLE, module.REDUCING_GAP, module.CASCADE_GAP, module.resize = saved


@dataclasses.dataclass
class Case:
    name: str
    data: Callable[[], bytes]
    renditions: list[Rendition]


def _synthetic() -> list[Case]:
    """The photos and renditions of tests/test_engine_quality.py."""
    defaults = default_renditions()
    cascaded = list(CASCADED_RENDITIONS)
    with_c96 = [*defaults, Rendition("c96", 96, 96, "cover", ("webp",))]

    def rotated() -> bytes:
        exif = Image.Exif()
        exif[0x0112] = 6
        return images.encode(images.photo(1800, 2400), "JPEG", quality=92, exif=exif.tobytes())

    def png(mode: str) -> bytes:
        photo = images.photo(4000, 3000)
        if mode == "RGBA":
            photo.putalpha(ImageOps.invert(photo.convert("L")).point(lambda v: min(255, v + 40)))
        return images.encode(photo, "PNG", compress_level=1)

    def logo(background: tuple[int, int, int, int]) -> bytes:
        """Opaque shapes with hard edges on a transparent background of one colour, as logos are stored."""
        im = Image.new("RGBA", (4000, 3000), background)
        draw = ImageDraw.Draw(im)
        for i in range(40):
            x, y = (i * 397) % 3600, (i * 211) % 2600
            draw.ellipse(
                (x, y, x + 300 + i * 7, y + 250), fill=(255, 255, 255, 255) if i % 2 else (250, 200, 30, 255)
            )
            draw.rectangle((x + 50, y + 30, x + 51 + i % 5, y + 400), fill=(20, 120, 240, 255))
        return images.encode(im, "PNG", compress_level=1)

    return [
        Case("synthetic 4000x3000 JPEG", lambda: images.photo_jpeg(4000, 3000, quality=92), defaults),
        Case(
            "synthetic 4000x3000 JPEG, cascaded sizes",
            lambda: images.photo_jpeg(4000, 3000, quality=92),
            cascaded,
        ),
        *(
            Case(
                f"synthetic {w}x{h} JPEG {sub}",
                lambda w=w, h=h, sub=sub: images.photo_jpeg(w, h, quality=92, subsampling=sub),
                defaults,
            )
            for (w, h), sub in [((4300, 2900), "4:4:4"), ((4300, 2900), "4:2:0"), ((5973, 3391), "4:2:2")]
        ),
        Case("synthetic 1800x2400 JPEG, orientation 6", rotated, defaults),
        Case("synthetic 4000x3000 PNG RGB", lambda: png("RGB"), with_c96),
        Case("synthetic 4000x3000 PNG RGBA", lambda: png("RGBA"), with_c96),
        Case("synthetic 4000x3000 logo PNG on transparent black", lambda: logo((0, 0, 0, 0)), defaults),
    ]


def _corpus() -> list[Case]:
    found = corpus.load(Path(os.environ.get("BENCH_CORPUS") or corpus.DEFAULT_DIR))
    found = [i for i in found if i.category in ("jpeg-large", "png-large")]
    return [Case(i.name, i.path.read_bytes, default_renditions()) for i in found]


def _run(
    module: ModuleType, decoded: Decoded, source: Source, case: Case
) -> tuple[float, dict[str, Image.Image]]:
    fresh = dataclasses.replace(decoded, source=Source(source.image, source.sx, source.sy))
    opts = EngineOptions(threads=1)
    start = time.process_time()
    out = module.cascade(fresh, case.renditions, opts)
    return (time.process_time() - start) * 1000, out


def measure(case: Case, options: list[Option], rounds: int) -> dict:
    data = case.data()
    decoded = decode_source(data, case.renditions, EngineOptions(threads=1))
    source = decoded.source
    _DECODES[:] = [source.image]
    references = {r.name: reference_image(data, r) for r in case.renditions}
    row: dict = {"image": case.name, "options": {}}
    cpu: dict[str, list[float]] = {o.name: [] for o in options}
    for option in options:  # warm-up, and the quality of each option
        with patched(option) as module:
            _, out = _run(module, decoded, source, case)
        each = {r.name: round(psnr(out[r.name], references[r.name]), 2) for r in case.renditions}
        row["options"][option.name] = {"worst_psnr_db": min(each.values()), "psnr_db": each}
    for _ in range(rounds):
        for option in options:
            with patched(option) as module:
                ms, _ = _run(module, decoded, source, case)
            cpu[option.name].append(ms)
    for option in options:
        row["options"][option.name]["cpu_ms"] = round(statistics.median(cpu[option.name]), 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.resize_options", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT", help="only images whose name holds TEXT"
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="TEXT", help="only options whose name holds TEXT"
    )
    parser.add_argument("--no-synthetic", action="store_true", help="the corpus only")
    args = parser.parse_args(argv)
    rounds = int(os.environ.get("BENCH_ROUNDS") or 5)
    cases = _corpus() + ([] if args.no_synthetic else _synthetic())
    if args.only:
        cases = [c for c in cases if any(text in c.name for text in args.only)]
    options = [o for o in OPTIONS if not args.option or any(text in o.name for text in args.option)]
    if not cases:
        print("bench.resize_options: no images (make bench-corpus)", file=sys.stderr)
        return 2
    load = results_file.load_average()
    rows = []
    for case in cases:
        row = measure(case, options, rounds)
        rows.append(row)
        for name, result in row["options"].items():
            cpu, worst = result["cpu_ms"], result["worst_psnr_db"]
            print(f"{case.name[:44]:44} {name[:56]:56} {cpu:7.1f} ms {worst:6.2f} dB", flush=True)
    results = results_file.write(OUT, rounds, load, rows)
    print(f"load average {load} -> {results['load_average_end']}; bench.resize_options: results in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
