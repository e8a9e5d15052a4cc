"""Benchmarks behind ``make bench``: the resize engine against naive Pillow and libvips.

``bench.corpus`` fetches real photographs (Debian wallpaper packages, scikit-image's
sample images) into ``bench/corpus``; ``bench.run`` measures speed, memory, quality,
cold start, the local stack's throughput and the cost per million images, prints a
table and writes ``bench/results/latest.json``. A benchmark is not a test:
``make test`` times nothing.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = ROOT / "lambda"
# The Lambda source root, as in the tests: ``imgpipe`` and the handlers import from it.
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))
