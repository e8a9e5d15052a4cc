"""Run this repository's Terraform root module, offline from a mirror or online from the registry.

The ``hashicorp/aws`` provider comes from a local mirror directory when there is
one (``TF_PLUGIN_MIRROR`` when set, else the first of ``MIRROR_CANDIDATES`` that
exists): then nothing is ever downloaded. Without a mirror (a laptop with
internet) ``terraform init`` installs the version pinned in ``terraform.tf``
from the registry, checked against ``.terraform.lock.hcl``, into a provider
cache shared by every data directory of this checkout, so the tests do not
download it once per working directory. Every command runs with a generated CLI
configuration, so a missing or broken ``TF_CLI_CONFIG_FILE`` in the caller's
environment does not matter.

State and ``.terraform`` data are kept apart from a real deployment's (under
``.local-stack/terraform/`` by default, through ``TF_DATA_DIR`` and ``-state``),
so the local stack and the tests never touch an ops engineer's state. Variables
go through a generated ``*.tfvars.json`` file, not the command line.

Used by the tests, by ``make lint`` (``python -m local.tf validate``) and by the
local stack::

    tf = Terraform(env={"AWS_ACCESS_KEY_ID": "testing", ...})
    tf.init()
    outputs = tf.apply({"aws_endpoint_url": "http://127.0.0.1:4566"})
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local.apply_progress import ApplyProgress

REPO_ROOT = Path(__file__).resolve().parent.parent
MIRROR_CANDIDATES = (
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path("/usr/share/terraform/plugins"),
    Path("/usr/local/share/terraform/plugins"),
)
PROVIDER_CACHE = REPO_ROOT / ".local-stack" / "provider-cache"
MISSING_TERRAFORM = (
    "terraform is not on PATH (or TERRAFORM does not name a file): install Terraform >= 1.5 "
    "from https://developer.hashicorp.com/terraform/install"
)
LOCK_TIMEOUT = "60s"
COMMAND_TIMEOUT = 900.0


class TerraformError(RuntimeError):
    """A terraform command failed; the message carries its stderr."""


def state_outputs(state: Path) -> dict[str, Any]:
    """The root module's outputs as plain values, read from a local state file: what
    ``terraform output -json`` prints (each output's ``value``), without starting Terraform.
    Empty when there is no readable state."""
    try:
        outputs = json.loads(state.read_text()).get("outputs") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {
        name: item["value"] for name, item in outputs.items() if isinstance(item, dict) and "value" in item
    }


def find_terraform() -> str | None:
    """The terraform binary: ``TERRAFORM`` when set, else the one on PATH."""
    explicit = os.environ.get("TERRAFORM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("terraform")


def find_plugin_mirror() -> Path | None:
    """The provider mirror directory, or None (install from the registry); TF_PLUGIN_MIRROR must exist."""
    explicit = os.environ.get("TF_PLUGIN_MIRROR", "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise TerraformError(f"TF_PLUGIN_MIRROR={explicit} is not a directory")
        return path
    return next((path for path in MIRROR_CANDIDATES if path.is_dir()), None)


def _cli_config(mirror: Path | None, cache: Path) -> str:
    """Only the mirror when there is one; else the registry, through a provider cache."""
    # HCL strings take JSON escapes; json.dumps quotes the paths safely.
    if mirror is None:
        return f"plugin_cache_dir = {json.dumps(str(cache))}\ndisable_checkpoint = true\n"
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        '    include = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "}\n"
        "disable_checkpoint = true\n"
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _communicate(proc: subprocess.Popen, on_line: Callable[[str], None]) -> tuple[str, str]:
    """Like ``communicate``, with each stdout line handed to ``on_line`` as it comes (stderr read aside)."""
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    reader.start()
    timer = threading.Timer(COMMAND_TIMEOUT, _kill_group, (proc.pid,))
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            on_line(line)
        proc.wait()
    finally:
        timer.cancel()
        reader.join(timeout=30)
    return "".join(lines), "".join(stderr)


class Terraform:
    """One root module with its own data directory and state file."""

    def __init__(
        self,
        workdir: Path = REPO_ROOT,
        data_dir: Path | None = None,
        state: Path | None = None,
        env: dict | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        base = self.workdir / ".local-stack" / "terraform"
        self.data_dir = Path(data_dir).resolve() if data_dir else base / "data"
        self.state = Path(state).resolve() if state else base / "terraform.tfstate"
        self.extra_env = dict(env or {})
        binary = find_terraform()
        if binary is None:
            raise TerraformError(MISSING_TERRAFORM)
        self.binary = binary
        self.mirror = find_plugin_mirror()
        self.last_stdout = ""
        self.last_stderr = ""

    # -- plumbing ---------------------------------------------------------

    def _env(self) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cli_config = self.data_dir / "terraformrc"
        PROVIDER_CACHE.mkdir(parents=True, exist_ok=True)
        cli_config.write_text(_cli_config(self.mirror, PROVIDER_CACHE))
        env = {**os.environ, **{k: str(v) for k, v in self.extra_env.items()}}
        env.update(
            TF_DATA_DIR=str(self.data_dir),
            TF_CLI_CONFIG_FILE=str(cli_config),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
        )
        env.pop("TF_CLI_ARGS", None)
        return env

    def _var_file(self, variables: dict[str, Any]) -> Path:
        path = self.data_dir / "variables.tfvars.json"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(variables, indent=2, sort_keys=True) + "\n")
        return path

    def run(
        self, *args: str, ok_codes: tuple[int, ...] = (0,), on_line: Callable[[str], None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``terraform ARGS`` in the module; TerraformError (with stderr) on failure.

        With ``on_line``, each line of stdout goes to it as it is printed (``-json`` progress)."""
        cmd = [self.binary, *args]
        proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # terraform and its provider plugins: one group to stop
        )
        try:
            if on_line is None:
                stdout, stderr = proc.communicate(timeout=COMMAND_TIMEOUT)
            else:
                stdout, stderr = _communicate(proc, on_line)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
            raise
        self.last_stdout, self.last_stderr = stdout, stderr
        if proc.returncode not in ok_codes:
            detail = stderr.strip() or stdout.strip()[-4000:]
            raise TerraformError(f"terraform {args[0]} failed (exit {proc.returncode}):\n{detail}")
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)

    def _common(self, variables: dict[str, Any]) -> list[str]:
        return [
            "-input=false",
            "-no-color",
            f"-lock-timeout={LOCK_TIMEOUT}",
            f"-state={self.state}",
            f"-var-file={self._var_file(variables)}",
        ]

    # -- the API ----------------------------------------------------------

    def init(self) -> None:
        """Install the pinned provider: from the mirror only when there is one, else from the registry."""
        source = [f"-plugin-dir={self.mirror}"] if self.mirror else []
        self.run("init", "-input=false", "-no-color", "-backend=false", *source)

    def validate(self) -> None:
        self.run("validate", "-no-color")

    def apply(
        self, variables: dict[str, Any], progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Apply with these variables; the outputs as plain values.

        With ``progress``, the apply runs with ``-json`` and ``progress`` gets a line as each resource
        is applied and every 10 s while one waits (local/apply_progress.py)."""
        self.state.parent.mkdir(parents=True, exist_ok=True)
        if progress is None:
            applied = self.run("apply", "-auto-approve", *self._common(variables))
            log_text = applied.stdout
        else:
            log_text = self._apply_with_progress(variables, progress)
        stderr = self.last_stderr
        outputs = self.output()
        self.last_stdout, self.last_stderr = log_text, stderr  # the apply's, for its log
        return outputs

    def _apply_with_progress(self, variables: dict[str, Any], progress: Callable[[str], None]) -> str:
        tracker = ApplyProgress(progress)
        try:
            self.run("apply", "-auto-approve", "-json", *self._common(variables), on_line=tracker.feed)
        except TerraformError as exc:
            self.last_stdout = "\n".join(tracker.messages) + "\n"
            if tracker.errors:  # with -json the errors are diagnostics on stdout, not text on stderr
                raise TerraformError("terraform apply failed:\n" + "\n".join(tracker.errors)) from None
            raise exc from None
        return "\n".join(tracker.messages) + "\n"

    def plan(self, variables: dict[str, Any]) -> bool:
        """True when the plan has changes (``-detailed-exitcode``)."""
        result = self.run("plan", "-detailed-exitcode", *self._common(variables), ok_codes=(0, 2))
        return result.returncode == 2

    def output(self) -> dict[str, Any]:
        if not self.state.exists():
            return {}
        result = self.run("output", "-json", "-no-color", f"-state={self.state}")
        return {name: item["value"] for name, item in json.loads(result.stdout or "{}").items()}

    def destroy(self, variables: dict[str, Any]) -> None:
        self.run("destroy", "-auto-approve", *self._common(variables))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.tf", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["init", "validate", "plan", "apply", "output", "destroy"])
    parser.add_argument("--var-file", type=Path, help="a JSON file of variables (plan, apply, destroy)")
    args = parser.parse_args(argv)
    try:
        tf = Terraform()
        variables = json.loads(args.var_file.read_text()) if args.var_file else {}
        if args.command in ("init", "validate"):
            tf.init()
        if args.command == "validate":
            tf.validate()
        elif args.command == "plan":
            print("changes" if tf.plan(variables) else "no changes")
        elif args.command == "apply":
            print(json.dumps(tf.apply(variables), indent=2))
        elif args.command == "output":
            print(json.dumps(tf.output(), indent=2))
        elif args.command == "destroy":
            tf.destroy(variables)
    except TerraformError as exc:
        print(exc, file=sys.stderr)
        return 1
    if tf.last_stdout and args.command in ("init", "validate"):
        print(tf.last_stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
