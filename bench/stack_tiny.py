"""Where the local stack's time per image goes: tiny images through a running stack.

``python -m bench.stack_tiny`` starts the stack (``bench.stack.LocalStack``: the
same ``python -m local.run`` as ``make run``), then uploads ``--images`` tiny
JPEGs (24 x 18 px, so the engine's own work is a few milliseconds) through
``POST /images``, ``--concurrency`` at a time, and waits for each to be done.
It reports, per image: upload-to-done latency (p50, p95), the resize
function's duration (its REPORT lines), the handler's steps (``stages_ms``),
the CPU each process of the stack spent (the emulator, each function's
environments, ``local.run`` itself), and the emulator requests the image cost,
by caller and action, from the emulator's IAM call log (``GET
/_local/iam/calls``: every authorised request). With
``--state-dir`` and fixed ports a second run starts from the first one's
snapshot (seconds, not the cold apply's minute).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import threading
import time
from pathlib import Path

import requests

from bench import ROOT
from bench.stack import LocalStack, _percentile, handler_stages, resize_reports
from local import client

POLL_SECONDS = 0.02


def tiny_jpeg(seed: int) -> bytes:
    from tests.images import encode, photo

    return encode(photo(24, 18, seed=seed), "JPEG", quality=90)


def _cpu_ms(pid: int) -> float:
    """User + system CPU of a process and its waited-for children, in ms."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def _children_of(task: Path) -> list[str]:
    try:
        return (task / "children").read_text().split()
    except OSError:
        return []


def _descendants(pid: int) -> dict[int, str]:
    """Every process under ``pid`` (itself included), by pid: a short name for each."""
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            argv = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
            children = [
                child for task in Path(f"/proc/{current}/task").iterdir() for child in _children_of(task)
            ]
        except OSError:
            continue
        text = " ".join(part.decode(errors="replace") for part in argv)
        if "function:" in text:
            name = "function " + text.rpartition("function:")[2].strip()
        elif "local.moto_server" in text:
            name = "emulator"
        elif "local.run" in text:
            name = "local.run (front, pollers, runtime)"
        else:
            name = text[:60]
        found[current] = name
        todo.extend(int(child) for child in children)
    return found


def cpu_by_process(pid: int) -> dict[int, tuple[str, float]]:
    return {child: (name, _cpu_ms(child)) for child, name in _descendants(pid).items()}


def iam_calls(endpoint: str) -> list[dict]:
    return requests.get(f"{endpoint}/_local/iam/calls", timeout=30).json()["calls"]


def _role(principal: str) -> str:
    """The role (or user) name of a caller's ARN."""
    parts = principal.split("/")
    return parts[1] if len(parts) > 1 else principal


def run_round(stack: LocalStack, images: list[bytes], concurrency: int) -> dict:
    """Upload every image, ``concurrency`` at a time; upload-to-done ms of each."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = collections.deque(enumerate(images))
    # The local front throttles as API Gateway does (429): many clients poll less often.
    poll = POLL_SECONDS if concurrency == 1 else 0.2

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                i, data = queue.popleft()
            t0 = time.perf_counter()
            name = f"tiny-{i}.jpg"
            response = client.upload_direct(stack.api_url, data, "image/jpeg", name, timeout=60)
            while response.status_code == 429:  # the front throttles as API Gateway does: try again
                time.sleep(0.2)
                response = client.upload_direct(stack.api_url, data, "image/jpeg", name, timeout=60)
            if response.status_code != 201:
                with lock:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                continue
            body = client.wait_done(
                stack.api_url, response.json()["id"], timeout=300, poll_seconds=poll, errors_mean_not_yet=True
            )
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)
                if body["status"] != "done":
                    errors.append(str(body.get("error")))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "images": len(images),
        "concurrency": concurrency,
        "errors": errors[:3],
        "latency_p50_ms": round(_percentile(latencies, 0.5)),
        "latency_p95_ms": round(_percentile(latencies, 0.95)),
        "wall_s": round(wall, 2),
        "wall_ms_per_image": round(wall * 1000 / len(images)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_tiny", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--concurrency", default="1,20", help="comma-separated rounds (default 1,20)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / "build" / "bench-stack-tiny")
    parser.add_argument("--moto-port", type=int, default=0, help="fixed: a rerun uses the snapshot")
    parser.add_argument("--api-port", type=int, default=0)
    args = parser.parse_args(argv)

    from bench import stack as bench_stack

    bench_stack.STATE_DIR = args.state_dir
    stack = LocalStack()
    stack.log_path = args.state_dir / "run.log"
    if args.moto_port:
        stack.moto_port = args.moto_port
    if args.api_port:
        stack.api_port = args.api_port
    ready_s = stack.start()
    print(f"stack ready in {ready_s:.1f} s", flush=True)
    endpoint = stack.running.endpoint
    results: dict = {"ready_s": round(ready_s, 1), "rounds": []}
    try:
        # One image first: every function warm, so the rounds time warm invocations.
        run_round(stack, [tiny_jpeg(0)], 1)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            before = len(iam_calls(endpoint))
            log_before = stack.log_path.stat().st_size
            cpu_before = cpu_by_process(stack.running.process.pid)
            images = [tiny_jpeg(seed) for seed in range(1, args.images + 1)]
            result = run_round(stack, images, concurrency)
            cpu_after = cpu_by_process(stack.running.process.pid)
            cpu: collections.Counter = collections.Counter()
            for pid, (name, ms) in cpu_after.items():
                cpu[name] += ms - cpu_before.get(pid, (name, 0.0))[1]
            result["cpu_ms_per_image"] = {
                name: round(ms / len(images), 1) for name, ms in cpu.most_common() if ms > 0
            }
            calls = iam_calls(endpoint)[before:]
            by_action = collections.Counter(f"{_role(call['principal'])} {call['action']}" for call in calls)
            with stack.log_path.open(errors="replace") as log:
                log.seek(log_before)
                text = log.read()
            reports = resize_reports(text)
            result["emulator_requests_per_image"] = round(len(calls) / len(images), 1)
            result["requests_by_action_per_image"] = {
                action: round(count / len(images), 2) for action, count in by_action.most_common()
            }
            if reports:
                result["resize_ms_per_image"] = round(reports["total_ms"] / len(images))
                result["resize_invocations"] = reports["invocations"]
            stages = handler_stages(text)
            result["handler_stages_ms"] = stages
            result["handler_total_ms_median"] = round(sum(stages.values()), 1)
            results["rounds"].append(result)
            print(json.dumps(result, indent=1), flush=True)
    finally:
        stack.stop()
    out = args.state_dir / "results.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
