"""What a replayed message costs: one S3 event for a version already done, handled again.

Runs the resize handler in-process against moto (no stack): a first render of a
photo, then the same message again (the record shows the current
rendition-config version: outcome ``current``), then with ``"imgpipe":
{"force": true}`` (a full render). Reports the median wall time and CPU time of
each, CPU counted in the handler's process and in its long-lived render child
(``imgpipe.sandbox``, read from ``/proc``). Run from the repository root::

    .venv/bin/python -m bench.replay [--rounds 20] [--megapixels 12]

moto's DynamoDB answers in-process, so the replay's one ``GetItem`` is cheaper
here than over the network on AWS (single-digit milliseconds there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

from bench import LAMBDA_DIR, ROOT

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "LOG_LEVEL": "WARNING",
    "UPLOADS_BUCKET": "uploads",
    "RESIZED_BUCKET": "resized",
    "TABLE_NAME": "images",
}


class _Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _child_cpu() -> float:
    """CPU seconds of the render child so far (0 before it is forked)."""
    import resize_handler

    pid = resize_handler.setup().renderer._pid
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(rounds: int = 20, megapixels: float = 12.0) -> dict[str, dict[str, float]]:
    """Median wall and CPU milliseconds of a first render, a replay and a forced re-render."""
    os.environ.update(ENV)
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT), str(LAMBDA_DIR)]
    from moto import mock_aws

    with mock_aws():
        import resize_handler
        from conftest import create_pipeline_resources
        from tests import images
        from tests.test_resize_handler import Pipeline

        resize_handler.reset()
        create_pipeline_resources("uploads", "resized", "images")
        pipeline = Pipeline(_Context())
        height = int(math.sqrt(megapixels * 1e6 * 3 / 4))
        record = pipeline.upload("bench/photo.jpg", images.oriented_jpeg(1, height * 4 // 3, height))
        body = json.loads(record["body"])
        forced = {**record, "body": json.dumps({**body, "imgpipe": {"force": True}})}

        def timed(message: dict, n: int) -> dict[str, float]:
            walls, cpus = [], []
            for _ in range(n):
                child, cpu, wall = _child_cpu(), time.process_time(), time.perf_counter()
                assert pipeline.invoke(message) == {"batchItemFailures": []}
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu + _child_cpu() - child)
            return {
                "wall_ms": round(statistics.median(walls) * 1000, 1),
                "cpu_ms": round(statistics.median(cpus) * 1000, 1),
            }

        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            results = {
                "first_render": timed(record, 1),
                "replay": timed(record, rounds),
                "forced": timed(forced, 3),
            }
        resize_handler.reset()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="replays to time (the median is reported)")
    parser.add_argument("--megapixels", type=float, default=12.0, help="size of the test photo")
    args = parser.parse_args()
    print(json.dumps(measure(args.rounds, args.megapixels)))


if __name__ == "__main__":
    main()
