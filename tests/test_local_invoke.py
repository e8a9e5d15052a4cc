"""Lambda's Invoke in the local stack runs our handlers, and answers as Lambda's Invoke API does.

moto cannot run Lambda code (its Invoke echoes the payload); the stack hands the
emulator's Invoke to the function's own local runtime (local/moto_lambda.py,
local/invocations.py). AWS facts, from the Invoke API reference and the Lambda
developer guide: a synchronous invoke answers 200 with the function's result;
a function error is still 200, with ``X-Amz-Function-Error`` and an
``errorType`` / ``errorMessage`` payload; an unknown function is 404
``ResourceNotFoundException``; a body that is not JSON is 400
``InvalidRequestContentException``; ``DryRun`` answers 204 and ``Event`` 202;
the caller needs ``lambda:InvokeFunction`` on the function's ARN (403
``AccessDeniedException`` otherwise). Step Functions' ``lambda:invoke`` Task
calls this same Invoke.
"""

from __future__ import annotations

import functools
import json
import time
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from local.emulator import client as emulator_client
from local.emulator import free_port, lambda_credentials, running
from local.functions import FunctionConfig, LocalFunction
from local.invocations import InvokeServer
from tests.conftest import require_terraform
from tests.test_local_stack import REPO_ROOT, RunningStack, iam_calls, role_of, start_stack

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

require_terraform("the local Invoke tests")

GET_IMAGE = json.loads((REPO_ROOT / "tests/events/http_get_image.json").read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory, lambda_zip):
    # LOCAL_SCHEDULE_SECONDS: the stack fires schedules every second (local/schedules.py).
    directory = tmp_path_factory.mktemp("local-invoke")
    running = start_stack(directory, free_port(), free_port(), LOCAL_SCHEDULE_SECONDS="1")
    try:
        yield running
    finally:
        running.stop()


def user_client(stack: RunningStack, name: str, statements: list[dict]) -> object:
    """A Lambda client acting as a new IAM user whose only policy holds ``statements``."""
    iam = stack.client("iam")
    iam.create_user(UserName=name)
    document = {"Version": "2012-10-17", "Statement": statements}
    iam.put_user_policy(UserName=name, PolicyName="invoke", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    keys = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    return emulator_client(stack.endpoint, "lambda", keys)


def function_arn(stack: RunningStack, name: str) -> str:
    return stack.client("lambda").get_function_configuration(FunctionName=name)["FunctionArn"]


def get_image_event(image_id: str) -> dict:
    event = json.loads(json.dumps(GET_IMAGE))
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/images/{image_id}"
    event["pathParameters"] = {"id": image_id}
    return event


def test_invoke_runs_the_upload_handler_with_its_role_and_answers_200_with_its_result(stack):
    # Invoke API: RequestResponse answers 200, the function's response as Payload, and the
    # version that ran in X-Amz-Executed-Version.
    function = stack.outputs["upload_function_name"]
    image_id = uuid.uuid4().hex[:22]
    answer = stack.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(get_image_event(image_id))
    )
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    result = json.loads(answer["Payload"].read())
    assert result["statusCode"] == 404, result  # the handler's own answer for an unknown image
    assert json.loads(result["body"])["error"]["code"] == "not_found"
    # It read the table as the function's execution role, as on Lambda.
    role = stack.client("lambda").get_function_configuration(FunctionName=function)["Role"].rsplit("/", 1)[1]
    reads = [
        c for c in iam_calls(stack) if c["action"] == "dynamodb:GetItem" and role_of(c["principal"]) == role
    ]
    assert reads and all(c["allowed"] for c in reads)


def test_a_handler_exception_is_200_with_function_error_and_lambdas_error_payload(stack):
    # Invoke API: "If present, indicates that an error occurred during function execution";
    # the payload holds errorType and errorMessage. The resize handler refuses a non-SQS event.
    answer = stack.client("lambda").invoke(FunctionName=stack.outputs["resize_function_name"], Payload=b"{}")
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] and error["errorMessage"]
    assert isinstance(error["stackTrace"], list) and error["requestId"]


