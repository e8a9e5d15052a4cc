"""The local front's HTTP framing and payload limits, against raw sockets.

API Gateway buffers a whole request before it invokes anything: a body cut
short by the client never reaches the function, a malformed ``Content-Length``
is refused at once, and idle or half-sent connections do not hold resources
for ever. Its quotas: a 10 MB request payload for HTTP APIs, and behind it
Lambda's 6 MB synchronous invocation request (6,291,456 bytes), which the
event exceeds long before the body does because a binary body is
base64-encoded into it.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest
import requests

from local.front import MAX_BODY_BYTES, Api, Front, Route
from local.functions import InvokeResult

pytestmark = pytest.mark.slow

LAMBDA_REQUEST_LIMIT = 6 * 1024 * 1024  # Lambda quotas: 6 MB synchronous invocation request


class Recorder:
    """An invoker that records each event and answers 201 with the body's size."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, event: dict) -> InvokeResult:
        with self.lock:
            self.events.append(event)
        body = event.get("body") or ""
        size = len(base64.b64decode(body)) if event.get("isBase64Encoded") else len(body.encode())
        return InvokeResult("r", payload={"statusCode": 201, "body": json.dumps({"bytes": size})})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def front(recorder):
    api = Api("abc123", "fake", "123456789012", (Route("POST /items", "fake"), Route("GET /items", "fake")))
    server = Front(api, recorder, port=0, idle_timeout=2).start()
    yield server
    server.stop()


def raw_request(port: int, head: bytes, timeout: float = 5.0) -> bytes:
    """Send ``head`` as is and read until the server closes or answers completely."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_content_length_that_is_not_a_number_is_a_400(front, recorder):
    response = raw_request(front.port, b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert status_and_body(response) == (400, {"message": "Bad Request"})
    assert recorder.events == []


def test_a_negative_content_length_is_a_400_at_once(front, recorder):
    started = time.monotonic()
    response = raw_request(front.port, b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 3)
    assert status_and_body(response) == (400, {"message": "Bad Request"})
    assert time.monotonic() - started < 2  # not when the client gives up
    assert recorder.events == []


def test_a_client_that_hangs_up_mid_body_never_causes_an_invocation(front, recorder):
    """API Gateway never invokes on a truncated body (today: 120 of 300 became 3-byte uploads)."""
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", front.port), timeout=5)
        sock.sendall(
            b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 1000\r\n\r\n\xff\xd8\xff"
        )
        sock.shutdown(socket.SHUT_WR)
        sock.close()
    complete = requests.post(f"{front.url}/items", data=b"\xff\xd8\xff", timeout=10)
    assert complete.status_code == 201 and complete.json() == {"bytes": 3}
    time.sleep(0.5)
    assert len(recorder.events) == 1  # only the complete request


def closed_by_peer(sock: socket.socket) -> bool:
    """The server closed the connection: an end of stream, or a reset when it closed with bytes of
    ours still unread (Linux answers a close() that discards received data with RST, not FIN; seen
    when a loaded machine closes before the server read the partial body). A timeout raises."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_half_sent_requests_hold_no_thread_and_are_closed_after_the_idle_timeout(front, recorder):
    threads_before = threading.active_count()
    sockets = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", front.port), timeout=10)
            sock.sendall(b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
            sockets.append(sock)
        time.sleep(0.5)
        assert threading.active_count() - threads_before < 20  # bounded, not one per connection
        started = time.monotonic()
        served = requests.get(f"{front.url}/items", timeout=10)
        assert served.status_code == 201 and time.monotonic() - started < 2  # still answering others
        # idle_timeout=2: every half-sent connection is closed by the front, none invoked.
        deadline = time.monotonic() + 10
        for sock in sockets:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            assert closed_by_peer(sock)
    finally:
        for sock in sockets:
            sock.close()
    assert len(recorder.events) == 1


def test_a_body_over_api_gateways_10_mb_is_refused_as_soon_as_it_is_announced(front, recorder):
    head = f"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
    started = time.monotonic()
    response = raw_request(front.port, head, 5)  # no body sent at all
    assert status_and_body(response) == (413, {"message": "Request Entity Too Large"})
    assert time.monotonic() - started < 2
    assert recorder.events == []


def test_exactly_10_mb_passes_api_gateway_and_is_refused_by_lambdas_6_mb_limit(front, recorder):
    at_quota = requests.post(
        f"{front.url}/items", data=b"a" * MAX_BODY_BYTES, headers={"Content-Type": "text/plain"}, timeout=60
    )
    assert at_quota.status_code == 413 and at_quota.json() == {"message": "Request Too Long"}
    over = requests.post(
        f"{front.url}/items",
        data=b"a" * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "text/plain"},
        timeout=60,
    )
    assert over.status_code == 413 and over.json() == {"message": "Request Entity Too Large"}
    assert recorder.events == []


def test_a_binary_upload_reaches_the_function_only_while_its_base64_event_fits_6_mb(front, recorder):
    headers = {"Content-Type": "image/jpeg", "User-Agent": "t"}
    probe = b"\xff" * 1_000_000  # same number of Content-Length digits as the sizes below
    assert requests.post(f"{front.url}/items", data=probe, headers=headers, timeout=30).status_code == 201
    event = recorder.events.pop()
    overhead = len(json.dumps(event)) - len(event["body"])
    largest = (LAMBDA_REQUEST_LIMIT - overhead) // 4 * 3  # base64: 4 characters per 3 bytes
    assert 4_500_000 < largest < 4_720_000  # "a direct upload over about 4.7 MB never reaches the function"
    fits = requests.post(f"{front.url}/items", data=b"\xff" * largest, headers=headers, timeout=30)
    assert fits.status_code == 201 and fits.json() == {"bytes": largest}
    assert len(json.dumps(recorder.events.pop())) <= LAMBDA_REQUEST_LIMIT
    too_big = requests.post(f"{front.url}/items", data=b"\xff" * (largest + 3), headers=headers, timeout=30)
    assert too_big.status_code == 413 and too_big.json() == {"message": "Request Too Long"}
    assert recorder.events == []  # never invoked


def test_a_burst_of_concurrent_uploads_is_queued_not_reset(front, recorder):
    """make bench sends 20 uploads at once; the listen backlog and the handling threads absorb 30."""
    data = b"\xff\xd8\xff" + bytes(200_000)
    results: list[int] = []

    def upload() -> None:
        response = requests.post(
            f"{front.url}/items", data=data, headers={"Content-Type": "image/jpeg"}, timeout=60
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=upload) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [201] * 30 and len(recorder.events) == 30


def test_stopping_after_the_serve_loop_has_closed_its_sockets_is_clean(recorder):
    """stop() wakes the serve loop through waitress' trigger; when the loop has already seen the
    stop and closed its sockets (the trigger's included), stop() must not write to that closed
    descriptor (EBADF once in CI; a reused number would be another file's)."""
    api = Api("abc123", "fake", "123456789012", (Route("GET /x", "fake"),))
    server = Front(api, recorder, port=0).start()
    port = server.port
    server._stopping.set()  # as stop() does first; the loop exits within its 0.5 s wait
    server._thread.join(5)
    assert not server._thread.is_alive()
    server.stop()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # and the port is closed
