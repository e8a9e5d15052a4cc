"""A development bench's results file (``bench.stages``, ``bench.resize_options``), and the load
average every bench records (``bench.run`` too).

Its rows, the rounds each median was taken over, and the machine's load average
before and after: other work on the machine skews CPU times, so a file keeps
how busy the machine was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def write(path: Path, rounds: int, load_start: list[float], rows: list[dict]) -> dict:
    """Write ``rows`` with the rounds and the load averages to ``path`` (JSON); what was written."""
    results = {
        "rounds": rounds,
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "images": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results
