"""Through the local stack: N concurrent uploads, upload-to-``done`` latency, images/s.

Starts ``python -m local.run`` (the same stack as ``make run``, on free loopback
ports, its state under ``build/bench-stack``), waits for it, then N clients each
``POST /images`` one photo at the same moment and poll ``GET /images/{id}``
every ``POLL_SECONDS`` until the status is ``done`` or ``failed``. Latency is
from just before the POST to the first poll that sees ``done`` (so it is late by
up to one poll interval). The stack is stopped by its process id (SIGINT, then
SIGKILL to its own process group if it does not stop). Starting, uploading and
polling are ``local.client``'s, shared with ``make demo`` and the tests.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import threading
import time
from pathlib import Path

from bench import ROOT
from local import client

POLL_SECONDS = 0.1
READY_TIMEOUT = 600.0
IMAGE_TIMEOUT = 300.0
STATE_DIR = ROOT / "build" / "bench-stack"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class LocalStack:
    """The stack on two free ports, started and stopped again through ``local.client``."""

    def __init__(self) -> None:
        self.moto_port = _free_port()
        self.api_port = _free_port()
        self.running: client.StackProcess | None = None
        self.log_path = STATE_DIR / "run.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> float:
        """Start it; the seconds until it was ready."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lambda"), str(ROOT)])}
        started = time.monotonic()
        try:
            self.running = client.start(
                STATE_DIR, self.moto_port, self.api_port, env=env, timeout=READY_TIMEOUT, log=self.log_path
            )
        except client.StackNotReady as exc:
            raise RuntimeError(f"{str(exc).splitlines()[0]}; see {self.log_path}") from None
        return time.monotonic() - started

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()


def _one(api_url: str, data: bytes, content_type: str, name: str, barrier: threading.Barrier) -> dict:
    barrier.wait()
    t0 = time.perf_counter()
    response = client.upload_direct(api_url, data, content_type, name, timeout=60)
    if response.status_code != 201:
        return {"error": f"POST /images: {response.status_code} {response.text[:200]}"}
    image_id = response.json()["id"]
    accepted = time.perf_counter()
    try:
        body = client.wait_done(
            api_url, image_id, timeout=IMAGE_TIMEOUT, poll_seconds=POLL_SECONDS, errors_mean_not_yet=True
        )
    except TimeoutError:
        return {"error": f"{image_id} not done within {IMAGE_TIMEOUT:.0f} s"}
    done = time.perf_counter()
    return {
        "id": image_id,
        "status": body["status"],
        "start": t0,
        "done": done,
        "upload_ms": (accepted - t0) * 1000,
        "latency_ms": (done - t0) * 1000,
        "error": body.get("error"),
    }


REPORT_RE = re.compile(
    r"REPORT RequestId: \S+\s+Function: (?P<name>\S+)\s+Duration: (?P<ms>[\d.]+) ms"
    r".*?Max Memory Used: (?P<mb>\d+) MB"
)


def resize_reports(log_text: str) -> dict:
    """The resize function's REPORT lines (the local stack prints Lambda's): batches, duration, memory."""
    reports = [m for m in REPORT_RE.finditer(log_text) if "resize" in m.group("name")]
    batches = [m for m in reports if float(m.group("ms")) >= 5]  # not the empty warm-up call
    if not batches:
        return {}
    return {
        "invocations": len(batches),
        "total_ms": round(sum(float(m.group("ms")) for m in batches)),
        "max_memory_used_mb": max(int(m.group("mb")) for m in reports),
    }


def handler_stages(log_text: str) -> dict:
    """Median ms of each step of the resize handler per done image (``stages_ms`` of its log lines)."""
    stages: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        start = line.find("{")
        if start < 0 or '"image processed"' not in line:
            continue
        try:
            entry = json.loads(line[start:])
        except ValueError:
            continue
        for name, ms in (entry.get("stages_ms") or {}).items():
            stages.setdefault(name, []).append(float(ms))
    return {name: round(statistics.median(values), 1) for name, values in stages.items()}


def measure(image: Path, content_type: str, uploads: int) -> dict:
    if not (ROOT / "local" / "run.py").exists():
        return {"error": "local/run.py does not exist"}
    if not (ROOT / "build" / "lambda.zip").exists():
        return {"error": "build/lambda.zip does not exist (make package)"}
    stack = LocalStack()
    data = image.read_bytes()
    try:
        ready_s = stack.start()  # new free ports: no snapshot fits, so this one provisions from nothing
        stack.stop()
        ready_warm_s = stack.start()  # the same ports again: from the snapshot the first start saved
        barrier = threading.Barrier(uploads)
        results: list[dict] = [{} for _ in range(uploads)]

        def client(i: int) -> None:
            try:
                results[i] = _one(stack.api_url, data, content_type, image.name, barrier)
            except Exception as exc:  # a refused connection, a bad body...: every upload is counted
                results[i] = {"error": f"{type(exc).__name__}: {exc}"}

        threads = [threading.Thread(target=client, args=(i,)) for i in range(uploads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except RuntimeError as exc:
        return {"error": str(exc)}
    finally:
        stack.stop()
    errors = [r["error"] for r in results if r.get("error") and not r.get("status")]
    failed = [r for r in results if r.get("status") == "failed"]
    done = [r for r in results if r.get("status") == "done"]
    out: dict = {
        "image": image.name,
        "image_bytes": len(data),
        "uploads": uploads,
        "done": len(done),
        "failed": len(failed),
        "errors": errors[:3],
        "poll_seconds": POLL_SECONDS,
        "ready_s": round(ready_s, 1),
        "ready_warm_s": round(ready_warm_s, 1),
    }
    if failed:
        out["failure_example"] = failed[0].get("error")
    log_text = stack.log_path.read_text(errors="replace")
    out["resize_function"] = resize_reports(log_text)
    out["handler_stages_ms"] = handler_stages(log_text)
    if out["resize_function"] and done:
        out["resize_function"]["ms_per_image"] = round(out["resize_function"]["total_ms"] / len(done))
    if done:
        latencies = [r["latency_ms"] for r in done]
        span = max(r["done"] for r in done) - min(r["start"] for r in done)
        out.update(
            latency_p50_ms=round(_percentile(latencies, 0.5)),
            latency_p95_ms=round(_percentile(latencies, 0.95)),
            upload_p50_ms=round(statistics.median(r["upload_ms"] for r in done)),
            images_per_s=round(len(done) / span, 2),
            wall_s=round(span, 2),
        )
    return out
