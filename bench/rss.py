"""Peak memory of one rendition set in a fresh process.

``python -m bench.rss METHOD PATH`` (METHOD: engine, as the resize handler runs
it at the configured memory; naive; or vips, one thread) renders the
image once with the default renditions and prints JSON: the process's peak RSS
after importing what the method needs and after rendering, in MiB. A fresh
process per image, so one image's peak does not hide another's.

The peak is the kernel's ``VmHWM`` (``/proc/self/status``), the high-water mark of
this process's own memory. ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used:
Linux carries it across ``exec``, so a child started from the (large) benchmark
process reports the parent's peak (576 MiB for a 0.3 MP image, measured).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def _peak_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no procfs: KiB on Linux


def main(argv: list[str]) -> int:
    method, path = argv
    import bench  # noqa: F401  (puts lambda/ on sys.path)
    from bench import methods
    from imgpipe.renditions import default_renditions

    renditions = default_renditions()
    vips = methods.Vips() if method == "vips" else None
    if vips is not None:
        vips.set_threads(1)
    data = Path(path).read_bytes()
    baseline = _peak_mib()
    if method == "engine":  # with the resize handler's threads at the configured memory
        out = methods.render_engine(data, renditions, threads=methods.handler_threads())
    elif method == "naive":
        out = methods.render_naive(data, renditions)
    elif method == "vips":
        out = vips.render(data, renditions)
    else:
        raise SystemExit(f"unknown method {method!r}")
    peak = _peak_mib()
    print(json.dumps({"baseline_mib": round(baseline, 1), "peak_mib": round(peak, 1), "outputs": len(out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
