"""``make run``: the whole pipeline on loopback, provisioned by this repository's Terraform.

1. The emulator (moto server) starts on 127.0.0.1:$MOTO_PORT: from the
   snapshot the last successful run saved (``local.snapshot``) when there is
   one that belongs to the Terraform state beside it, else empty (and the old
   local state is deleted).
2. ``terraform apply`` of the root module, pointed at it, with its state under
   ``$LOCAL_STACK_DIR/terraform/``. From nothing this takes about 70 s, all of
   it the provider's fixed waits; from a snapshot Terraform reads everything
   back, finds it as declared and applies only what changed since (about
   12 s). The emulator's state is then saved for the next run. The SQS event
   source mapping is created disabled: in the emulator an enabled one would
   consume the messages itself.
3. What Terraform created is read back from the emulator: every function's
   configuration, the HTTP API's routes, the mapping's settings.
4. Each function runs in its own worker processes with its own environment
   and its execution role's credentials (``local.functions``); the HTTP
   front serves the API's routes on
   127.0.0.1:$API_PORT (``local.front``), and the renditions under
   ``$API_URL/cdn/<key>`` as the CDN would (``local.cdn``; the upload
   function's ``CDN_BASE_URL`` points there); the poller delivers the queue to the
   resize function with the mapping's settings (``local.poller``); the
   emulator's Lambda ``Invoke`` (boto3, Step Functions' ``lambda:invoke``) runs
   the same functions (``local.invocations``, ``local.moto_lambda``), and each
   ENABLED EventBridge Scheduler schedule fires with its role (``local.schedules``).
5. Every 2 s the stack looks at the functions' configuration in the emulator and
   reconfigures a function that changed, as Lambda does after an update
   (``local.reconfigure``): ``make run-apply`` (``local.live_apply``) applies a
   changed ``LOCAL_TF_VARS`` to the running stack, its data kept.

Ctrl-C or SIGTERM stops everything, in reverse order, and leaves no process
and no open port; a ``kill -9`` takes the children with it
(``local.processes``). Buckets, queues and the table start empty on every run
(the snapshot is taken right after the apply). Environment: ``MOTO_PORT`` (4566),
``API_PORT`` (8080), ``LOCAL_STACK_DIR`` (``.local-stack``), ``LOCAL_TF_VARS``
(a JSON object of extra Terraform variables, e.g.
``{"resize_max_receive_count": 2}``), ``LOCAL_STACK_FRESH=1`` (ignore the
snapshot: provision from nothing), ``LOCAL_UNKIND_DELIVERY=1`` (``make run
UNKIND=1``: the poller delivers as unkindly as SQS may; ``LOCAL_UNKIND_SEED``,
``LOCAL_UNKIND_RATE``, ``LOCAL_UNKIND_MAX_DELAY``; see ``local.unkind``),
``LOCAL_SCHEDULE_SECONDS=N`` (fire EventBridge Scheduler schedules every N
seconds instead of at their rate; see ``local.schedules``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import processes
from local.cdn import PREFIX as CDN_PREFIX
from local.cdn import Cdn
from local.emulator import HOST, REGION, Emulator, client, port_open, role_client
from local.front import Api, Front, load_api
from local.functions import FAKE_CREDENTIALS, FunctionConfig, LocalFunction
from local.invocations import InvokeServer, UnknownFunction
from local.poller import MappingSettings, Poller
from local.reconfigure import (
    ROUTES_EVERY,
    Watcher,
    describe_function_change,
    describe_mapping_change,
    describe_route_change,
    fingerprint,
    mapping_view,
)
from local.schedules import SCHEDULER_SERVICE, Scheduler, ScheduleSettingsError, local_rate
from local.unkind import UnkindDelivery, UnkindSettings, UnkindSettingsError

log = logging.getLogger("local.run")

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_ZIP = REPO_ROOT / "build" / "lambda.zip"
API_WORKERS = 4  # concurrent environments per function behind the API
INVOKE_WORKERS = 2  # more per function for Lambda's Invoke (boto3, Step Functions' lambda:invoke)
SNAPSHOT = "emulator.snapshot"  # the emulator's state after the last successful apply
SNAPSHOT_META = "emulator.snapshot.json"  # which endpoint and Terraform state it belongs to
SNAPSHOT_STATE = "emulator.snapshot.tfstate"  # that Terraform state (a make run-apply moves the live one on)
_KIND_DELIVERY = "kind: each message once, in order (make run UNKIND=1 delivers as unkindly as SQS may)"


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"{name}={raw!r} is not a TCP port")
    return int(raw)


def extra_tf_vars() -> dict[str, Any]:
    raw = os.environ.get("LOCAL_TF_VARS", "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StackError(f"LOCAL_TF_VARS is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise StackError("LOCAL_TF_VARS must be a JSON object of Terraform variables")
    return value


def isolate_from_real_aws() -> None:
    """Fake credentials, fixed region, no profile or config file: nothing can reach AWS."""
    for var in list(os.environ):
        if var.startswith(("AWS_", "BOTO")):
            del os.environ[var]
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.update(
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )


@dataclass
class Stack:
    """Everything ``make run`` starts, stopped in reverse order by ``stop()``."""

    moto_port: int
    api_port: int
    state_dir: Path
    tf_vars: dict[str, Any] = field(default_factory=dict)
    emulator: Emulator | None = None
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    front: Front | None = None
    invocations: InvokeServer | None = None
    pollers: list[Poller] = field(default_factory=list)
    api: Api | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    mappings: list[MappingSettings] = field(default_factory=list)
    launched: bool = False
    fresh: bool = False  # provision from nothing even when a snapshot fits
    restored: bool = False  # the emulator started from the last run's snapshot
    apply_summary: str = ""
    unkind: UnkindSettings | None = None  # make run UNKIND=1: SQS's at-least-once, on purpose
    schedule_seconds: float | None = None  # LOCAL_SCHEDULE_SECONDS: fire schedules this often instead
    scheduler: Scheduler | None = None
    watcher: Watcher | None = None  # follows the functions' configuration (make run-apply)
    _configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # as last read, by function
    _mappings_read: dict[str, dict[str, Any]] = field(default_factory=dict)  # local.reconfigure.mapping_view
    _warned: set[str] = field(default_factory=set)  # changes already logged as needing a restart
    _warmers: concurrent.futures.ThreadPoolExecutor | None = None
    _functions_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.moto_port}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def cdn_url(self) -> str | None:
        """Where the local stack serves the renditions (``local.cdn``); None with the CDN off."""
        return self.api_url + CDN_PREFIX.rstrip("/") if self.outputs.get("cdn_base_url") else None

    def client(self, service: str) -> Any:
        """A client acting as the administrator (IAM is enforced: docs/local-stack-iam.md)."""
        return client(self.endpoint, service, self.emulator.admin if self.emulator else None)

    def start(self) -> None:
        zip_path = Path(self.tf_vars.get("lambda_zip_path") or LAMBDA_ZIP)
        if not zip_path.is_file():
            raise StackError(f"{zip_path} is missing: run `make package` (`make run` does)")
        self.claim_ports()
        self.launched = True
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._start_emulator(warm=self._prepare_state())
        self._provision()
        self._start_functions()
        self._start_serving()
        self._write_description()

    def _start_emulator(self, warm: bool) -> None:
        """The emulator, from the last run's snapshot when ``warm`` and it loads, else empty."""
        step = time.monotonic()
        snapshot = self.state_dir / SNAPSHOT
        log_path = self.state_dir / "moto.log"
        self.emulator = Emulator(self.moto_port, log_path=log_path, snapshot=snapshot, strict=True).start()
        processes.write_pid_file(self.state_dir, self.emulator.process.pid, self.moto_port)
        self.restored = warm and self.emulator.restored()
        if warm and not self.restored:
            self._forget_state()  # the snapshot did not load (another moto?): provision from nothing
        how = "from the last run's snapshot" if self.restored else "empty"
        log.info("emulator up on %s, %s (%.1f s)", self.endpoint, how, time.monotonic() - step)
        if not self.restored:
            log.info(
                "terraform apply from nothing: about 70 s, most of it the AWS provider's fixed waits "
                "(docs/local-stack.md, Apply time); the next run starts from a snapshot and takes about 15 s"
            )

    def _provision(self) -> None:
        """terraform apply, then the emulator's state saved for the next run."""
        step = time.monotonic()
        try:
            self.outputs = self._apply()
        except BaseException:
            self._forget_state(keep_terraform=True)  # half-applied: the next run starts from nothing
            raise
        try:
            self.emulator.save_snapshot()
            self._write_snapshot_meta()
        except (OSError, ValueError) as exc:  # only the next start is slower: say so and go on
            log.warning("the emulator's state could not be saved, the next run starts from nothing: %s", exc)
            self._forget_state(keep_terraform=True)
        log.info("terraform apply done (%.1f s): %s", time.monotonic() - step, self.apply_summary)

    def _start_functions(self) -> None:
        """Read back the API, the mappings and the functions Terraform made; start each function warm."""
        step = time.monotonic()
        account = self.client("sts").get_caller_identity()["Account"]
        self.api = load_api(self.client("apigatewayv2"), account)
        lam, sqs = self.client("lambda"), self.client("sqs")
        found_mappings = paginate(lam, "list_event_source_mappings", "EventSourceMappings")
        self._mappings_read = mapping_view(found_mappings)
        self.mappings = [
            MappingSettings.from_api(m, sqs)
            for m in found_mappings
            if m.get("EventSourceArn", "").startswith("arn:aws:sqs:")
        ]
        # Every function Terraform created, whatever calls it: the API, a queue, or Invoke.
        configs = {c["FunctionName"]: c for c in paginate(lam, "list_functions", "Functions")}
        names = sorted(configs)
        for name in names:
            self.functions[name] = self._local_function(configs[name])
            self._configs[name] = configs[name]
        self._warm_all()
        log.info("functions started: %s (%.1f s)", ", ".join(names), time.monotonic() - step)

    def _function_config(self, found: dict[str, Any]) -> FunctionConfig:
        """What the local runtime runs a function with, from its configuration in the emulator."""
        config = FunctionConfig.from_api(found)
        if config.environment.get("CDN_BASE_URL") and self.cdn_url:
            # The emulator's distribution serves nothing: its URLs go to the local CDN instead.
            environment = {**config.environment, "CDN_BASE_URL": self.cdn_url}
            config = dataclasses.replace(config, environment=environment)
        return config

    def _credentials(self, config: FunctionConfig) -> Any:
        # As on Lambda: each environment runs with the function's own execution role.
        return functools.partial(self.emulator.lambda_credentials, config.role, config.name)

    def _local_function(self, found: dict[str, Any]) -> LocalFunction:
        """A function's local runtime, from its configuration as the emulator holds it."""
        config = self._function_config(found)
        workers = INVOKE_WORKERS + (API_WORKERS if self.api and config.name in self.api.functions() else 0)
        workers += sum(pollers_for(m) for m in self.mappings if m.function_name == config.name)
        credentials = self._credentials(config)
        return LocalFunction(config, self.endpoint, max_workers=workers, credentials=credentials)

    def _follow_changes(self, poll: int) -> None:
        """One look at what Terraform may have changed since (``make run-apply``,
        ``local.reconfigure``): each function whose configuration changed is reconfigured;
        a changed event source mapping or route is logged once, with what to do."""
        lam = self.client("lambda")
        reconfigured = []
        for found in paginate(lam, "list_functions", "Functions"):
            name = found["FunctionName"]
            with self._functions_lock:
                fn, known = self.functions.get(name), self._configs.get(name)
            if fn is None or known is None or fingerprint(known) == fingerprint(found):
                continue  # unchanged, or not started yet (started on its first Invoke)
            config = self._function_config(found)
            credentials = self._credentials(config) if config.role != fn.config.role else None
            fn.reconfigure(config, credentials)  # only this thread reconfigures
            with self._functions_lock:
                self._configs[name] = found
            reconfigured.append(name)
            log.info(
                "function %s reconfigured (%s): new invocations run with it, in-flight ones finish as begun",
                name,
                describe_function_change(known, found),
            )
        now = mapping_view(paginate(lam, "list_event_source_mappings", "EventSourceMappings"))
        mappings = describe_mapping_change(self._mappings_read, now)
        self._warn_once("event source mappings changed", mappings)
        if poll % ROUTES_EVERY == 0 and self.api is not None:
            account = self.client("sts").get_caller_identity()["Account"]
            api = load_api(self.client("apigatewayv2"), account)
            routes = describe_route_change(self.api.routes, api.routes)
            self._warn_once("the HTTP API's routes changed", routes)
        if reconfigured:
            self._write_description()

    def _warn_once(self, what: str, change: str | None) -> None:
        if change and f"{what}: {change}" not in self._warned:
            self._warned.add(f"{what}: {change}")
            log.warning("%s (%s): the running stack does not follow them: restart `make run`", what, change)

    def _function_for_invoke(self, name: str, arn: str) -> LocalFunction:
        """The function the emulator's Invoke names; one created since the start is started now."""
        with self._functions_lock:
            fn = self.functions.get(name)
            if fn is None:
                try:
                    found = self.client("lambda").get_function_configuration(FunctionName=name)
                except Exception as exc:  # deleted meanwhile: Invoke answers ResourceNotFoundException
                    raise UnknownFunction(f"Function not found: {arn}") from exc
                fn = self.functions[name] = self._local_function(found)
                self._configs[name] = found
                log.info("function %s started for Invoke", name)
            return fn

    def _warm_all(self) -> None:
        """Cold starts now, in parallel, so the first request is warm and a handler that
        cannot even import fails `make run`, not a request."""
        errors: list[str] = []

        def warm(fn: LocalFunction) -> None:
            try:
                error = fn.warm()
            except RuntimeError as exc:
                errors.append(str(exc))
                return
            if error:
                # As on Lambda, the stack still starts: each invocation reports the error.
                log.error("%s cannot start: %s: %s", fn.name, error["errorType"], error["errorMessage"])

        # A worker dies with the thread that started it (local.processes): warm them
        # from threads that live as long as the stack, not from short-lived ones.
        self._warmers = concurrent.futures.ThreadPoolExecutor(len(self.functions) or 1, "warm")
        concurrent.futures.wait([self._warmers.submit(warm, fn) for fn in self.functions.values()])
        if errors:
            raise StackError("; ".join(errors))

    def _start_serving(self) -> None:
        """The HTTP front, and each mapping's pollers reading its queue with the function's role."""
        cdn = Cdn(self.client("s3"), self.outputs["resized_bucket_name"]) if self.cdn_url else None
        self.front = Front(self.api, self._invoke, self.api_port, cdn=cdn).start()
        # Lambda's Invoke on the emulator (boto3, Step Functions' lambda:invoke) runs these functions.
        self.invocations = InvokeServer(self.endpoint, self._function_for_invoke).start()
        # EventBridge Scheduler: moto stores schedules, the stack fires them with each one's role.
        self.scheduler = Scheduler(
            self.client("scheduler"), self.endpoint, self._scheduler_client, local_rate=self.schedule_seconds
        ).start()
        sqs = self.client("sqs")
        for mapping in self.mappings:
            unkind = UnkindDelivery.for_queue(self.unkind, sqs, mapping.queue_url) if self.unkind else None
            for i in range(pollers_for(mapping)):
                name = f"poller-{mapping.function_name}-{i}"
                # Lambda's event source mapping reads the queue with the function's role.
                role = self.functions[mapping.function_name].config.role
                queue = role_client(self.endpoint, "sqs", role, mapping.function_name)
                poller = Poller(queue, mapping, self._invoke, name, unkind=unkind)
                self.pollers.append(poller.start())
        self.watcher = Watcher(self._follow_changes).start()

    def _scheduler_client(self, service: str, role_arn: str, session_name: str) -> Any:
        """A client acting as a schedule's role, assumed by EventBridge Scheduler as AWS does."""
        return role_client(self.endpoint, service, role_arn, session_name, assumed_by=SCHEDULER_SERVICE)

    def claim_ports(self) -> None:
        """Free MOTO_PORT from a stale emulator of ours; say who holds a port otherwise."""
        if port_open(self.moto_port):
            stale = processes.stale_emulator(self.moto_port, self.state_dir)
            if stale is None:
                raise StackError(processes.busy_message(self.moto_port, "MOTO_PORT"))
            log.warning(
                "port %d: replacing a stale emulator (pid %d) left by an earlier `make run`",
                self.moto_port,
                stale.pid,
            )
            processes.terminate(stale.pid)
            deadline = time.monotonic() + 10
            while port_open(self.moto_port) and time.monotonic() < deadline:
                time.sleep(0.1)
        for name, port in (("MOTO_PORT", self.moto_port), ("API_PORT", self.api_port)):
            if port_open(port):
                raise StackError(processes.busy_message(port, name))

    def _invoke(self, name: str, event: dict[str, Any]) -> Any:
        return self.functions[name].invoke(event)

    @property
    def _tf_state(self) -> Path:
        return self.state_dir / "terraform" / "terraform.tfstate"

    def _state_identity(self, state_file: Path | None = None) -> dict[str, Any]:
        """What ties a snapshot to its Terraform state: the endpoint, the state's lineage and serial."""
        try:
            state = json.loads((state_file or self._tf_state).read_text())
        except (OSError, ValueError):
            return {}
        return {"endpoint": self.endpoint, "lineage": state.get("lineage"), "serial": state.get("serial")}

    def _prepare_state(self) -> bool:
        """Keep the last snapshot and its Terraform state when they belong together; else drop both."""
        for name in ("stack.json", "moto.log", "terraform.log"):
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / name).unlink()
        try:
            meta = json.loads((self.state_dir / SNAPSHOT_META).read_text())
        except (OSError, ValueError):
            meta = None
        # The state the snapshot was saved with: a make run-apply since moved the live one on,
        # and the snapshot (empty buckets, as every run starts) still goes with the saved copy.
        paired = self.state_dir / SNAPSHOT_STATE
        identity = self._state_identity(paired if paired.is_file() else None)
        if not self.fresh and identity and meta == identity and (self.state_dir / SNAPSHOT).is_file():
            if paired.is_file():
                shutil.copyfile(paired, self._tf_state)
            return True
        self._forget_state()
        return False

    def _forget_state(self, keep_terraform: bool = False) -> None:
        for name in (SNAPSHOT, SNAPSHOT_META, SNAPSHOT_STATE):
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / name).unlink()
        if not keep_terraform:
            for path in self._tf_state.parent.glob("terraform.tfstate*"):
                path.unlink()

    def _write_snapshot_meta(self) -> None:
        shutil.copyfile(self._tf_state, self.state_dir / SNAPSHOT_STATE)
        (self.state_dir / SNAPSHOT_META).write_text(json.dumps(self._state_identity(), indent=2) + "\n")

    def _apply(self) -> dict[str, Any]:
        # Terraform applies as the administrator; an IAM user's key has no session token.
        admin = {**(self.emulator.admin or {}), "AWS_SESSION_TOKEN": ""} if self.emulator else {}
        variables = tf_variables(self.endpoint, self.api_url, self.tf_vars)
        outputs, self.apply_summary = terraform_apply(self.state_dir, variables, admin)
        return outputs

    def pids(self) -> dict[str, list[int]]:
        pids = {name: fn.pids() for name, fn in self.functions.items()}
        if self.emulator and self.emulator.process:
            pids["emulator"] = [self.emulator.process.pid]
        return pids

    def _write_description(self) -> None:
        """``stack.json``: what is running where (for `make demo`, tests and curious humans).

        Its outputs are Terraform's as the state holds them now: a ``make run-apply`` since
        the start may have changed them (it rewrites them too, ``local.live_apply``)."""
        from local.tf import state_outputs

        self.outputs = state_outputs(self._tf_state) or self.outputs
        description = {
            "api_url": self.api_url,
            "cdn_url": self.cdn_url,
            "endpoint": self.endpoint,
            "pid": os.getpid(),
            "pids": self.pids(),
            "routes": [r.key for r in self.api.routes] if self.api else [],
            "outputs": self.outputs,
            "credentials": self.emulator.admin if self.emulator else None,
            # What each function runs with now (local.reconfigure.fingerprint): make run-apply
            # waits until these match the emulator's after its apply.
            "functions": {name: fingerprint(found) for name, found in sorted(dict(self._configs).items())},
        }
        path = self.state_dir / "stack.json"
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(description, indent=2) + "\n")
        os.replace(tmp, path)  # a reader never sees half of it

    def banner(self, seconds: float) -> str:
        o = self.outputs
        admin = (self.emulator.admin if self.emulator else None) or {}
        routes = ", ".join(sorted(r.key for r in self.api.routes)) if self.api else ""
        poll = "; ".join(
            f"queue {m.queue_url.rsplit('/', 1)[-1]} -> {m.function_name} ({pollers_for(m)} pollers, "
            f"batch {m.batch_size}, "
            f"window {m.window_seconds} s{', partial batch responses' if m.report_failures else ''})"
            for m in self.mappings
        )
        lines = [
            f"Image pipeline running on loopback (ready in {seconds:.1f} s)",
            "",
            f"  API       {self.api_url}   {routes}",
            f"  CDN       {self.cdn_url or 'off (cdn_enabled = false): presigned S3 URLs'}"
            + (
                f"/<key>   (as {o.get('cdn_base_url')}/<key> on AWS; no edge cache, no TLS)"
                if self.cdn_url
                else ""
            ),
            f"  Emulator  {self.endpoint}   (moto, IAM enforced; AWS_ENDPOINT_URL for aws cli / boto3)",
            f"            administrator: AWS_ACCESS_KEY_ID={admin.get('AWS_ACCESS_KEY_ID', '?')} "
            f"AWS_SECRET_ACCESS_KEY={admin.get('AWS_SECRET_ACCESS_KEY', '?')}",
            f"  Buckets   uploads {o.get('uploads_bucket_name', '?')}",
            f"            resized {o.get('resized_bucket_name', '?')}",
            f"  Table     {o.get('table_name', '?')}",
            f"  Poller    {poll}",
            f"  Delivery  {self.unkind.describe() if self.unkind else _KIND_DELIVERY}",
            f"  Schedules {self.scheduler.describe() if self.scheduler else 'off'}",
            f"  Logs      handlers below; emulator {self.state_dir / 'moto.log'}; "
            f"terraform {self.state_dir / 'terraform.log'}",
            "",
            "Try it:",
            f"  export API={self.api_url}",
            "  curl -sS -X POST \"$API/images\" -H 'Content-Type: image/jpeg'"
            " --data-binary @examples/photo.jpg",
            '  curl -sS "$API/images/<id>"',
            "",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)

    def healthy(self) -> bool:
        return bool(self.emulator and self.emulator.process and self.emulator.process.poll() is None)

    def stop(self) -> None:
        """Stop everything that started, whatever stage start() reached."""
        if self.watcher:
            self.watcher.stop()
            self.watcher = None
        if self.scheduler:
            self.scheduler.stop()
            self.scheduler = None
        for poller in self.pollers:
            poller.request_stop()
        if self.front:
            self.front.stop()
            self.front = None
        if self.invocations:
            self.invocations.stop()
            self.invocations = None
        for fn in self.functions.values():
            fn.close()
        for poller in self.pollers:
            poller.stop(5)
        self.pollers = []
        if self._warmers:
            self._warmers.shutdown(wait=False)
            self._warmers = None
        if self.emulator:
            self.emulator.stop()
            self.emulator = None
            processes.remove_pid_file(self.state_dir)


