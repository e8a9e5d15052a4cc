"""The emulator launcher starts on loopback and leaves nothing behind."""

from __future__ import annotations

import os

import boto3
import pytest

from local.emulator import port_open, running

pytestmark = pytest.mark.slow


def test_emulator_serves_s3_on_loopback_and_stops_cleanly():
    with running() as emu:
        s3 = boto3.client("s3", endpoint_url=emu.endpoint)
        s3.create_bucket(Bucket="probe")
        s3.put_object(Bucket="probe", Key="a b+c.txt", Body=b"hello")
        assert s3.get_object(Bucket="probe", Key="a b+c.txt")["Body"].read() == b"hello"
        pid, port = emu.process.pid, emu.port
    assert not port_open(port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
