"""One aws provider process for all of a test module's terraform commands (TF_REATTACH_PROVIDERS).

Without it every terraform command starts the 700 MB provider binary anew: a
``terraform plan`` three times (schemas, validate walk, plan walk) and a
``terraform show -json`` once, about 0.8 s of CPU each before any work. Started
here once with ``-debug``, the provider serves on a socket and prints the
``TF_REATTACH_PROVIDERS`` value that makes terraform use it instead
(https://developer.hashicorp.com/terraform/plugin/debugging): terraform then
neither starts nor stops it. Terraform still sends every command's provider
configuration (ConfigureProvider), so a plan in another region or with other
variables configures it afresh; the commands of one module run one after the
other, never two at once.

    tf.init()
    with reattached(tf, log_path):
        tf.run("plan", ...)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from local.processes import die_with_parent
from local.tf import Terraform, TerraformError

PROVIDER = "registry.terraform.io/hashicorp/aws"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
# The provider's own logs (trace by default in -debug mode: megabytes a plan): errors only.
QUIET = {
    name: "ERROR"
    for name in (
        "TF_LOG_PROVIDER",
        "TF_LOG_SDK",
        "TF_LOG_SDK_PROTO",
        "TF_LOG_SDK_MUX",
        "TF_LOG_SDK_FRAMEWORK",
        "TF_LOG_SDK_HELPER_SCHEMA",
        "TF_LOG_SDK_HELPER_RESOURCE",
    )
}
# Go's collector, which took almost half of the provider's CPU a plan (6.4 s; 3.5 s without it)
# and a quarter of terraform's (1.9 s plan and 1.1 s show; 1.4 s and 0.8 s without): off until
# the heap nears 1 GiB (the provider's live heap is about 250 MB; 1.2 GB resident measured).
GARBAGE_COLLECTOR = {"GOGC": "off", "GOMEMLIMIT": "1GiB"}
REATTACH_PREFIX = "TF_REATTACH_PROVIDERS='"


def provider_binary(tf: Terraform) -> Path:
    """The provider ``tf.init()`` installed in the wrapper's data directory."""
    found = sorted((tf.data_dir / "providers" / PROVIDER).glob("*/*/terraform-provider-aws_*"))
    if not found:
        raise TerraformError(f"no {PROVIDER} under {tf.data_dir}: run init first")
    return found[-1]


def _reattach_value(proc: subprocess.Popen, banner: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in banner.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith(REATTACH_PREFIX) and line.endswith("'"):
                value = line[len(REATTACH_PREFIX) : -1]
                json.loads(value)  # whole, not half written
                return value
        if proc.poll() is not None:
            raise TerraformError(f"the provider exited with code {proc.returncode} before serving")
        time.sleep(0.1)
    raise TerraformError(f"the provider printed no {REATTACH_PREFIX[:-2]} within {START_TIMEOUT:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def reattached(tf: Terraform, log_path: Path) -> Iterator[None]:
    """Run ``tf``'s commands against one provider process, started here and stopped (by pid) on exit,
    with Go's collector off below 1 GiB in both (GARBAGE_COLLECTOR).

    The provider reads the credentials from its own environment, so it gets the wrapper's
    (``tf.extra_env``) and no other AWS_* variable, as tests/conftest.py's ``aws_credentials``
    leaves a test's terraform. Above all not an outer AWS_CA_BUNDLE: with it, aws provider
    5.100.0 refuses its second ConfigureProvider ("unable to add custom RootCAs HTTPClient,
    has no WithTransportOptions"); the emulator is plain HTTP on loopback, no CA bundle is used."""
    binary = provider_binary(tf)
    outer = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BOTO", "TF_"))}
    env = {**outer, **{k: str(v) for k, v in tf.extra_env.items()}, **QUIET, **GARBAGE_COLLECTOR}
    banner = log_path.with_name(log_path.name + ".banner")
    with open(banner, "wb") as out, open(log_path, "ab") as err:
        proc = subprocess.Popen(
            [str(binary), "-debug"],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own group, stopped by pid
            preexec_fn=die_with_parent(),  # a killed pytest does not leave it serving
        )
    added = {**GARBAGE_COLLECTOR, "TF_REATTACH_PROVIDERS": ""}
    before = {name: tf.extra_env[name] for name in added if name in tf.extra_env}
    try:
        added["TF_REATTACH_PROVIDERS"] = _reattach_value(proc, banner)
        tf.extra_env.update(added)  # terraform's own commands collect less too
        yield
    finally:
        for name in added:
            tf.extra_env.pop(name, None)
        tf.extra_env.update(before)
        _stop(proc)
