"""One client for the local stack: find it or start it, upload an image, wait until it is done.

``make demo`` (``local/demo.py``), the benchmark through the stack
(``bench/stack.py``) and the stack's tests (``tests/test_local_stack.py``,
``tests/test_unkind_stack.py``) all go through these functions, so each job is
done one way:

- ``find_running``: the stack a ``make run`` left running (its ``stack.json``
  under ``LOCAL_STACK_DIR``, whose process is alive), and ``api_url`` to reach it;
- ``start``: ``python -m local.run`` as a child, waited for until it prints its
  banner; ``StackProcess.stop`` ends it by its process id;
- ``upload_direct`` (``POST /images``) and ``upload_presigned`` (``POST
  /uploads``, then the form posted to the emulated S3);
- ``wait_done``: ``GET /images/{id}`` until ``done`` or ``failed``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".local-stack"
DEFAULT_API_PORT = 8080
READY_BANNER = b"Image pipeline running"  # local/run.py prints it once every part answers
FINISHED = ("done", "failed")
REQUEST_TIMEOUT = 30


class StackNotReady(RuntimeError):
    """The stack exited, or did not print its banner in time; the message ends with its log's tail."""


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where ``make run`` keeps its state and ``stack.json`` (``LOCAL_STACK_DIR``)."""
    return Path(environ.get("LOCAL_STACK_DIR") or DEFAULT_STATE_DIR)


def find_running(directory: Path | None = None) -> dict[str, Any] | None:
    """The running stack's ``stack.json`` (what runs where), or ``None`` when none is running there."""
    try:
        description = json.loads(((directory or state_dir()) / "stack.json").read_text())
        os.kill(int(description["pid"]), 0)  # signal 0: only asks whether the process exists
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return description


def api_url(environ: Mapping[str, str] = os.environ) -> str:
    """``API`` when set; else the running stack's API; else ``http://127.0.0.1:$API_PORT``."""
    if environ.get("API"):
        return environ["API"]
    running = find_running(state_dir(environ))
    if running and running.get("api_url"):
        return running["api_url"]
    return f"http://127.0.0.1:{environ.get('API_PORT') or DEFAULT_API_PORT}"


def is_answering(api: str) -> bool:
    """Whether anything answers HTTP at ``api``."""
    try:
        requests.get(f"{api}/images/{'x' * 22}", timeout=5)
    except requests.ConnectionError:
        return False
    return True


@dataclass
class StackProcess:
    """A ``python -m local.run`` this process started."""

    process: subprocess.Popen
    log: Path
    moto_port: int
    api_port: int
    description: dict = field(default_factory=dict)  # its stack.json, once ready

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def outputs(self) -> dict:
        return self.description["outputs"]

    def stop(self) -> int:
        """SIGINT (the stack's own shutdown), then SIGKILL to the group it leads; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group this process leads, by its id
                self.process.wait(10)
                raise
        return self.process.returncode


def start(
    directory: Path,
    moto_port: int,
    api_port: int,
    *,
    argv: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    log: Path | None = None,
) -> StackProcess:
    """Start the stack (``argv``, by default ``python -m local.run``) on these ports with its state in
    ``directory``; wait until it prints its banner. ``env``: the environment (this one by default),
    to which the ports and the state directory are added. Raises ``StackNotReady`` (and stops it)."""
    directory.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ if env is None else env)
    environment.update(MOTO_PORT=str(moto_port), API_PORT=str(api_port), LOCAL_STACK_DIR=str(directory))
    log = log or directory / f"run-{time.time_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv or [sys.executable, "-m", "local.run"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = StackProcess(process, log, moto_port, api_port)
    try:
        deadline = time.monotonic() + timeout
        while READY_BANNER not in log.read_bytes():
            if process.poll() is not None:
                raise StackNotReady(f"the local stack exited with {process.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise StackNotReady(f"the local stack was not ready within {timeout:.0f} s:\n{_tail(log)}")
            time.sleep(0.5)
        running.description = json.loads((directory / "stack.json").read_text())
    except BaseException:
        running.stop()
        raise
    return running


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-6000:]


def upload_direct(
    api: str, data: bytes, content_type: str, filename: str | None = None, timeout: float = REQUEST_TIMEOUT
) -> requests.Response:
    """``POST /images`` with the bytes as the body (201 and the new record when accepted)."""
    params = {"filename": filename} if filename else None
    headers = {"Content-Type": content_type}
    return requests.post(f"{api}/images", params=params, data=data, headers=headers, timeout=timeout)


def upload_presigned(
    api: str, data: bytes, content_type: str, filename: str, timeout: float = REQUEST_TIMEOUT
) -> tuple[requests.Response, requests.Response | None]:
    """``POST /uploads``, then the returned form posted to S3 with the bytes; both responses
    (the form's is ``None`` when the API refused)."""
    request = {"filename": filename, "content_type": content_type, "size": len(data)}
    created = requests.post(f"{api}/uploads", json=request, timeout=timeout)
    if created.status_code != 201:
        return created, None
    upload = created.json()["upload"]
    files = {"file": (filename, data, content_type)}
    form = requests.post(upload["url"], data=upload["fields"], files=files, timeout=timeout)
    return created, form


def wait_done(
    api: str,
    image_id: str,
    *,
    timeout: float = 120,
    poll_seconds: float = 0.5,
    unknown_at_first: bool = False,
    errors_mean_not_yet: bool = False,
) -> dict[str, Any]:
    """Poll ``GET /images/{id}`` until it is done or failed; its body. ``unknown_at_first``: a 404
    means not yet (a direct S3 put has no record until resized); ``errors_mean_not_yet``: so does
    any answer but 200 (a benchmark under load polls on). Raises ``TimeoutError``, or
    ``RuntimeError`` for an answer that is not 200."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(f"{api}/images/{image_id}", timeout=REQUEST_TIMEOUT)
        if (response.status_code == 404 and unknown_at_first) or (
            response.status_code != 200 and errors_mean_not_yet
        ):
            status = f"unknown ({response.status_code})"
        else:
            if response.status_code != 200:
                raise RuntimeError(f"GET /images/{image_id}: {response.status_code} {response.text[:500]}")
            body = response.json()
            if body["status"] in FINISHED:
                return body
            status = body["status"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{image_id} still {status} after {timeout:.0f} s")
        time.sleep(poll_seconds)
