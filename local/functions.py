"""Run Lambda functions locally, each in its own worker process, as Lambda would.

The emulator stores functions but cannot run their code. Here each function
configuration that Terraform created (``lambda get_function_configuration``)
becomes a ``LocalFunction``: a small pool of execution environments, each a
separate Python process started with exactly that function's environment
(its ``Environment.Variables``, Lambda's reserved variables, the emulator
endpoint and credentials), the Lambda source root as its task root and
working directory, and its handler imported at start (the init phase).

Credentials: given a ``credentials`` provider (the local stack's: the
function's execution role assumed as Lambda assumes it, ``local.emulator``),
each environment gets the role's temporary credentials in
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``, as
on Lambda. No invocation starts in an environment whose credentials could
expire before its timeout: that environment is retired and a new one starts
with fresh credentials (assumed again when fewer than ``CREDENTIALS_MARGIN``
seconds are left). Without a provider, fake keys.

Semantics kept from Lambda:

- one invocation at a time per environment; more concurrent invocations start
  more environments, up to ``max_workers``;
- the function's ``Timeout`` is enforced: a late invocation fails with
  ``Sandbox.Timedout`` and its environment is killed and replaced;
- an environment that crashes is replaced on the next invocation;
- an event larger than the 6 MB synchronous payload limit is refused;
- START / END / REPORT lines on stdout, beside the handler's own logs.

- the function's ``MemorySize`` is enforced as Lambda does: an environment
  whose processes together use more is killed, and the invocation fails with
  ``Runtime.OutOfMemory`` (``MemoryWatch``: the worker's resident memory and
  its children's proportional share, polled every 10 to 50 ms (``MEMORY_POLL_S``), and the
  worker's own high-water mark when it answers, so a short spike counts too).

This file is also the worker's entry point (``python local/functions.py``): the
worker part uses only the standard library, so the function process imports
nothing the real runtime would not have.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TASK_ROOT = REPO_ROOT / "lambda"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # synchronous invocation request and response
INIT_TIMEOUT = 10.0  # Lambda's init phase limit for on-demand functions
CREDENTIALS_MARGIN = 300.0  # assume the role again for a new environment when less validity is left
# The memory watch polls every 10 ms at first, then less often (x1.5 a poll, up to 50 ms): a short
# invocation is watched closely, a long one costs the stack ~1.5 ms of CPU a second, not 7. The
# worker's own peak (VmHWM) is never missed between polls; a child's short spike can be.
MEMORY_POLL_S = 0.01
MEMORY_POLL_MAX_S = 0.05
MIB = 1 << 20
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True)
class FunctionConfig:
    """What the local runtime needs from ``get_function_configuration``."""

    name: str
    arn: str
    handler: str
    role: str = ""
    runtime: str = "python3.12"
    timeout: int = 3
    memory_mb: int = 128
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, config: dict[str, Any]) -> FunctionConfig:
        return cls(
            name=config["FunctionName"],
            arn=config["FunctionArn"],
            handler=config["Handler"],
            role=config.get("Role") or "",
            runtime=config.get("Runtime") or "python3.12",
            timeout=int(config.get("Timeout") or 3),
            memory_mb=int(config.get("MemorySize") or 128),
            environment=dict((config.get("Environment") or {}).get("Variables") or {}),
        )

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]


@dataclass(frozen=True)
class InvokeResult:
    """A completed invocation: ``payload`` on success, ``error`` otherwise."""

    request_id: str
    payload: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def lambda_environment(
    config: FunctionConfig,
    endpoint_url: str,
    task_root: Path = TASK_ROOT,
    credentials: dict[str, str] | None = None,
) -> dict[str, str]:
    """The process environment of one execution environment of ``config``.

    Built from scratch (nothing leaks in from the developer's shell, in
    particular no real AWS credentials or profile): Lambda's reserved
    variables, then the function's own variables, then the emulator endpoint
    and the credentials (fake ones when none are given), which the function
    must not override locally.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(Path(__file__).resolve().parent),
        "_HANDLER": config.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
    }
    env.update({k: str(v) for k, v in config.environment.items()})
    keys = credentials or FAKE_CREDENTIALS
    env.update({k: keys[k] for k in FAKE_CREDENTIALS if keys.get(k)})
    env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


