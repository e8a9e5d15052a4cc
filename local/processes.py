"""The stack's processes: children that die with it, and ports held by leftovers.

``make run`` starts the emulator and the function workers as child processes.
On Linux each child asks the kernel for SIGKILL when its parent goes
(``prctl(PR_SET_PDEATHSIG)``, set between fork and exec), so even a
``kill -9`` of ``make run`` leaves nothing behind. The kernel's "parent" is the
thread that started the child: children must be started from threads that live
as long as the stack (the main thread, pollers, the front's invoke pool).

A port that is still taken when ``make run`` starts is looked up in
``/proc``: an emulator of ours whose ``make run`` is gone (its pid file in the
state directory, or its command line) is stopped and replaced; anything else is
named, pid and command, so the message says what to stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
PID_FILE = "emulator.pid"
EMULATOR_MODULE = "local.moto_server"
STACK_MODULE = "local.run"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: children outlive a killed parent there
        return None


_PRCTL = _prctl()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets SIGKILL when the thread starting it ends (Linux only)."""
    if _PRCTL is None:
        return None
    parent = os.getpid()
    prctl = _PRCTL

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec


def stop_with_parent() -> None:
    """Ask for SIGTERM when our own parent (``make``) dies, so a ``kill -9`` of it stops the stack."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(frozen=True)
class Holder:
    """The process listening on a port, as far as ``/proc`` tells."""

    pid: int
    argv: tuple[str, ...]
    cwd: str | None
    ppid: int | None

    @property
    def command(self) -> str:
        text = " ".join(self.argv)
        return text if len(text) <= 160 else text[:157] + "..."

    def is_our_emulator(self, port: int) -> bool:
        argv = list(self.argv)
        return (
            EMULATOR_MODULE in argv
            and "-p" in argv[:-1]
            and argv[argv.index("-p") + 1] == str(port)
            and self.cwd == str(REPO_ROOT)
        )


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def process(pid: int) -> Holder | None:
    """What ``/proc`` says about ``pid``; None when it is gone."""
    proc = Path(f"/proc/{pid}")
    try:
        argv = tuple(a for a in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if a)
        state, ppid_text = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None
    if state in ("Z", "X"):  # exited, not yet collected by its parent
        return None
    try:
        cwd = os.readlink(proc / "cwd")
    except OSError:
        cwd = None
    return Holder(pid, argv, cwd, int(ppid_text))


def holder(port: int) -> Holder | None:
    """The process listening on ``port``; None when nothing listens or it cannot be seen."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in sockets:
                        return process(int(entry.name))
    return None


def _stack_alive(pid: int | None) -> bool:
    found = process(pid) if pid else None
    return found is not None and STACK_MODULE in found.argv


def stale_emulator(port: int, state_dir: Path) -> Holder | None:
    """Our emulator on ``port`` whose ``make run`` is gone, if that is what holds it."""
    recorded: dict = {}
    with contextlib.suppress(OSError, ValueError):
        recorded = json.loads((state_dir / PID_FILE).read_text())
    listener = holder(port)
    candidates = [listener, process(int(recorded.get("pid") or 0)) if recorded.get("pid") else None]
    for candidate in candidates:
        if candidate is None or not candidate.is_our_emulator(port):
            continue
        if _stack_alive(candidate.ppid) or _stack_alive(recorded.get("owner")):
            return None  # a running `make run` owns it: not stale
        return candidate
    return None


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; returns once ``pid`` is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process(pid) is not None and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while process(pid) is not None:
        _reap(pid)
        time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child, so that it does not stay a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def busy_message(port: int, variable: str) -> str:
    """Why ``port`` cannot be used, naming its holder when ``/proc`` shows it."""
    found = holder(port)
    who = f"pid {found.pid} ({found.command})" if found else "another program (its process is not visible)"
    return f"port {port} on 127.0.0.1 is already in use by {who}: stop it or set {variable} to a free port"


def write_pid_file(state_dir: Path, emulator_pid: int, port: int) -> None:
    record = {"pid": emulator_pid, "owner": os.getpid(), "port": port}
    (state_dir / PID_FILE).write_text(json.dumps(record) + "\n")


def remove_pid_file(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / PID_FILE).unlink()
