"""Markdown tables from a results file, for docs/performance.md.

``python -m bench.report [results.json]`` prints them (default: the published
run, ``docs/bench-results.json``), so the docs quote the file, not a memory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import ROOT

PUBLISHED = ROOT / "docs" / "bench-results.json"


def _fmt(value, digits=0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def machine_line(r: dict) -> str:
    m = r["machine"]
    load = r["load_average"]
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, Pillow {m['pillow']} "
        f"(libjpeg-turbo {m['libjpeg_turbo']}, libwebp {m['libwebp']}), "
        + (f"isal {m['isal']}, " if m.get("isal") else "")
        + f"libvips {m['libvips']} "
        f"(pyvips {m['pyvips']}); commit {m['git_commit']}, {r['started']}; {r['rounds']} rounds, medians; "
        f"load average {load['start'][0]} at the start, {load['end'][0]} at the end (the machine was shared)."
    )


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


IMAGE_COLUMNS = [
    "image",
    "MP",
    "CPU ms engine, {threads} threads (1 thread)",
    "CPU ms libvips 1 thread",
    "CPU engine as the handler runs it ({handler} thread) / libvips",
    "CPU ms naive",
    "CPU engine / naive",
    "wall ms engine, {threads} threads",
    "wall ms libvips, 1 thread",
    "peak RSS MiB engine / naive / libvips",
    "RSS engine / libvips",
    "worst PSNR dB",
    "output KB",
]


def images_table(r: dict) -> list[str]:
    first = r["images"][0] if r["images"] else {}
    threads, handler = first.get("engine_threads", "?"), first.get("handler_threads", "?")
    columns = [c.format(threads=threads, handler=handler) for c in IMAGE_COLUMNS]
    lines = [_row(columns), "|---" + "|--:" * (len(columns) - 1) + "|"]
    for i in r["images"]:
        # results from before issue 16 have no CPU ratios: n/a
        ms, cpu, ratio, rss = i["ms"], i["cpu_ms"], i.get("cpu_ratios", {}), i["peak_rss_mib"]
        psnr = "identical" if i["psnr_min_db"] is None else _fmt(i["psnr_min_db"], 1)
        cells = [
            f"{i['file']} ({i['description']})",
            f"{i['megapixels']:.1f}",
            f"{_fmt(cpu['engine'])} ({_fmt(cpu['engine_1thread'])})",
            _fmt(cpu["vips_1thread"]),
            _fmt(ratio.get("engine/vips_1thread"), 2),
            _fmt(cpu["naive"]),
            _fmt(ratio.get("engine/naive"), 2),
            _fmt(ms["engine"]),
            _fmt(ms["vips_1thread"]),
            f"{_fmt(rss['engine'])} / {_fmt(rss['naive'])} / {_fmt(rss['vips'])}",
            _fmt(i.get("rss_ratio"), 2),
            psnr,
            _fmt(i["output_bytes"]["engine"] / 1024),
        ]
        lines.append(_row(cells))
    return lines


def targets_table(r: dict) -> list[str]:
    groups: dict[str, list[dict]] = {}
    for check in r["targets"]:
        groups.setdefault(check["target"], []).append(check)
    lines = ["| target | limit | where the engine stands | met |", "|---|--:|---|---|"]
    for target, checks in groups.items():
        unit = checks[0]["unit"]
        higher = "PSNR" in target
        worst = min(checks, key=lambda c: c["value"]) if higher else max(checks, key=lambda c: c["value"])
        met = sum(c["met"] for c in checks)
        value = worst["value"]
        shown = f"{value / 1e6:.2f} MB" if unit == "bytes" else f"{value} {unit}"
        limit = f"{worst['limit'] / 1e6:.0f} MB" if unit == "bytes" else f"{worst['limit']} {unit}"
        where = f"worst {shown} ({worst['image']})" if len(checks) > 1 else shown
        lines.append(f"| {target} | {limit} | {where} | {met} of {len(checks)} |")
    return lines


def cost_lines(r: dict) -> list[str]:
    c = r["cost"]
    columns = [
        "time measured",
        "memory",
        "billed ms per image",
        "arm64 USD per million",
        "x86_64 USD per million",
    ]
    lines = [_row(columns), "|---|--:|--:|--:|--:|"]
    for row in c["lambda"]:
        note = " (configured default)" if row["configured"] else ""
        usd = row["usd_per_million"]
        cells = [row["basis"], f"{row['memory_mb']} MB{note}", str(row["duration_ms"]), f"{usd['arm64']:.2f}"]
        lines.append(_row([*cells, f"{usd['x86_64']:.2f}"]))
    return lines


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else PUBLISHED
    r = json.loads(path.read_text())
    out = [machine_line(r), "", *images_table(r), "", *targets_table(r), "", *cost_lines(r)]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