def _status_kb(pid: int, *fields: str) -> dict[str, int]:
    """Fields of /proc/<pid>/status in kB (missing process: empty)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            lines = [line.split() for line in status if line.split(":")[0] in fields]
    except OSError:
        return {}
    return {line[0].rstrip(":"): int(line[1]) for line in lines}


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            direct = [int(child) for child in listing.read().split()]
    except OSError:
        return []
    return direct + [grandchild for child in direct for grandchild in _children(child)]


def _pss_bytes(pid: int) -> int:
    """A child's proportional set size: pages it shares with the worker after fork count once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemoryWatch:
    """The memory of one execution environment (the worker and all it starts), as Lambda counts it."""

    def __init__(self, pid: int, limit_mb: int) -> None:
        self.pid = pid
        self.limit = limit_mb * MIB

    def in_use(self, rss: int | None = None) -> int:
        """Resident bytes now (``rss``: the worker's own, when just read). Children's RSS counts
        pages they share with the worker twice, so it is only a cheap upper bound; their PSS (40 ms
        to read for a 1 GB process) is read only when that bound is over the limit."""
        if rss is None:
            rss = _status_kb(self.pid, "VmRSS").get("VmRSS", 0) * 1024
        children = _children(self.pid)
        bound = rss + sum(_status_kb(child, "VmRSS").get("VmRSS", 0) * 1024 for child in children)
        if bound <= self.limit:
            return bound
        return rss + sum(_pss_bytes(child) for child in children)

    def exceeded(self) -> bool:
        own = _status_kb(self.pid, "VmRSS", "VmHWM")  # one read of /proc/<pid>/status for both
        if own.get("VmHWM", 0) * 1024 > self.limit:
            return True
        return self.in_use(own.get("VmRSS", 0) * 1024) > self.limit


