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


# -- reprocessing stored originals (make reprocess, docs/reprocess.md) ---------------------------
#
# Step Functions Standard: $0.025 per 1,000 state transitions (us-east-1, checked 2026-12-07);
# a Distributed Map's STANDARD children are billed as executions of their own (each state they
# enter is a transition). The emulator refuses EXPRESS children, so the module runs STANDARD ones.
STATES_USD_PER_TRANSITION = 0.025 / 1000
S3_LIST_USD = 0.005 / 1000  # ListObjectsV2, as PUT/COPY/POST/LIST
S3_PUT_USD = 0.005 / 1000
S3_GET_USD = 0.0004 / 1000  # GET and HEAD
SQS_USD_PER_REQUEST = 0.40 / 1_000_000  # a request carries up to 10 messages within 64 KiB each
DYNAMODB_USD_PER_RRU = 0.125 / 1_000_000
DYNAMODB_USD_PER_WRU = 0.625 / 1_000_000
LIST_PAGE = 1000  # keys per ListObjectsV2 page
SQS_BATCH = 10  # entries per SendMessageBatch
RENDITIONS = 6
# Assumed, not measured: one plan_reprocess invocation for a batch of keys (one BatchGetItem per
# 100 keys and building the messages; no HeadObject when the records name their keys).
MAINTENANCE_MS_PER_BATCH = 500
MAINTENANCE_MEMORY_MB = 256


def child_transitions(batch_size: int, stale: bool) -> int:
    """States a child execution enters: Plan, Send (the inline Map), one SendBatch per ten
    planned messages, Counts. A batch of current images sends nothing."""
    sends = -(-batch_size // SQS_BATCH) if stale else 0
    return 3 + sends


def reprocess_estimate(
    images: int = 1_000_000,
    batch_size: int = 100,
    resize_ms: float = 546,
    resize_memory_mb: int = 1536,
    resize_batch_size: int = 5,
    stale: bool = True,
) -> dict:
    """USD to reprocess ``images`` stored originals (default: all stale, so all re-rendered),
    per service, with the resize function's billed time per image (``resize_ms``, the bench's
    local-stack handler time by default)."""
    children = -(-images // batch_size)
    # The parent: Defaults, Options, the map, Summarize (one more maintenance call and a few S3
    # GETs of the results, under a cent).
    transitions = 4 + children * child_transitions(batch_size, stale)
    rendered = images if stale else 0
    lambda_gb_s = {
        "maintenance": children * MAINTENANCE_MEMORY_MB / 1024 * MAINTENANCE_MS_PER_BATCH / 1000,
        "resize": rendered * resize_memory_mb / 1024 * resize_ms / 1000 if stale else 0.0,
    }
    resize_invocations = -(-rendered // resize_batch_size)
    rows = [
        ("Step Functions: state transitions (parent + children)", transitions, STATES_USD_PER_TRANSITION),
        ("Lambda maintenance: GB-s", lambda_gb_s["maintenance"], PRICES["lambda_arm64_usd_per_gb_s"]),
        ("Lambda maintenance: requests", children, PRICES["lambda_usd_per_million_requests"] / 1e6),
        ("Lambda resize: GB-s (arm64)", lambda_gb_s["resize"], PRICES["lambda_arm64_usd_per_gb_s"]),
        ("Lambda resize: requests", resize_invocations, PRICES["lambda_usd_per_million_requests"] / 1e6),
        (
            "SQS: SendMessageBatch + the mapping's receive and delete batches",
            -(-rendered // SQS_BATCH) + 2 * resize_invocations,
            SQS_USD_PER_REQUEST,
        ),
        ("S3 LIST: ListObjectsV2 pages", -(-images // LIST_PAGE), S3_LIST_USD),
        ("S3 GET: each original, by the resize function", rendered, S3_GET_USD),
        ("S3 PUT: the renditions", rendered * RENDITIONS, S3_PUT_USD),
        ("DynamoDB: BatchGetItem (plan) + GetItem (resize), RRU", images + rendered, DYNAMODB_USD_PER_RRU),
        ("DynamoDB: processing + done writes, ~4 WRU", 4 * rendered, DYNAMODB_USD_PER_WRU),
    ]
    services = [
        {"what": what, "units": round(units, 1), "usd": round(units * price, 2)}
        for what, units, price in rows
    ]
    return {
        "images": images,
        "batch_size": batch_size,
        "stale": stale,
        "services": services,
        "total_usd": round(sum(units * price for _, units, price in rows), 2),
        "assumptions": [
            f"every image stale: re-rendered into {RENDITIONS} renditions"
            if stale
            else "every image current",
            f"resize: {resize_ms:.0f} ms per image at {resize_memory_mb} MB, arm64,"
            f" batches of {resize_batch_size}",
            f"maintenance: {MAINTENANCE_MS_PER_BATCH} ms per batch of {batch_size}"
            f" at {MAINTENANCE_MEMORY_MB} MB (assumed, not measured)",
            "STANDARD child executions; no free tier; us-east-1 list prices; no storage or transfer",
        ],
    }


def reprocess_table(estimate: dict) -> str:
    lines = ["| what | units | USD |", "|---|--:|--:|"]
    lines += [f"| {s['what']} | {s['units']:,.0f} | {s['usd']:.2f} |" for s in estimate["services"]]
    lines.append(f"| **total** | | **{estimate['total_usd']:.2f}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    published = json.loads((ROOT / "docs" / "bench-results.json").read_text())["cost"]
    (handler,) = [
        row for row in published["lambda"] if row["configured"] and row["basis"].startswith("resize handler")
    ]
    for stale in (True, False):
        result = reprocess_estimate(
            resize_ms=handler["duration_ms"], resize_memory_mb=handler["memory_mb"], stale=stale
        )
        print(f"## {'all stale' if stale else 'all current'}\n\n{reprocess_table(result)}\n")