def test_an_unknown_function_is_resource_not_found_and_bad_json_is_invalid_request_content(stack):
    lam = stack.client("lambda")
    with pytest.raises(ClientError) as missing:
        lam.invoke(FunctionName="imgpipe-local-nothing", Payload=b"{}")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "function:imgpipe-local-nothing" in missing.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as bad:
        lam.invoke(FunctionName=stack.outputs["upload_function_name"], Payload=b"{not json")
    assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert bad.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_dry_run_answers_204_and_event_202_without_waiting(stack):
    lam = stack.client("lambda")
    function = stack.outputs["upload_function_name"]
    assert lam.invoke(FunctionName=function, InvocationType="DryRun")["StatusCode"] == 204
    event = json.dumps(get_image_event(uuid.uuid4().hex[:22]))
    assert lam.invoke(FunctionName=function, InvocationType="Event", Payload=event)["StatusCode"] == 202


def test_a_caller_without_lambda_invoke_function_on_the_arn_is_denied(stack):
    # IAM: Invoke is authorised as lambda:InvokeFunction on the function's ARN.
    upload, resize = stack.outputs["upload_function_name"], stack.outputs["resize_function_name"]
    grant = {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": function_arn(stack, upload)}
    lam = user_client(stack, f"invoker-{uuid.uuid4().hex[:8]}", [grant])
    event = json.dumps(get_image_event(uuid.uuid4().hex[:22]))
    assert json.loads(lam.invoke(FunctionName=upload, Payload=event)["Payload"].read())["statusCode"] == 404
    with pytest.raises(ClientError) as denied:
        lam.invoke(FunctionName=resize, Payload=b"{}")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "lambda:InvokeFunction" in denied.value.response["Error"]["Message"]
    # The resize function's own role grants no Invoke at all.
    role = stack.client("lambda").get_function_configuration(FunctionName=resize)["Role"]
    keys = lambda_credentials(stack.endpoint, role, resize)
    as_resize = emulator_client(stack.endpoint, "lambda", keys)
    with pytest.raises(ClientError) as also_denied:
        as_resize.invoke(FunctionName=upload, Payload=event)
    assert also_denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_function_created_after_the_start_is_run_on_its_first_invoke(stack):
    # No code names the functions: a new one (here a copy of the upload function's
    # configuration, as the maintenance function would be) runs with its own settings.
    lam = stack.client("lambda")
    config = lam.get_function_configuration(FunctionName=stack.outputs["upload_function_name"])
    name = f"imgpipe-local-extra-{uuid.uuid4().hex[:6]}"
    lam.create_function(
        FunctionName=name,
        Runtime=config["Runtime"],
        Role=config["Role"],
        Handler=config["Handler"],
        Code={"ZipFile": (REPO_ROOT / "build/lambda.zip").read_bytes()},
        Timeout=config["Timeout"],
        MemorySize=config["MemorySize"],
        Environment=config["Environment"],
    )
    started = time.monotonic()
    answer = lam.invoke(FunctionName=name, Payload=json.dumps(get_image_event(uuid.uuid4().hex[:22])))
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer, answer["Payload"].read()
    assert json.loads(answer["Payload"].read())["statusCode"] == 404
    assert time.monotonic() - started < 60
    # Its own REPORT line (printed just after the answer): its own runtime.
    deadline = time.monotonic() + 15
    while f"Function: {name}" not in stack.log.read_text():
        assert time.monotonic() < deadline, f"no REPORT line for {name}"
        time.sleep(0.2)


def test_the_running_stack_fires_a_schedule_with_its_role_at_the_local_rate(stack):
    # EventBridge Scheduler: an ENABLED schedule's templated SQS target gets the Input as the
    # message body, sent with the schedule's role (which trusts scheduler.amazonaws.com).
    # The banner names what Terraform made (the reconcile schedule) and the local rate in force.
    banner = stack.log.read_text()
    assert "-reconcile rate(15 minutes) (enabled); fired every 1 s (LOCAL_SCHEDULE_SECONDS)" in banner
    sqs, iam = stack.client("sqs"), stack.client("iam")
    suffix = uuid.uuid4().hex[:8]
    url = sqs.create_queue(QueueName=f"scheduled-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=f"scheduled-{suffix}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    grant = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}
    policy = json.dumps({"Version": "2012-10-17", "Statement": [grant]})
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="send", PolicyDocument=policy)
    stack.client("scheduler").create_schedule(
        Name=f"every-15-minutes-{suffix}",
        ScheduleExpression="rate(15 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": queue_arn, "RoleArn": role["Arn"], "Input": '{"action": "reconcile"}'},
    )
    deadline, bodies = time.monotonic() + 30, []
    while not bodies and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        bodies = [json.loads(m["Body"]) for m in messages]
    assert bodies == [{"action": "reconcile"}]
    sent = [
        c
        for c in iam_calls(stack)
        if c["action"] == "sqs:SendMessage" and role_of(c["principal"]) == role["RoleName"]
    ]
    assert sent and all(c["allowed"] for c in sent)