def tf_variables(endpoint: str, api_url: str, tf_vars: dict[str, Any]) -> dict[str, Any]:
    """The variables the local stack applies the root module with: fixed ones for the emulator,
    then ``LOCAL_TF_VARS`` (``tf_vars``). ``make run`` and ``make run-apply`` both use these."""
    return {
        "aws_endpoint_url": endpoint,
        "aws_region": REGION,
        "environment": "local",
        "resize_event_source_enabled": False,
        "dynamodb_deletion_protection": False,
        # The emulator's distribution reports Deployed only after about 30 s; nothing waits for it.
        "cdn_wait_for_deployment": False,
        # The local API is open (loopback only) unless LOCAL_TF_VARS names an issuer.
        "api_auth": "jwt" if tf_vars.get("api_jwt_issuer") else "open",
        # The upload page's origin here is the front, not the API's endpoint (docs/browser.md).
        "api_cors_allowed_origins": [api_url],
        **tf_vars,
    }


def terraform_apply(
    state_dir: Path, variables: dict[str, Any], credentials: dict[str, str]
) -> tuple[dict[str, Any], str]:
    """``terraform apply`` of the root module with the local stack's state under ``state_dir``,
    progress logged as it goes; its outputs and its summary line (``1 added, 0 changed, ...``).
    ``$LOCAL_STACK_DIR/terraform.log`` gets its output. StackError when it fails."""
    from local.tf import Terraform, TerraformError

    tf_dir = state_dir / "terraform"
    try:
        state = tf_dir / "terraform.tfstate"
        tf = Terraform(REPO_ROOT, data_dir=tf_dir / "data", state=state, env=credentials)
    except TerraformError as exc:
        raise StackError(str(exc)) from None
    try:
        tf.init()
        outputs = tf.apply(variables, progress=log.info)
        summary = [line for line in tf.last_stdout.splitlines() if line.startswith("Apply complete!")]
        return outputs, summary[-1].removeprefix("Apply complete! ") if summary else ""
    except TerraformError as exc:
        raise StackError(f"{exc}\n(the emulator's log: {state_dir / 'moto.log'})") from None
    finally:
        (state_dir / "terraform.log").write_text(tf.last_stdout + tf.last_stderr)


