"""Start and stop the embedded AWS emulator (moto server) on loopback.

The server (``local.moto_server``: moto's, with the SQS fixes described there)
runs as a child process in its own process group, bound to
127.0.0.1. ``stop()`` ends the group and waits, so nothing is left behind.
Given a ``snapshot`` file it starts from that state when the file holds a
usable one (``restored()`` says whether it did) and ``save_snapshot()`` writes
the current state there (``local.snapshot``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.processes import die_with_parent

HOST = "127.0.0.1"
REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parent.parent


def client(endpoint: str, service: str) -> Any:
    """A boto3 client for ``service`` on the emulator at ``endpoint``: fake keys, REGION, not the shell's."""
    import boto3

    from local.functions import FAKE_CREDENTIALS

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def free_port() -> int:
    """A free TCP port on loopback (for tests; `make run` uses fixed ports)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Emulator:
    port: int
    log_path: Path | None = None
    snapshot: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> Emulator:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} on {HOST} is already in use: set MOTO_PORT to a free port")
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false", "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "local.moto_server", "-H", HOST, "-p", str(self.port)]
        if self.snapshot is not None:
            command += ["--snapshot", str(self.snapshot)]
        self.process = subprocess.Popen(
            # moto's server with SQS made to answer as AWS does (local/moto_server.py);
            # run from the repository root, so that `local` is this repository's.
            command,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # a kill -9 of `make run` takes the emulator with it
        )
        if log is not subprocess.DEVNULL:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):  # noqa: S310
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout:.0f}s")

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this emulator (``client``)."""
        return client(self.endpoint, service)

    def _snapshot_call(self, method: str) -> dict:
        req = urllib.request.Request(f"{self.endpoint}/_local/snapshot", method=method)  # noqa: S310
        with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310
            return json.loads(resp.read())

    def restored(self) -> bool:
        """Whether the server started from its snapshot file."""
        return self.snapshot is not None and bool(self._snapshot_call("GET").get("restored"))

    def save_snapshot(self) -> int:
        """Write everything the server holds to its snapshot file; the file's size in bytes."""
        if self.snapshot is None:
            raise RuntimeError("the emulator was started without a snapshot file")
        return int(self._snapshot_call("POST")["saved"])

    def reset(self) -> None:
        """Drop every resource the emulator holds."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310
            pass

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


@contextlib.contextmanager
def running(
    port: int | None = None, log_path: Path | None = None, snapshot: Path | None = None
) -> Iterator[Emulator]:
    emulator = Emulator(port or free_port(), log_path, snapshot).start()
    try:
        yield emulator
    finally:
        emulator.stop()