class _Worker:
    """One execution environment: a process and the parent's end of its pipe."""

    def __init__(
        self, config: FunctionConfig, env: dict[str, str], task_root: Path, expires_at: float = float("inf")
    ) -> None:
        from local.processes import die_with_parent  # the stack's side only: workers import no `local`

        self.config = config
        self.expires_at = expires_at  # wall-clock time its credentials expire
        self.generation = 0  # the LocalFunction's configuration generation it was started with
        parent_sock, child_sock = socket.socketpair()
        self.conn = Connection(parent_sock.detach())
        child_fd = child_sock.detach()
        stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-u", str(Path(__file__).resolve()), "--worker", str(child_fd), config.arn],
                env={**env, "AWS_LAMBDA_LOG_STREAM_NAME": stream},
                cwd=task_root,
                pass_fds=(child_fd,),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C goes to the stack; the stack stops its workers
                preexec_fn=die_with_parent(),  # and a kill -9 of the stack takes them with it
            )
        finally:
            os.close(child_fd)
        self.init_error: dict[str, Any] | None = None
        if not self.conn.poll(INIT_TIMEOUT):
            self.kill()
            raise RuntimeError(f"{config.name}: init did not finish within {INIT_TIMEOUT:.0f}s")
        try:
            _, self.init_error = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise RuntimeError(f"{config.name}: worker exited during init") from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, request_id: str, event_json: str) -> InvokeResult:
        """Run one invocation; on timeout or crash the worker is dead afterwards."""
        timeout = self.config.timeout
        started = time.monotonic()
        watch = MemoryWatch(self.pid, self.config.memory_mb)
        try:
            self.conn.send((request_id, event_json, timeout))
            answered = self._wait(watch, started + timeout + 0.25)
            if answered is None or watch.exceeded():
                return self._out_of_memory(request_id, started)
            if not answered:
                self.kill()
                message = f"Task timed out after {timeout:.2f} seconds"
                print(f"{_stamp()} {request_id} {message}", flush=True)
                return InvokeResult(
                    request_id, error=_error("Sandbox.Timedout", message), duration_ms=timeout * 1000
                )
            status, body = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            code = self.process.returncode
            message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
            return InvokeResult(request_id, error=_error("Runtime.ExitError", message))
        duration = (time.monotonic() - started) * 1000
        if status == "ok":
            if len(body) > MAX_PAYLOAD_BYTES:
                message = f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size"
                return InvokeResult(
                    request_id, error=_error("ResponseSizeTooLarge", message), duration_ms=duration
                )
            return InvokeResult(request_id, payload=json.loads(body), duration_ms=duration)
        return InvokeResult(request_id, error=body, duration_ms=duration)

    def _wait(self, watch: MemoryWatch, deadline: float) -> bool | None:
        """True once the worker answers, False at the deadline, None as soon as it is over its memory."""
        interval = MEMORY_POLL_S
        while True:
            if watch.exceeded():
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.conn.poll(min(interval, left)):
                return True
            interval = min(interval * 1.5, MEMORY_POLL_MAX_S)

    def _out_of_memory(self, request_id: str, started: float) -> InvokeResult:
        """Lambda's answer when an environment passes its memory: the runtime is killed."""
        self.kill()
        memory = self.config.memory_mb
        message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
        print(f"{_stamp()} {message}\nRuntime.OutOfMemory", flush=True)
        print(
            f"REPORT RequestId: {request_id}\tFunction: {self.config.name}\t"
            f"Memory Size: {memory} MB\tMax Memory Used: {memory} MB",
            flush=True,
        )
        duration = (time.monotonic() - started) * 1000
        return InvokeResult(request_id, error=_error("Runtime.OutOfMemory", message), duration_ms=duration)

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not."""
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.conn.close()


class LocalFunction:
    """A Lambda function run locally: a pool of worker processes, one invocation each."""

    def __init__(
        self,
        config: FunctionConfig,
        endpoint_url: str,
        *,
        max_workers: int = 2,
        task_root: Path = TASK_ROOT,
        extra_env: dict[str, str] | None = None,
        credentials: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.config = config
        self._credentials = credentials  # environment-style keys plus "expiration" (epoch seconds)
        self._current: dict[str, str] | None = None
        self.endpoint_url = endpoint_url
        self.extra_env = dict(extra_env or {})
        self.env = {**lambda_environment(config, endpoint_url, task_root), **self.extra_env}
        self.task_root = task_root
        self._slots = threading.BoundedSemaphore(max_workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False
        self._generation = 0  # bumped by reconfigure(): workers of an older one are not reused

    @property
    def name(self) -> str:
        return self.config.name

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(w.pid for w in self._all if w.alive())

    def warm(self) -> dict[str, Any] | None:
        """Start one environment now, before the first request; its init error, if any."""
        with self._slots:
            worker = self._take()
            if worker.init_error is not None:
                self._discard(worker)
                return worker.init_error
            self._give_back(worker)
            return None

    def invoke(self, event: Any) -> InvokeResult:
        request_id = str(uuid.uuid4())
        event_json = json.dumps(event)
        if len(event_json) > MAX_PAYLOAD_BYTES:
            message = f"{len(event_json)} byte payload is too large for the RequestResponse invocation type"
            return InvokeResult(request_id, error=_error("RequestEntityTooLargeException", message))
        with self._slots:
            try:
                worker = self._take()
            except RuntimeError as exc:
                return InvokeResult(request_id, error=_error("Runtime.InitError", str(exc)))
            if worker.init_error is not None:
                # Lambda reports an init failure on the invocation and starts a new
                # environment next time; the handler's import error is the message.
                self._discard(worker)
                return InvokeResult(request_id, error=worker.init_error)
            result = worker.invoke(request_id, event_json)
            if worker.alive():
                self._give_back(worker)
            else:
                self._discard(worker)
            return result

    def reconfigure(
        self, config: FunctionConfig, credentials: Callable[[], dict[str, str]] | None = None
    ) -> None:
        """New invocations run with ``config``; invocations in flight finish in the environment
        they started in, which is then retired (AWS Lambda, UpdateFunctionConfiguration: the
        function can still be invoked while it is updated, and once ``LastUpdateStatus`` is
        ``Successful`` it processes events with the new configuration). Idle environments are
        retired now; the next invocation starts a new one (a cold start, as on Lambda)."""
        env = {**lambda_environment(config, self.endpoint_url, self.task_root), **self.extra_env}
        with self._lock:
            self.config, self.env = config, env
            if credentials is not None:
                self._credentials, self._current = credentials, None
            self._generation += 1
            stale, self._idle = self._idle, []
            for worker in stale:
                self._all.discard(worker)
        for worker in stale:
            worker.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all, self._idle = list(self._all), set(), []
        for worker in workers:
            worker.close()

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: stopped")
            retired = []
            while self._idle:
                worker = self._idle.pop()
                current = worker.generation == self._generation
                if current and worker.alive() and self._fresh(worker.expires_at):
                    break
                self._all.discard(worker)
                retired.append(worker)
            else:
                worker = None
        for old in retired:
            old.close()
        if worker is not None:
            return worker
        config, env, expires_at, generation = self._environment()
        worker = _Worker(config, env, self.task_root, expires_at)
        worker.generation = generation
        with self._lock:
            if self._closed:
                worker.close()
                raise RuntimeError(f"{self.name}: stopped")
            self._all.add(worker)
        return worker

    def _fresh(self, expires_at: float) -> bool:
        """Whether credentials expiring then outlast an invocation started now."""
        return expires_at - time.time() > self.config.timeout + 1

    def _environment(self) -> tuple[FunctionConfig, dict[str, str], float, int]:
        """A new environment's configuration and variables, with current credentials (assumed
        again when near expiry), and the configuration's generation: all read together."""
        with self._lock:
            config, env, generation, provider = self.config, self.env, self._generation, self._credentials
            if provider is None:
                return config, env, float("inf"), generation
            current = self._current
            if current is None or float(current["expiration"]) - time.time() < CREDENTIALS_MARGIN:
                current = self._current = provider()
        keys = {k: current[k] for k in FAKE_CREDENTIALS}
        return config, {**env, **keys}, float(current["expiration"]), generation

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed and worker.generation == self._generation:
                self._idle.append(worker)
                return
            self._all.discard(worker)  # stopped, or reconfigured while it ran: retired
        worker.close()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)


