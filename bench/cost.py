"""USD per million images, from measured time and the configured memory.

Lambda prices (us-east-1, published rates, checked 2026-11-23): duration
$0.0000133334 per GB-s on arm64 and $0.0000166667 per GB-s on x86_64, requests
$0.20 per million, no free tier. Lambda gives a function CPU in proportion to
its memory, one full vCPU at 1,769 MB; below that, the CPU-bound part of a
render takes longer than on a full core. The duration model:

    duration = measured + max(0, engine CPU time x 1769 / memory MB - engine wall time)

where "measured" is the engine's wall time for the image or, when the local stack
ran, the resize handler's own duration per image there (its REPORT lines: the
engine plus the S3 and DynamoDB calls to the emulator on loopback);

assuming a Lambda vCPU (Graviton or x86) as fast as one core of the machine that
ran the benchmark, batch size 1, and no I/O wait (the S3 GET, six PUTs and two
DynamoDB writes add their latency to the billed duration).
"""

from __future__ import annotations

import re

from bench import ROOT

PRICES = {
    "region": "us-east-1",
    "checked": "2026-11-23",
    "lambda_arm64_usd_per_gb_s": 0.0000133334,
    "lambda_x86_64_usd_per_gb_s": 0.0000166667,
    "lambda_usd_per_million_requests": 0.20,
}
FULL_VCPU_MB = 1769
DEFAULT_MEMORY_MB = 1024

# Per image, other services (us-east-1 list prices; Standard storage class, on-demand table).
OTHER_REQUESTS = [
    ("S3 PUT: the original + 6 renditions", 7, 0.005 / 1000),
    ("S3 GET: the original, by the resize function", 1, 0.0004 / 1000),
    ("SQS: S3's send, the poller's receive and delete", 3, 0.40 / 1_000_000),
    ("DynamoDB on-demand: 3 writes (pending, processing, done), ~4 WRU", 4, 0.625 / 1_000_000),
    ("API Gateway HTTP API: the POST /images request", 1, 1.00 / 1_000_000),
]


def configured_memory() -> tuple[int, str]:
    """The resize function's default memory from variables.tf, or the assumed 1024 MB."""
    path = ROOT / "variables.tf"
    if path.exists():
        text = path.read_text()
        for name in ("resize_memory_mb", "resize_memory_size"):
            block = re.search(rf'variable\s+"{name}"\s*\{{(.*?)\n\}}', text, re.S)
            if block:
                default = re.search(r"^\s*default\s*=\s*(\d+)", block.group(1), re.M)
                if default:
                    return int(default.group(1)), f"variables.tf var.{name} default"
    return DEFAULT_MEMORY_MB, "assumed (variables.tf has no resize memory default)"


def lambda_ms(wall_ms: float, cpu_ms: float, memory_mb: int) -> float:
    return max(wall_ms, cpu_ms * FULL_VCPU_MB / memory_mb)


def per_million(duration_ms: float, memory_mb: int) -> dict[str, float]:
    gb_s = memory_mb / 1024 * duration_ms / 1000
    requests = PRICES["lambda_usd_per_million_requests"]
    return {
        "arm64": round(gb_s * PRICES["lambda_arm64_usd_per_gb_s"] * 1e6 + requests, 2),
        "x86_64": round(gb_s * PRICES["lambda_x86_64_usd_per_gb_s"] * 1e6 + requests, 2),
    }


def estimate(image: str, wall_ms: float, cpu_ms: float, handler_ms: float | None = None) -> dict:
    """Cost rows from the engine's time alone and, when given, from the resize handler's
    time per image in the local stack (engine plus S3/DynamoDB calls to the emulator),
    both with the CPU-share penalty of memory below a full vCPU."""
    memory, source = configured_memory()
    rows = []
    bases = [("engine", wall_ms)]
    if handler_ms:
        bases.append(("resize handler in the local stack", handler_ms))
    for basis, measured in bases:
        for mb in sorted({memory, FULL_VCPU_MB}):
            duration = measured + lambda_ms(wall_ms, cpu_ms, mb) - wall_ms
            rows.append(
                {
                    "basis": basis,
                    "memory_mb": mb,
                    "duration_ms": round(duration),
                    "usd_per_million": per_million(duration, mb),
                    "configured": mb == memory,
                }
            )
    others = [
        {"what": what, "requests": n, "usd_per_million_images": round(n * price * 1e6, 2)}
        for what, n, price in OTHER_REQUESTS
    ]
    return {
        "prices": PRICES,
        "memory_mb": memory,
        "memory_source": source,
        "image": image,
        "measured_wall_ms": round(wall_ms, 1),
        "measured_cpu_ms": round(cpu_ms, 1),
        "lambda": rows,
        "other_services": others,
        "other_services_total_usd_per_million": round(sum(o["usd_per_million_images"] for o in others), 2),
        "assumptions": [
            "resize function only (the upload function's own duration is not included)",
            "batch size 1, one invocation per image, no free tier, us-east-1",
            f"CPU-bound part stretched by {FULL_VCPU_MB} / memory MB: a Lambda vCPU as fast as one core here",
            "engine basis: no I/O; local-stack basis: I/O to an emulator on loopback, faster than real S3",
            f"image: {image}, the corpus image of median pixel count",
        ],
    }