FAKE_ROOT = REPO_ROOT / "tests/fixtures/fake_lambda"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def test_a_step_functions_lambda_invoke_task_runs_the_handler_and_catches_its_error():
    # Step Functions' lambda:invoke integration calls Invoke and returns {"Payload": ...}; a
    # function error fails the Task with the function's errorType as Error (Step Functions
    # developer guide, "Invoke a Lambda function"). moto's interpreter calls the emulator's
    # Invoke, which runs our runtime's function (stand-in handlers here, IAM not enforced).
    with running() as emulator:
        execute = json.dumps({"stepfunctions": {"execute_state_machine": True}})
        requests.post(f"{emulator.endpoint}/moto-api/config", data=execute, timeout=10).raise_for_status()
        iam, lam, sfn = emulator.client("iam"), emulator.client("lambda"), emulator.client("stepfunctions")
        role = iam.create_role(RoleName="fake", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"][
            "Arn"
        ]
        code = {"ZipFile": (REPO_ROOT / "build/lambda.zip").read_bytes()}
        for handler in ("echo", "fail"):
            lam.create_function(
                FunctionName=f"fake-{handler}",
                Runtime="python3.12",
                Role=role,
                Handler=f"fake_handler.{handler}",
                Code=code,
            )
        started: list[LocalFunction] = []

        def find(name: str, arn: str) -> LocalFunction:
            config = FunctionConfig.from_api(lam.get_function_configuration(FunctionName=arn))
            credentials = functools.partial(emulator.lambda_credentials, config.role, name)
            started.append(
                LocalFunction(config, emulator.endpoint, task_root=FAKE_ROOT, credentials=credentials)
            )
            return started[-1]

        server = InvokeServer(emulator.endpoint, find).start()
        try:
            definition = {
                "StartAt": "Echo",
                "States": {
                    "Echo": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "fake-echo", "Payload.$": "$"},
                        "ResultSelector": {"event.$": "$.Payload.event", "name.$": "$.Payload.function_name"},
                        "ResultPath": "$.echo",
                        "Next": "Fail",
                    },
                    "Fail": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "fake-fail", "Payload": {}},
                        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done"}],
                        "End": True,
                    },
                    "Done": {"Type": "Pass", "End": True},
                },
            }
            machine = sfn.create_state_machine(name="invoke", definition=json.dumps(definition), roleArn=role)
            execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input='{"n": 7}')
            deadline = time.monotonic() + 60
            while (found := sfn.describe_execution(executionArn=execution["executionArn"]))[
                "status"
            ] == "RUNNING":
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            server.stop()
            for fn in started:
                fn.close()
    assert found["status"] == "SUCCEEDED", found
    output = json.loads(found["output"])
    assert output["echo"] == {"event": {"n": 7}, "name": "fake-echo"}  # our handler ran, with its name
    assert output["error"]["Error"] == "ValueError"
    assert json.loads(output["error"]["Cause"])["errorMessage"] == "boom"


