"""Start and stop the embedded AWS emulator (moto server) on loopback.

The server (``local.moto_server``: moto's, with the SQS fixes described there)
runs as a child process in its own process group, bound to
127.0.0.1. ``stop()`` ends the group and waits, so nothing is left behind.
Given a ``snapshot`` file it starts from that state when the file holds a
usable one (``restored()`` says whether it did) and ``save_snapshot()`` writes
the current state there (``local.snapshot``).

Step Functions executions run (moto's ``execute_state_machine``, turned on as
the server starts; ``local.moto_sfn``).

With ``strict=True`` the emulator enforces IAM as AWS does (``local.moto_iam``;
docs/local-stack-iam.md): it starts open, the administrator identity is
created (IAM user ``ADMIN_USER``, an allow-everything inline policy, a fresh
access key: ``admin``), then every request must be signed by a known identity
whose policies allow it. ``lambda_credentials()`` assumes a function's role as
the Lambda service does.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
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
ADMIN_USER = "local-admin"
LAMBDA_SERVICE = "lambda.amazonaws.com"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Administrator", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def client(endpoint: str, service: str, credentials: dict[str, str] | None = None) -> Any:
    """A boto3 client for ``service`` on the emulator at ``endpoint``, in REGION, never the shell's keys.

    ``credentials`` are environment-style (``AWS_ACCESS_KEY_ID``, ...); without
    them the fake keys, which only an emulator that does not enforce IAM accepts.
    """
    import boto3

    from local.functions import FAKE_CREDENTIALS

    keys = credentials or FAKE_CREDENTIALS
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=keys.get("AWS_SESSION_TOKEN") or None,
    )


def _post(url: str, body: bytes, content_type: str) -> dict:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})  # noqa: S310
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        return json.loads(resp.read() or b"{}")


def lambda_credentials(
    endpoint: str, role_arn: str, session_name: str, duration: int = 3600, service: str = LAMBDA_SERVICE
) -> dict[str, str]:
    """The role's temporary credentials as Lambda gets them (environment-style, with ``expiration``).

    Lambda, not the function, assumes the execution role; the role's trust
    policy must let ``lambda.amazonaws.com`` do so (local.moto_iam). Another
    ``service`` that acts with a role it is given (EventBridge Scheduler:
    ``scheduler.amazonaws.com``) assumes it the same way.
    """
    request = {"RoleArn": role_arn, "RoleSessionName": session_name, "DurationSeconds": duration}
    body = json.dumps({**request, "Service": service})
    try:
        found = _post(f"{endpoint}/_local/lambda/assume-role", body.encode(), "application/json")
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        raise RuntimeError(f"{session_name}: {detail}") from None
    return {
        "AWS_ACCESS_KEY_ID": found["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": found["SecretAccessKey"],
        "AWS_SESSION_TOKEN": found["SessionToken"],
        "expiration": str(found["Expiration"]),
    }


def role_client(
    endpoint: str, service: str, role_arn: str, session_name: str, assumed_by: str = LAMBDA_SERVICE
) -> Any:
    """A boto3 client that acts as ``role_arn`` assumed by Lambda (or ``assumed_by``), assuming it
    again before it expires.

    For what Lambda itself does with a function's role: the SQS event source
    mapping reads and deletes messages with the function's execution role; and
    for what EventBridge Scheduler does with a schedule's role.
    """
    import boto3
    from botocore.credentials import RefreshableCredentials
    from botocore.session import get_session

    def fetch() -> dict[str, str]:
        keys = lambda_credentials(endpoint, role_arn, session_name, service=assumed_by)
        expiry = datetime.datetime.fromtimestamp(float(keys["expiration"]), datetime.UTC)
        return {
            "access_key": keys["AWS_ACCESS_KEY_ID"],
            "secret_key": keys["AWS_SECRET_ACCESS_KEY"],
            "token": keys["AWS_SESSION_TOKEN"],
            "expiry_time": expiry.isoformat(),
        }

    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(fetch(), fetch, "lambda")
    session = boto3.Session(botocore_session=botocore_session, region_name=REGION)
    return session.client(service, endpoint_url=endpoint)


LOWEST_TEST_PORT = 10000


def ephemeral_ports(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> range:
    """The ports the kernel hands out to outgoing connections (Linux's default 32768-60999)."""
    try:
        low, high = (int(n) for n in Path(path).read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A free TCP port on loopback (for tests; `make run` uses fixed ports), below the ephemeral
    range: a port the kernel picked with bind(0) can be handed to an outgoing connection in the
    moment between this check and the server's own bind, and the server then fails to start."""
    ephemeral = ephemeral_ports()
    candidates = [p for p in range(LOWEST_TEST_PORT, 65536) if p not in ephemeral]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # every sampled port taken: let the kernel choose
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
    strict: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)
    admin: dict[str, str] | None = field(default=None, repr=False)

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
                    pass
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
                continue
            self.execute_state_machines()
            if self.strict:
                self.enforce_iam()
            return self
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout:.0f}s")

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this emulator (``client``), as the administrator when strict."""
        return client(self.endpoint, service, self.admin)

    def execute_state_machines(self) -> None:
        """Turn on moto's ASL interpreter: executions run their states, as on AWS (local.moto_sfn).

        Without it moto keeps every execution ``RUNNING`` and runs nothing. Its
        state machines live in the interpreter's backend, so this comes before
        anything is created.
        """
        body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        _post(f"{self.endpoint}/moto-api/config", body, "application/json")

    def enforce_iam(self) -> dict[str, str]:
        """Create (or find) the administrator, give it a new access key, then turn IAM enforcement on.

        Runs while the emulator is still open (moto authorises nothing until
        then); a restored snapshot already holds the user, whose old keys are
        replaced. ``admin`` holds the key afterwards.
        """
        iam = client(self.endpoint, "iam")
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(
            UserName=ADMIN_USER, PolicyName="administrator", PolicyDocument=json.dumps(ADMIN_POLICY)
        )
        for key in iam.list_access_keys(UserName=ADMIN_USER)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=ADMIN_USER, AccessKeyId=key["AccessKeyId"])
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        # From now on every request is authenticated and authorised (moto's reset-auth: no free requests).
        _post(f"{self.endpoint}/moto-api/reset-auth", b"0", "text/plain")
        self.admin = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
        return self.admin

    def lambda_credentials(self, role_arn: str, session_name: str, duration: int = 3600) -> dict[str, str]:
        return lambda_credentials(self.endpoint, role_arn, session_name, duration)

    def iam_calls(self) -> list[dict[str, Any]]:
        """Every authorisation the emulator decided (principal, action, resource, allowed)."""
        with urllib.request.urlopen(f"{self.endpoint}/_local/iam/calls", timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read())["calls"]

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
    port: int | None = None, log_path: Path | None = None, snapshot: Path | None = None, strict: bool = False
) -> Iterator[Emulator]:
    emulator = Emulator(port or free_port(), log_path, snapshot, strict).start()
    try:
        yield emulator
    finally:
        emulator.stop()