def pollers_for(mapping: MappingSettings) -> int:
    """Concurrent batches for a mapping: its MaximumConcurrency, at most one per CPU."""
    return max(1, min(mapping.max_concurrency or 2, os.cpu_count() or 1))


def paginate(client: Any, method: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(method).paginate():
        items.extend(page.get(key, []))
    return items


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def log_to_stderr() -> None:
    """The local tools' log lines: time, level, logger and message on stderr; botocore's warnings only."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _configure_process() -> None:
    """Logging to stderr, Ctrl-C and SIGTERM as KeyboardInterrupt, and no way to reach real AWS."""
    log_to_stderr()
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    processes.stop_with_parent()  # a kill -9 of `make` stops the stack, as Ctrl-C would
    isolate_from_real_aws()


def _stack_from_env() -> Stack:
    """The stack ``make run``'s environment describes (StackError and friends when it is wrong)."""
    return Stack(
        moto_port=_env_port("MOTO_PORT", 4566),
        api_port=_env_port("API_PORT", 8080),
        state_dir=Path(os.environ.get("LOCAL_STACK_DIR") or REPO_ROOT / ".local-stack").resolve(),
        tf_vars=extra_tf_vars(),
        fresh=os.environ.get("LOCAL_STACK_FRESH", "").strip() not in ("", "0"),
        unkind=UnkindSettings.from_env(),
        schedule_seconds=local_rate(),
    )


def _serve(stack: Stack, started: float) -> int:
    """Start the stack, print its banner and run until Ctrl-C or the emulator ends; always stop it."""
    code = 0
    try:
        stack.start()
        print(stack.banner(time.monotonic() - started), flush=True)
        while stack.healthy():
            time.sleep(0.5)
        log.error("the emulator exited; see %s", stack.state_dir / "moto.log")
        code = 1
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr, flush=True)
    except (StackError, OSError) as exc:
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        code = 1
    except Exception:
        log.exception("make run failed")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    return code


def _report_stopped(stack: Stack) -> None:
    """Say whether every port closed: one still answering belongs to another program."""
    busy = [str(p) for p in (stack.moto_port, stack.api_port) if port_open(p)]
    if busy:
        print(f"stopped; port(s) {', '.join(busy)} still answer: another program holds them", file=sys.stderr)
    else:
        print("stopped: every process ended, ports closed", file=sys.stderr, flush=True)


def main() -> int:
    started = time.monotonic()
    _configure_process()
    if shutil.which(os.environ.get("TERRAFORM") or "terraform") is None:
        print("terraform is not on PATH: install Terraform >= 1.5 (or set TERRAFORM)", file=sys.stderr)
        return 2
    try:
        stack = _stack_from_env()
    except (StackError, UnkindSettingsError, ScheduleSettingsError) as exc:
        print(exc, file=sys.stderr)
        return 2
    code = _serve(stack, started)
    if stack.launched:
        _report_stopped(stack)
    return code


if __name__ == "__main__":
    sys.exit(main())