def test_with_iam_enforced_a_task_invokes_as_the_state_machines_role_and_only_what_it_grants():
    # Step Functions calls a Task's service with the state machine's execution role, assumed
    # as states.amazonaws.com; lambda:InvokeFunction on a function ARN allows that function only.
    with running(strict=True) as emulator:
        iam, lam, sfn = emulator.client("iam"), emulator.client("lambda"), emulator.client("stepfunctions")
        requests.post(
            f"{emulator.endpoint}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}),
            timeout=10,
        ).raise_for_status()
        lambda_role = iam.create_role(RoleName="fake", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))[
            "Role"
        ]
        code = {"ZipFile": (REPO_ROOT / "build/lambda.zip").read_bytes()}
        arns = {
            handler: lam.create_function(
                FunctionName=f"fake-{handler}",
                Runtime="python3.12",
                Role=lambda_role["Arn"],
                Handler=f"fake_handler.{handler}",
                Code=code,
            )["FunctionArn"]
            for handler in ("echo", "fail")
        }
        states_trust = json.loads(
            json.dumps(LAMBDA_TRUST).replace("lambda.amazonaws.com", "states.amazonaws.com")
        )
        machine_role = iam.create_role(RoleName="machine", AssumeRolePolicyDocument=json.dumps(states_trust))[
            "Role"
        ]
        grant = {
            "Sid": "Echo",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": arns["echo"],
        }
        iam.put_role_policy(
            RoleName="machine",
            PolicyName="invoke",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [grant]}),
        )
        started: list[LocalFunction] = []

        def find(name: str, arn: str) -> LocalFunction:
            config = FunctionConfig.from_api(lam.get_function_configuration(FunctionName=arn))
            credentials = functools.partial(emulator.lambda_credentials, config.role, name)
            started.append(
                LocalFunction(config, emulator.endpoint, task_root=FAKE_ROOT, credentials=credentials)
            )
            return started[-1]

        def task(function: str, then: dict) -> dict:
            parameters = {"FunctionName": arns[function], "Payload.$": "$"}
            return {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": parameters,
                **then,
            }

        definition = {
            "StartAt": "Echo",
            "States": {
                "Echo": task(
                    "echo", {"ResultSelector": {"name.$": "$.Payload.function_name"}, "Next": "Fail"}
                ),
                "Fail": task("fail", {"End": True}),
            },
        }
        server = InvokeServer(emulator.endpoint, find).start()
        try:
            machine = sfn.create_state_machine(
                name="as-role", definition=json.dumps(definition), roleArn=machine_role["Arn"]
            )
            execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")
            deadline = time.monotonic() + 60
            while (found := sfn.describe_execution(executionArn=execution["executionArn"]))[
                "status"
            ] == "RUNNING":
                assert time.monotonic() < deadline
                time.sleep(0.2)
            history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
            calls = emulator.iam_calls()
        finally:
            server.stop()
            for fn in started:
                fn.close()
    assert found["status"] == "FAILED", found
    succeeded = [e for e in history if e["type"] == "TaskSucceeded"]
    assert len(succeeded) == 1 and "fake-echo" in succeeded[0]["taskSucceededEventDetails"]["output"]
    assert "AccessDenied" in (found.get("error", "") + found.get("cause", ""))
    invokes = [c for c in calls if c["action"] == "lambda:InvokeFunction"]
    assert {(c["resource"], c["allowed"]) for c in invokes} == {(arns["echo"], True), (arns["fail"], False)}
    assert all(":assumed-role/machine/" in c["principal"] for c in invokes)