def _error(error_type: str, message: str, trace: list[str] | None = None) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": trace or []}


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------
# The worker: everything below runs inside the function's own process.


class _Context:
    """The ``context`` argument Lambda passes to handlers."""

    def __init__(self, request_id: str, timeout: float, arn: str) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.invoked_function_arn = arn
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load_handler(spec: str) -> Any:
    import importlib

    module_name, _, attr = spec.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler {spec!r}: expected module.function")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, attr, None)
    if handler is None:
        raise AttributeError(f"Handler {attr!r} missing on module {module_name!r}")
    return handler


def _exception(kind: str, exc: BaseException, skip: int = 0) -> dict[str, Any]:
    tb = exc.__traceback__
    for _ in range(skip):  # the runtime's own frames are not the function's
        tb = tb.tb_next if tb and tb.tb_next else tb
    trace = traceback.format_tb(tb)
    return _error(kind or type(exc).__name__, str(exc), trace)


def _max_rss_mb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _configure_logging() -> None:
    """The Python runtime's root logger: stdout, request id on each line."""
    import logging

    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")


def _worker_main(fd: int, arn: str) -> int:
    # Lambda's task root first on sys.path, not this file's directory.
    sys.path[0] = os.environ["LAMBDA_TASK_ROOT"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    _configure_logging()
    name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    started = time.monotonic()
    init_error = None
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except Exception as exc:
        init_error = _exception("Runtime.ImportModuleError", exc)
        traceback.print_exc()
    init_ms = (time.monotonic() - started) * 1000
    conn.send(("ready", init_error))
    first = True
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return 0  # the stack went away: so do we
        if message is None:
            return 0
        request_id, event_json, timeout = message
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        begin = time.monotonic()
        try:
            result = handler(json.loads(event_json), _Context(request_id, timeout, arn))
            reply = ("ok", json.dumps(result))
        except Exception as exc:
            reply = ("error", _exception("", exc, skip=1))
            print(json.dumps({"level": "ERROR", "requestId": request_id, **reply[1]}), flush=True)
        duration = (time.monotonic() - begin) * 1000
        conn.send(reply)
        init = f"\tInit Duration: {init_ms:.2f} ms" if first else ""
        first = False
        memory = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        print(f"END RequestId: {request_id}", flush=True)
        print(
            f"REPORT RequestId: {request_id}\tFunction: {name}\tDuration: {duration:.2f} ms\t"
            f"Memory Size: {memory} MB\tMax Memory Used: {_max_rss_mb()} MB{init}",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--worker":
        sys.exit("usage: functions.py --worker FD FUNCTION_ARN (started by local.functions.LocalFunction)")
    sys.exit(_worker_main(int(sys.argv[2]), sys.argv[3]))
