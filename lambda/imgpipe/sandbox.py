"""Renders in a forked child process with a wall-clock deadline and a memory ceiling.

Pillow's decoders are C code that Python cannot interrupt: a thread or a
signal can only give up after the decoder returns. A child process can be
killed at any instant, and whatever it allocated is gone with it, so a slow
or huge image costs only its own deadline and never the invocation (and with
it the whole SQS batch).

``Renderer`` keeps one child per execution environment and sends it each
render over a socket: a fresh fork per image cost 50 ms more CPU on a 12 MP
JPEG (20,000 page faults: the child's heap is copy-on-write); a reused child
costs only the transfer, 6-7 ms for 3 MB each way (docs/hostile-inputs.md).
A child that is killed or fails is replaced at the next render.

Lambda allows child processes but has no /dev/shm, so ``multiprocessing``'s
queues and pools fail there; this uses ``os.fork`` and a socket pair only.
Fork is safe here because the handler runs no other threads while it forks.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import resource
import signal
import socket
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

# RLIMIT_DATA counts every writable private mapping as soon as it is made: each thread's 8 MB
# stack counts whole, though a render touches a few pages of it. Room for the engine's threads.
_STACKS_ALLOWANCE = 64 << 20
_CHILD_FAILED = 70  # os.EX_SOFTWARE


class Timeout(Exception):
    """The child was killed at its deadline."""


class Crashed(Exception):
    """The child died without an answer (a signal, or out of memory outside Python's reach)."""


def _data_size() -> int:
    """This process's data segment in bytes (what RLIMIT_DATA counts), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _limit_memory(extra_bytes: int | None) -> None:
    """Let the child's data grow by ``extra_bytes`` at most: past it, malloc fails (MemoryError)."""
    if extra_bytes is None:
        return
    ceiling = _data_size() + extra_bytes + _STACKS_ALLOWANCE
    resource.setrlimit(resource.RLIMIT_DATA, (ceiling, ceiling))


def _portable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, round-tripped
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def memory_left(memory_mb: int, headroom_mb: int = 32) -> int:
    """Bytes a child may add before the function's ``memory_mb`` is reached: less this process's RSS."""
    with open("/proc/self/status") as status:
        rss = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")), 0)
    return max(0, (memory_mb - headroom_mb) * (1 << 20) - rss)


class Renderer:
    """One long-lived child process that runs calls sent to it, each with a deadline."""

    def __init__(self, memory_mb: int | None = None) -> None:
        self.memory_mb = memory_mb  # the function's memory: the child may use what this process leaves
        self._pid = 0
        self._conn: Connection | None = None

    def call(self, fn: Callable[..., Any], *args: Any, seconds: float) -> Any:
        """``fn(*args)`` in the child (``fn`` importable by name): its result or its exception."""
        conn = self._conn or self._start()
        try:
            conn.send_bytes(pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL))
            answered = conn.poll(seconds)
        except OSError:
            answered = False
        if not answered:
            self.close()
            raise Timeout(f"killed after {seconds:.1f} s")
        try:
            kind, value = pickle.loads(conn.recv_bytes())  # noqa: S301 - written by our own child
        except (EOFError, OSError):
            status = self._reap()
            raise Crashed(f"the render process died ({status})") from None
        if kind == "ok":
            return value
        if kind == "fatal":  # MemoryError and the like: the child exits; a fresh one serves the next call
            self._reap()
        raise value

    def close(self) -> None:
        atexit.unregister(self.close)
        if self._pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            self._reap()

    def _start(self) -> Connection:
        mine, theirs = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            mine.close()
            memory = None if self.memory_mb is None else memory_left(self.memory_mb)
            _serve(Connection(theirs.detach()), memory)
        theirs.close()
        self._pid, self._conn = pid, Connection(mine.detach())
        atexit.register(self.close)  # the child goes (and is reaped) when this process exits
        return self._conn

    def _reap(self) -> str:
        pid, conn = self._pid, self._conn
        self._pid, self._conn = 0, None
        if conn is not None:
            conn.close()
        if not pid:
            return "gone"
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            return f"signal {os.WTERMSIG(status)}"
        return f"exit status {os.waitstatus_to_exitcode(status)}"


def _answer(request: bytes) -> tuple[str, Any]:
    """Run one call; ``fatal`` when the child ran out of memory (and should make way for a fresh one)."""
    try:
        fn, args = pickle.loads(request)  # noqa: S301 - sent by our parent
        return ("ok", fn(*args))
    except (MemoryError, RecursionError) as exc:
        return ("fatal", _portable(exc))
    except RuntimeError as exc:
        if "can't start new thread" in str(exc):  # thread stacks count against RLIMIT_DATA
            return ("fatal", MemoryError(str(exc)))
        return ("error", _portable(exc))
    except BaseException as exc:  # every other outcome goes back to the parent
        return ("error", _portable(exc))


def _serve(conn: Connection, memory: int | None) -> None:
    """The child's loop: a call in, its answer out, until the parent goes away or a fatal error."""
    code = _CHILD_FAILED
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _limit_memory(memory)
        while True:
            try:
                answer = _answer(conn.recv_bytes())
            except (EOFError, OSError):
                code = 0
                return
            except MemoryError:
                answer = ("fatal", MemoryError())
            conn.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
            if answer[0] == "fatal":
                return
    finally:
        os._exit(code)
