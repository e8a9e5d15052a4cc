"""Step Functions' Task calls made with the state machine's role, as Step Functions makes them.

moto 5.2.5's ASL interpreter makes every inner AWS call of a running execution
(a Task's ``lambda:invoke``, ``aws-sdk:*`` and optimised integrations, a
Distributed Map's ``ItemReader`` and ``ResultWriter``) through
``boto_client_for``, signed with the fixed keys ``ak`` / ``sk``. An emulator
that enforces IAM (the local stack's, ``local.moto_iam``) knows no such key and
refuses every one of those calls. Step Functions makes them with the state
machine's execution role (or the Task's ``Credentials.RoleArn``), which it
assumes as ``states.amazonaws.com`` (Step Functions developer guide, "How
Step Functions works with IAM"): the role's trust policy must allow that, and
its policies decide what each Task may call.

``patch()`` replaces ``boto_client_for`` in every interpreter module that
calls it: the client gets the temporary credentials of the role the Task
names (its ``state_credentials``), assumed here inside the emulator and kept
until five minutes before they expire. A role that cannot be assumed fails
the Task (``PermissionError``, named in the execution's history). An emulator
that does not enforce IAM (yet) keeps moto's own keys.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

STATES_SERVICE = "states.amazonaws.com"
DURATION_S = 3600
MARGIN_S = 300  # assume again when less validity is left

# The interpreter's modules that call boto_client_for (moto 5.2.5).
_CALLERS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk",
    "moto.stepfunctions.parser.asl.utils.boto_client",
)

_cache: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def role_keys(role_arn: str) -> dict[str, Any]:
    """The role's temporary credentials, assumed as Step Functions (cached until near expiry)."""
    from local.moto_iam import assume_role_as_service

    with _lock:
        found = _cache.get(role_arn)
        if found is None or found["Expiration"] - time.time() < MARGIN_S:
            found = assume_role_as_service(role_arn, "StepFunctions", DURATION_S, STATES_SERVICE)
            _cache[role_arn] = found
        return found


def enforcing() -> bool:
    """Whether the emulator authorises requests yet (moto's own switch, as ``local.moto_iam`` reads it)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def patch() -> None:
    """Make the interpreter's inner calls with the Task's role (see the module's docstring)."""
    import boto3
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = getattr(state_credentials, "role_arn", None)
        if not role_arn or not enforcing():  # an open emulator takes moto's own keys
            return original(region=region, service=service, state_credentials=state_credentials)
        keys = role_keys(role_arn)
        where = {} if botocore_stubber.enabled else {"endpoint_url": f"http://localhost:{moto_server_port()}"}
        return boto3.client(
            service,
            region_name=region,
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
            config=Config(  # as moto's: one attempt, the interpreter's own timeouts
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
            **where,
        )

    for name in _CALLERS:
        module = importlib.import_module(name)
        if getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for
