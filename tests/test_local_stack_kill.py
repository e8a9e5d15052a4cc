"""`make run` killed with SIGKILL leaves no process and no port behind (issue 12.13).

The stack is started as in test_local_stack.py, then killed with ``kill -9``:
its emulator and function workers must be gone within seconds, both ports
free, and the next start on the same ports must work. The same holds when it
is ``make`` (the stack's parent) that is killed: the stack stops as on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from local.emulator import free_port, port_open
from local.processes import holder
from tests.test_local_processes import alive
from tests.test_local_stack import start_stack

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def left_after(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


def assert_free(*ports: int) -> None:
    deadline = time.monotonic() + 5
    while any(port_open(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    for port in ports:
        assert not port_open(port), f"port {port} still answers: {holder(port)}"


def kill_leftovers(pids: set[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# `make run` keeps a parent that stays: a shell that does not exec the stack.
UNDER_MAKE = '"$0" -m local.run; echo "local.run exited: $?"'


def test_kill_9_of_make_run_leaves_nothing_behind_and_the_next_run_starts(tmp_path_factory, lambda_zip):
    state_dir = tmp_path_factory.mktemp("killed-stack")
    moto_port, api_port = free_port(), free_port()

    first = start_stack(state_dir, moto_port, api_port)
    children = first.descendants()
    recorded = {pid for group in first.description["pids"].values() for pid in group}
    try:
        workers = recorded - set(first.description["pids"]["emulator"])
        time.sleep(1)
        assert workers and all(
            alive(p) for p in workers
        )  # warmed workers outlive the threads that warmed them
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        assert left_after(children | recorded, 10) == set()
        assert_free(moto_port, api_port)
    finally:
        kill_leftovers(children | recorded)

    second = start_stack(state_dir, moto_port, api_port, command=UNDER_MAKE)
    stack_pids = second.descendants()
    try:
        second.process.send_signal(signal.SIGKILL)  # `make` killed: the stack stops as on Ctrl-C
        second.process.wait(10)
        assert left_after(stack_pids, 60) == set()
        assert "stopped: every process ended, ports closed" in second.log.read_text()
        assert_free(moto_port, api_port)
    finally:
        kill_leftovers(stack_pids)

    third = start_stack(state_dir, moto_port, api_port)
    try:
        assert "from the last run's snapshot" in third.log.read_text()
        missing = requests.get(f"{third.api}/nothing/here", timeout=30)
        assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}
    finally:
        assert third.stop() == 0, third.log.read_text()[-3000:]
    assert_free(moto_port, api_port)
