"""Cold start: importing a handler in a fresh interpreter, and the package's size.

Two measures per handler, each the median of several fresh processes:

- ``import_ms``: the handler module's own import tree from ``python -X importtime
  -c "import <handler>"``, with every boto3/botocore (and s3transfer) subtree left
  out: the Lambda runtime has boto3 already, and the target excludes it;
- ``wall_ms``: wall time of ``python -c "import <handler>"`` minus that of
  ``python -c "pass"``: everything the import costs, boto3 included.

The handlers are imported from the source tree (``lambda/``) with this
virtualenv's site-packages, which hold the same pinned versions as
``lambda.zip``; the zip itself is built for the function's architecture
(arm64 by default) and runtime, so it cannot be imported here.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from bench import LAMBDA_DIR, ROOT

HANDLERS = ("resize_handler", "upload_handler")
EXCLUDED = ("boto3", "botocore", "s3transfer")

# What Terraform gives each function (names only matter; no request is made).
ENV = {
    "UPLOADS_BUCKET": "bench-uploads",
    "RESIZED_BUCKET": "bench-resized",
    "TABLE_NAME": "bench-images",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
    "LOG_LEVEL": "WARNING",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update(ENV)
    env["PYTHONPATH"] = str(LAMBDA_DIR)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def parse_importtime(stderr: str, module: str) -> dict[str, float]:
    """Microseconds of ``module``'s import tree, split into boto (excluded) and the rest.

    ``-X importtime`` prints each module after its children, indented by depth;
    a module's ``cumulative`` covers its whole subtree.
    """
    nodes: list[tuple[int, str, int, int]] = []  # depth, name, self_us, cumulative_us
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        nodes.append((depth, name.strip(), int(self_us), int(cumulative_us)))
    # the last top-level entry named ``module`` is the import under test; its subtree precedes it
    end = max(i for i, n in enumerate(nodes) if n[0] == 0 and n[1] == module)
    start = end
    while start > 0 and nodes[start - 1][0] > 0:
        start -= 1
    subtree = nodes[start : end + 1]
    total = subtree[-1][3]
    excluded = 0
    skip_below: int | None = None
    # walk in reverse (parents before children) so an excluded parent hides its children
    for depth, name, _, cumulative in reversed(subtree):
        if skip_below is not None and depth > skip_below:
            continue
        skip_below = None
        if name.split(".")[0] in EXCLUDED:
            excluded += cumulative
            skip_below = depth
    return {"total_us": total, "boto_us": excluded, "without_boto_us": total - excluded}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, check=False
    )


def measure(rounds: int) -> dict:
    results: dict = {"source": "lambda/ with the bench virtualenv's site-packages", "handlers": {}}
    startup = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        _run(["-c", "pass"])
        startup.append((time.perf_counter() - t0) * 1000)
    results["interpreter_startup_ms"] = round(statistics.median(startup), 1)
    for module in HANDLERS:
        if not (LAMBDA_DIR / f"{module}.py").exists():
            results["handlers"][module] = {"error": f"lambda/{module}.py does not exist"}
            continue
        walls, parsed = [], []
        error = None
        for _ in range(rounds):
            t0 = time.perf_counter()
            plain = _run(["-c", f"import {module}"])
            walls.append((time.perf_counter() - t0) * 1000)
            traced = _run(["-X", "importtime", "-c", f"import {module}"])
            if plain.returncode or traced.returncode:
                error = (plain.stderr or traced.stderr).strip().splitlines()[-1]
                break
            parsed.append(parse_importtime(traced.stderr, module))
        if error:
            results["handlers"][module] = {"error": error}
            continue
        results["handlers"][module] = {
            "import_ms": round(statistics.median(p["without_boto_us"] for p in parsed) / 1000, 1),
            "import_with_boto_ms": round(statistics.median(p["total_us"] for p in parsed) / 1000, 1),
            "wall_ms": round(statistics.median(walls) - results["interpreter_startup_ms"], 1),
        }
    return results


def package_size(zip_path: Path) -> dict:
    """Zipped and unzipped size of lambda.zip, and its largest top-level entries."""
    if not zip_path.exists():
        return {"error": f"{zip_path} does not exist"}
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    by_top: dict[str, int] = {}
    for info in infos:
        top = info.filename.split("/", 1)[0]
        by_top[top] = by_top.get(top, 0) + info.file_size
    largest = sorted(by_top.items(), key=lambda kv: -kv[1])[:8]
    return {
        "path": str(zip_path.relative_to(ROOT) if zip_path.is_relative_to(ROOT) else zip_path),
        "zipped_bytes": zip_path.stat().st_size,
        "unzipped_bytes": sum(i.file_size for i in infos),
        "files": len(infos),
        "largest_unzipped": [{"entry": k, "bytes": v} for k, v in largest],
    }
