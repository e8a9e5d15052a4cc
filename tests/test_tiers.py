"""`make test-fast` runs what is not marked slow; tests/conftest.py keeps that mark honest.

A test outside the slow tier that starts a server, terraform or the local stack fails at once,
naming the mark it needs, instead of slowing the quick loop down (docs/development.md).
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def test_a_quick_test_that_listens_on_a_port_is_told_to_be_marked_slow():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(AssertionError, match=r"must be marked @pytest.mark.slow"):
            sock.listen()


@pytest.mark.parametrize(
    "argv",
    [
        ["terraform", "version"],
        ["/usr/local/bin/terraform", "apply"],
        [sys.executable, "-m", "local.run"],
        [sys.executable, "-m", "local.moto_server", "-H", "127.0.0.1", "-p", "1"],
    ],
)
def test_a_quick_test_that_runs_terraform_the_stack_or_the_emulator_is_told_to_be_marked_slow(argv):
    with pytest.raises(AssertionError, match=r"must be marked @pytest.mark.slow"):
        subprocess.run(argv, check=False)


def test_other_child_processes_run_as_usual():
    done = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True, check=True)
    assert done.stdout == "ok\n"


@pytest.mark.slow
def test_a_slow_test_may_listen():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert sock.getsockname()[1] > 0
