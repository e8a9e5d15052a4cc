"""The stack's children die with it, and a port left taken is freed or explained.

Issue 12.13: a ``kill -9`` of ``make run`` orphaned the emulator, which kept
its port, and the next ``make run`` failed with "port in use" and no hint.
Here a parent process starts the real emulator and a real function worker,
then is killed with SIGKILL; and ports are held by a stale emulator of ours,
by one a live stack owns, and by an unrelated program.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.emulator import free_port, port_open
from local.processes import PID_FILE, busy_message
from local.run import Stack, StackError
from local.tf import REPO_ROOT

pytestmark = pytest.mark.slow

PARENT = """
import json, sys, time
from pathlib import Path
from local.emulator import Emulator
from local.functions import FunctionConfig, LocalFunction

emulator = Emulator(int(sys.argv[1])).start()
arn = "arn:aws:lambda:us-east-1:123456789012:function:fake-echo"
config = FunctionConfig("fake-echo", arn, "fake_handler.echo")
fn = LocalFunction(config, emulator.endpoint, task_root=Path("tests/fixtures/fake_lambda").resolve())
fn.warm()
print(json.dumps({"emulator": emulator.process.pid, "workers": fn.pids()}), flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def spawn(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)


def emulator_without_parent(port: int) -> subprocess.Popen:
    """An emulator as an earlier `make run` (before the parent-death signal) left it behind."""
    process = spawn(
        [sys.executable, "-m", "local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_open(port):
        assert process.poll() is None and time.monotonic() < deadline, "the emulator did not start"
        time.sleep(0.1)
    return process


def listener(port: int, *extra_args: str) -> subprocess.Popen:
    code = (
        "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); "
        "s.listen(); print('up', flush=True); time.sleep(120)"
    )
    process = spawn([sys.executable, "-c", code, str(port), *extra_args], stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"up\n"
    return process


def stack_on(port: int, state_dir: Path) -> Stack:
    return Stack(moto_port=port, api_port=free_port(), state_dir=state_dir)


def finish(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def test_a_kill_9_of_the_parent_takes_the_emulator_and_the_workers_with_it():
    port = free_port()
    parent = spawn([sys.executable, "-c", PARENT, str(port)], stdout=subprocess.PIPE)
    try:
        started = json.loads(parent.stdout.readline())
        children = [started["emulator"], *started["workers"]]
        assert len(children) == 2 and all(alive(p) for p in children)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_gone(children, 5) == []
        assert not port_open(port)
    finally:
        finish(parent)
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_stale_emulator_of_ours_is_replaced(tmp_path):
    port = free_port()
    stale = emulator_without_parent(port)
    no_such_pid = 2**22 + 1  # above the kernel's pid_max: the `make run` that wrote the file is gone
    (tmp_path / PID_FILE).write_text(json.dumps({"pid": stale.pid, "owner": no_such_pid, "port": port}))
    try:
        stack_on(port, tmp_path).claim_ports()
        assert stale.wait(15) is not None and not port_open(port)
    finally:
        finish(stale)


def test_an_orphaned_emulator_of_ours_without_a_pid_file_is_recognised_by_its_command_line(tmp_path):
    port = free_port()
    stale = emulator_without_parent(port)
    try:
        stack_on(port, tmp_path).claim_ports()
        assert stale.wait(15) is not None and not port_open(port)
    finally:
        finish(stale)


def test_an_emulator_a_running_stack_owns_is_left_alone_and_named(tmp_path):
    port = free_port()
    emulator = emulator_without_parent(port)
    owner = spawn([sys.executable, "-c", "import time; time.sleep(120)", "-m", "local.run"])
    (tmp_path / PID_FILE).write_text(json.dumps({"pid": emulator.pid, "owner": owner.pid, "port": port}))
    try:
        with pytest.raises(StackError) as refused:
            stack_on(port, tmp_path).claim_ports()
        assert f"by pid {emulator.pid} (" in str(refused.value) and "local.moto_server" in str(refused.value)
        assert "MOTO_PORT" in str(refused.value)
        assert emulator.poll() is None and port_open(port)
    finally:
        finish(emulator)
        finish(owner)


def test_a_port_held_by_another_program_is_named_with_its_pid_and_command(tmp_path):
    port = free_port()
    other = listener(port)
    try:
        with pytest.raises(StackError) as refused:
            stack_on(port, tmp_path).claim_ports()
        message = str(refused.value)
        assert message == busy_message(port, "MOTO_PORT")
        assert (
            f"port {port} on 127.0.0.1 is already in use by pid {other.pid} ({sys.executable} -c" in message
        )
        assert message.endswith("stop it or set MOTO_PORT to a free port")
        assert other.poll() is None  # not ours: never stopped
    finally:
        finish(other)


def test_free_ports_come_from_below_the_kernels_ephemeral_range(tmp_path):
    """Linux hands outgoing connections ports from ip_local_port_range (32768-60999 by default,
    kernel ip-sysctl docs); a test port picked there with bind(0) can be taken by a client's
    connection before the server binds it. Ports picked here stay below the range."""
    from local.emulator import LOWEST_TEST_PORT, ephemeral_ports

    ephemeral = ephemeral_ports()
    ports = {free_port() for _ in range(50)}
    assert len(ports) > 40  # random, not one port over and over
    assert all(LOWEST_TEST_PORT <= p < 65536 and p not in ephemeral for p in ports), sorted(ports)
    custom = tmp_path / "range"
    custom.write_text("20000\t60999\n")
    assert ephemeral_ports(str(custom)) == range(20000, 61000)
    assert ephemeral_ports(str(tmp_path / "absent")) == range(32768, 61000)
