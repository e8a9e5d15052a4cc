"""The local runtime's parts, against stand-in handlers (tests/fixtures/fake_lambda).

Worker processes run as Lambda would (own environment, timeout, restart after a
crash); the HTTP front speaks API Gateway's payload 2.0 both ways; the poller
honours partial batch responses and lets the queue's redrive reach the DLQ.
The whole stack, with the real handlers and Terraform, is in test_local_stack.py.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import boto3
import pytest
import requests

from local.emulator import port_open
from local.front import MAX_BODY_BYTES, Api, Cors, Front, Route, Throttle
from local.functions import FunctionConfig, LocalFunction
from local.poller import MappingSettings, Poller, failed_ids

pytestmark = pytest.mark.slow

FAKE_ROOT = Path(__file__).parent / "fixtures" / "fake_lambda"
ENDPOINT = "http://127.0.0.1:9"  # nothing listens: the fakes never call AWS


def make_function(
    handler: str, *, timeout: int = 3, env: dict | None = None, workers: int = 2
) -> LocalFunction:
    name = f"fake-{handler}"
    config = FunctionConfig(
        name=name,
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        handler=f"fake_handler.{handler}",
        timeout=timeout,
        memory_mb=256,
        environment=env or {},
    )
    return LocalFunction(config, ENDPOINT, max_workers=workers, task_root=FAKE_ROOT)


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


# -- worker processes ------------------------------------------------------


def test_function_runs_with_its_own_environment_and_lambda_context(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    monkeypatch.setenv("LEAKY", "from-the-shell")
    fn = make_function("echo", env={"TABLE_NAME": "images", "RENDITIONS": "[]"})
    try:
        first = fn.invoke({"hello": "world"})
        second = fn.invoke({})
    finally:
        fn.close()
    assert first.ok, first.error
    out = first.payload
    assert out["event"] == {"hello": "world"}
    env = out["env"]
    assert env["TABLE_NAME"] == "images" and env["RENDITIONS"] == "[]"
    assert env["AWS_ENDPOINT_URL"] == ENDPOINT
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fake-echo" and env["_HANDLER"] == "fake_handler.echo"
    assert "AWS_PROFILE" not in env and "LEAKY" not in env  # nothing from the developer's shell
    assert Path(out["cwd"]) == FAKE_ROOT.resolve() and Path(out["path0"]) == FAKE_ROOT.resolve()
    assert out["pid"] != os.getpid() and out["init_pid"] == out["pid"]
    assert (
        out["request_id"] == first.request_id and out["function_name"] == "fake-echo" and out["memory"] == 256
    )
    assert 0 < out["remaining_ms"] <= 3000
    # Warm: the same environment serves the next invocation, module state kept.
    assert second.payload["pid"] == out["pid"] and second.payload["invocations"] == 2


def test_function_timeout_kills_the_environment_and_the_next_call_gets_a_fresh_one():
    fn = make_function("sleep", timeout=1)
    try:
        late = fn.invoke({"seconds": 5})
        pids_after_timeout = fn.pids()
        on_time = fn.invoke({"seconds": 0.05})
    finally:
        fn.close()
    assert late.error["errorType"] == "Sandbox.Timedout"
    assert "timed out after 1.00 seconds" in late.error["errorMessage"]
    assert pids_after_timeout == []
    assert on_time.ok and on_time.payload == {"slept": 0.05, "pid": on_time.payload["pid"]}


def test_crashed_worker_is_reported_and_replaced():
    fn = make_function("crash")
    try:
        first = fn.invoke({})
        second = fn.invoke({})
    finally:
        fn.close()
    assert first.error["errorType"] == "Runtime.ExitError" and "exit status 3" in first.error["errorMessage"]
    assert second.error["errorType"] == "Runtime.ExitError"  # a new environment ran it again


def test_handler_exception_and_import_error_are_lambda_errors():
    failing, missing = make_function("fail"), make_function("no_such_handler")
    try:
        error = failing.invoke({}).error
        init = missing.invoke({}).error
    finally:
        failing.close()
        missing.close()
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "boom"
    assert any("fake_handler.py" in frame for frame in error["stackTrace"])
    assert init["errorType"] == "Runtime.ImportModuleError" and "no_such_handler" in init["errorMessage"]


def test_event_over_the_6_mb_payload_limit_is_refused_before_it_reaches_the_function():
    fn = make_function("echo")
    try:
        result = fn.invoke({"body": "x" * (6 * 1024 * 1024)})
        assert fn.pids() == []  # never started an environment for it
    finally:
        fn.close()
    assert result.error["errorType"] == "RequestEntityTooLargeException"


def test_close_leaves_no_worker_process():
    fn = make_function("echo", workers=3)
    fn.warm()
    pids = fn.pids()
    assert len(pids) == 1
    fn.close()
    assert all(process_gone(pid) for pid in pids)


# -- the HTTP front ----------------------------------------------------------


@pytest.fixture(scope="module")
def front():
    fns = {"fake-http": make_function("http", timeout=5, workers=3), "fake-fail": make_function("fail")}
    api = Api(
        api_id="abc123",
        name="fake",
        account_id="123456789012",
        routes=(
            Route("POST /items", "fake-http"),
            Route("GET /items/{id}", "fake-http"),
            Route("GET /items/special", "fake-http"),
            Route("ANY /files/{path+}", "fake-http"),
            Route("GET /binary", "fake-http"),
            Route("GET /plain", "fake-http"),
            Route("GET /slow", "fake-http", timeout_ms=500),
            Route("GET /broken", "fake-fail"),
        ),
        cors=Cors(allow_origins=("https://app.example",), allow_methods=("GET", "POST"), max_age=60),
    )
    server = Front(api, lambda name, event: fns[name].invoke(event), port=0).start()
    yield server
    server.stop()
    for fn in fns.values():
        fn.close()
    assert not port_open(server.port)


def event_of(response: requests.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def test_front_builds_a_payload_2_event_with_text_body(front):
    response = requests.post(
        f"{front.url}/items?tag=a&tag=b&empty=&x=%2F",
        data=json.dumps({"filename": "cat.jpg"}),
        headers={"Content-Type": "application/json", "X-Custom": "One", "Cookie": "s=1; t=2"},
        timeout=10,
    )
    event = event_of(response)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /items" and event["requestContext"]["routeKey"] == "POST /items"
    assert event["rawPath"] == "/items"
    assert event["rawQueryString"] == "tag=a&tag=b&empty=&x=%2F"
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": "", "x": "/"}
    assert event["headers"]["x-custom"] == "One" and event["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in event["headers"])
    assert event["cookies"] == ["s=1", "t=2"] and "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is False and json.loads(event["body"]) == {"filename": "cat.jpg"}
    http = event["requestContext"]["http"]
    assert http == {
        "method": "POST",
        "path": "/items",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": response.request.headers["User-Agent"],
    }
    context = event["requestContext"]
    assert (
        context["apiId"] == "abc123"
        and context["stage"] == "$default"
        and context["accountId"] == "123456789012"
    )
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert "pathParameters" not in event
    # The function's response: status, headers and one Set-Cookie per cookie.
    assert response.headers["x-echo"] == "yes"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2"]


def test_front_base64_encodes_binary_bodies(front):
    payload = bytes(range(256)) * 64 + b"\xff\xd8\xff"
    response = requests.post(
        f"{front.url}/items", data=payload, headers={"Content-Type": "image/jpeg"}, timeout=10
    )
    event = event_of(response)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_front_route_matching_and_path_parameters(front):
    exact = event_of(requests.get(f"{front.url}/items/special", timeout=10))
    assert exact["routeKey"] == "GET /items/special" and "pathParameters" not in exact
    param = event_of(requests.get(f"{front.url}/items/My%20Cat", timeout=10))
    assert param["routeKey"] == "GET /items/{id}" and param["pathParameters"] == {"id": "My Cat"}
    assert param["rawPath"] == "/items/My%20Cat"
    greedy = event_of(requests.delete(f"{front.url}/files/a/b/c.txt", timeout=10))
    assert greedy["routeKey"] == "ANY /files/{path+}" and greedy["pathParameters"] == {"path": "a/b/c.txt"}
    for method, path in (("GET", "/nope"), ("DELETE", "/items/1"), ("GET", "/items/1/2")):
        missing = requests.request(method, f"{front.url}{path}", timeout=10)
        assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}


def test_front_decodes_base64_responses_and_infers_plain_ones(front):
    binary = requests.get(f"{front.url}/binary", timeout=10)
    assert binary.status_code == 200 and binary.content == bytes(range(256))
    assert binary.headers["content-type"] == "application/octet-stream"
    plain = requests.get(f"{front.url}/plain", timeout=10)
    assert plain.status_code == 200 and plain.json() == {"hello": "world"}
    assert plain.headers["content-type"] == "application/json"


def test_front_maps_function_errors_and_slow_integrations(front):
    broken = requests.get(f"{front.url}/broken", timeout=10)
    assert broken.status_code == 500 and broken.json() == {"message": "Internal Server Error"}
    slow = requests.get(f"{front.url}/slow?s=2", timeout=10)
    assert slow.status_code == 503 and slow.json() == {"message": "Service Unavailable"}


def test_front_refuses_bodies_over_10_mb_like_api_gateway(front):
    at_limit = requests.post(
        f"{front.url}/items",
        data=b"a" * 100,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert at_limit.status_code == 201
    too_big = requests.post(
        f"{front.url}/items",
        data=b"a" * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert too_big.status_code == 413 and too_big.json() == {"message": "Request Entity Too Large"}
    # Under API Gateway's 10 MB but over Lambda's 6 MB event: 413 as well.
    over_lambda = requests.post(
        f"{front.url}/items",
        data=b"a" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert over_lambda.status_code == 413


def test_front_answers_cors_preflight_for_allowed_origins(front):
    allowed = requests.options(
        f"{front.url}/items",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    other = requests.options(
        f"{front.url}/items",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    simple = requests.get(f"{front.url}/plain", headers={"Origin": "https://app.example"}, timeout=10)
    assert simple.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_front_throttles_with_the_stage_burst_and_rate():
    fn = make_function("http")
    api = Api("t1", "throttled", "123456789012", (Route("GET /plain", fn.name),), throttle=Throttle(0.01, 2))
    server = Front(api, lambda name, event: fn.invoke(event), port=0).start()
    try:
        codes = [requests.get(f"{server.url}/plain", timeout=10).status_code for _ in range(3)]
        limited = requests.get(f"{server.url}/plain", timeout=10)
    finally:
        server.stop()
        fn.close()
    assert codes == [200, 200, 429]
    assert limited.json() == {"message": "Too Many Requests"}


# -- the poller ----------------------------------------------------------------


def test_partial_batch_response_rules():
    from local.functions import InvokeResult

    ids = ["m1", "m2", "m3"]
    ok = InvokeResult("r", payload={"batchItemFailures": [{"itemIdentifier": "m2"}]})
    assert failed_ids(ok, ids, report_failures=True) == {"m2"}
    assert failed_ids(ok, ids, report_failures=False) == set()  # not enabled: success deletes all
    assert failed_ids(InvokeResult("r", payload=None), ids, True) == set()
    assert failed_ids(InvokeResult("r", payload={"batchItemFailures": []}), ids, True) == set()
    unknown = InvokeResult("r", payload={"batchItemFailures": [{"itemIdentifier": "zz"}]})
    assert failed_ids(unknown, ids, True) == set(ids)
    empty_id = InvokeResult("r", payload={"batchItemFailures": [{"itemIdentifier": ""}]})
    assert failed_ids(empty_id, ids, True) == set(ids)
    error = InvokeResult("r", error={"errorType": "ValueError", "errorMessage": "boom"})
    assert failed_ids(error, ids, True) == set(ids)


def test_poller_deletes_successes_and_redrive_moves_failures_to_the_dlq(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="work",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for body in ("ok-1", "fail", "ok-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    seen: list[list[str]] = []
    fn = make_function("batch")

    def invoke(name, event):
        assert name == "fake-batch"
        assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"] == arn for r in event["Records"])
        seen.append([r["body"] for r in event["Records"]])
        return fn.invoke(event)

    settings = MappingSettings("uuid", "fake-batch", arn, queue, batch_size=5, report_failures=True)
    poller = Poller(sqs, settings, invoke).start()
    try:
        deadline = time.monotonic() + 30
        moved = []
        while time.monotonic() < deadline and not moved:
            moved = sqs.receive_message(
                QueueUrl=dlq, MessageSystemAttributeNames=["All"], WaitTimeSeconds=1
            ).get("Messages", [])
    finally:
        poller.stop()
        fn.close()
    assert [m["Body"] for m in moved] == ["fail"]
    assert moved[0]["Attributes"]["ApproximateReceiveCount"] == "3"  # 2 deliveries + this receive
    assert sorted(seen[0]) == ["fail", "ok-1", "ok-2"]  # one batch of all three
    assert [b for batch in seen[1:] for b in batch] == ["fail"]  # only the failure came back
    left = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert left == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_poller_batching_window_gathers_up_to_batch_size(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="window")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for i in range(25):
        sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
    sizes: list[int] = []

    def invoke(name, event):
        from local.functions import InvokeResult

        sizes.append(len(event["Records"]))
        return InvokeResult("r", payload=None)

    settings = MappingSettings("uuid", "f", arn, queue, batch_size=20, window_seconds=1)
    poller = Poller(sqs, settings, invoke).start()
    try:
        deadline = time.monotonic() + 20
        while sum(sizes) < 25 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        poller.stop()
    assert sizes == [20, 5]  # batches beyond SQS's 10 per receive, never above BatchSize
