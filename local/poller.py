"""The queue poller: plays the SQS event source mapping's role, with its settings.

In the emulator an *enabled* mapping consumes messages itself and tries to
invoke the function, which it cannot run; so Terraform creates the mapping
disabled locally (``resize_event_source_enabled = false``) and this poller
does Lambda's part, reading the mapping's own settings back from the emulator:

- batches of up to ``BatchSize`` messages, gathered for at most
  ``MaximumBatchingWindowInSeconds`` (and under Lambda's 6 MB payload);
- with ``ReportBatchItemFailures`` in ``FunctionResponseTypes``, a response
  ``{"batchItemFailures": [{"itemIdentifier": messageId}]}`` keeps those
  messages and deletes the rest; a malformed response (unknown or empty id)
  fails the whole batch, as Lambda does; without it, success deletes all;
- a function error or timeout keeps every message of the batch;
- kept messages are not touched: they reappear when the queue's visibility
  timeout ends, and the queue's redrive policy moves them to the dead-letter
  queue after ``maxReceiveCount`` receives (the emulator does that on receive,
  as SQS does).

Lambda runs several batches of one mapping at once (up to the mapping's
``ScalingConfig.MaximumConcurrency``); the stack starts that many pollers,
capped at the machine's CPU count.

With ``unkind`` (``local.unkind``, ``make run UNKIND=1``) the pollers of a
mapping deliver as a standard queue may: duplicated, reordered, delayed, and
redelivered after the visibility timeout; never losing a message.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.functions import MAX_PAYLOAD_BYTES, InvokeResult
from local.unkind import UnkindDelivery

log = logging.getLogger(__name__)

LONG_POLL_SECONDS = 1  # short enough that stop() is prompt


@dataclass(frozen=True)
class MappingSettings:
    """The parts of an SQS event source mapping the poller honours."""

    uuid: str
    function_name: str
    queue_arn: str
    queue_url: str
    batch_size: int = 10
    window_seconds: int = 0
    report_failures: bool = False
    region: str = "us-east-1"
    max_concurrency: int | None = None

    @classmethod
    def from_api(cls, mapping: dict[str, Any], sqs: Any) -> MappingSettings:
        arn = mapping["EventSourceArn"]
        _, _, _, region, account, name = arn.split(":", 5)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return cls(
            uuid=mapping["UUID"],
            function_name=mapping["FunctionArn"].split(":function:", 1)[1].split(":", 1)[0],
            queue_arn=arn,
            queue_url=url,
            batch_size=int(mapping.get("BatchSize") or 10),
            window_seconds=int(mapping.get("MaximumBatchingWindowInSeconds") or 0),
            report_failures="ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or ()),
            region=region,
            max_concurrency=(mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"),
        )


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of a Lambda SQS event, from a ReceiveMessage result."""
    attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attr: dict[str, Any] = {"dataType": value["DataType"], "stringListValues": [], "binaryListValues": []}
        if "StringValue" in value:
            attr["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attr["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        attributes[name] = attr
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_ids(result: InvokeResult, batch_ids: list[str], report_failures: bool) -> set[str]:
    """Message ids to keep on the queue after an invocation."""
    if not result.ok:
        return set(batch_ids)
    if not report_failures:
        return set()
    payload = result.payload
    if payload is None or payload == "" or payload == {}:
        return set()
    if not isinstance(payload, dict):
        log.warning("partial batch response is not an object: the whole batch failed")
        return set(batch_ids)
    items = payload.get("batchItemFailures")
    if items is None or items == []:
        return set()
    if not isinstance(items, list):
        log.warning("batchItemFailures is not a list: the whole batch failed")
        return set(batch_ids)
    keep = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in batch_ids:
            log.warning("batchItemFailures names %r, not in the batch: the whole batch failed", ident)
            return set(batch_ids)
        keep.add(ident)
    return keep


class Poller:
    """Delivers one mapping's queue to its function from a background thread."""

    def __init__(
        self,
        sqs: Any,
        settings: MappingSettings,
        invoke: Callable[[str, dict[str, Any]], InvokeResult],
        name: str = "",
        unkind: UnkindDelivery | None = None,
    ) -> None:
        self.sqs = sqs
        self.settings = settings
        self.invoke = invoke
        self.unkind = unkind
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=name or f"poller-{settings.function_name}", daemon=True
        )
        self.batches = 0

    def start(self) -> Poller:
        if self.unkind:
            self.unkind.attach()
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Stop receiving, without waiting."""
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop receiving; an invocation under way finishes first (bounded by its timeout)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._round()
                except Exception:
                    if self._stop.is_set():
                        return
                    log.exception("poller for %s failed; retrying", self.settings.function_name)
                    self._stop.wait(1)
        finally:
            if self.unkind:
                self.unkind.detach()

    def _round(self) -> None:
        size = self.settings.batch_size
        if not self.unkind:
            batch, leave = self._collect(size), set()
        else:
            # Held messages due now go first; receive only what fits beside them, so
            # none waits past its visibility timeout behind fresh ones.
            room, holding = self.unkind.room(size), self.unkind.holding()
            received = self._collect(room, wait=0 if holding else LONG_POLL_SECONDS) if room else []
            batch, leave = self.unkind.prepare(received, size)
            if not batch and holding:
                self._stop.wait(0.05)  # a held message is not due yet
        if batch:
            self._deliver(batch, leave)

    def _collect(self, limit: int, wait: int = LONG_POLL_SECONDS) -> list[dict[str, Any]]:
        s = self.settings
        batch: list[dict[str, Any]] = []
        size = 0
        deadline: float | None = None
        first_wait = wait
        while len(batch) < limit and not self._stop.is_set():
            if deadline is None:
                wait = first_wait
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(LONG_POLL_SECONDS, math.ceil(remaining))
            messages = self.sqs.receive_message(
                QueueUrl=s.queue_url,
                MaxNumberOfMessages=min(10, limit - len(batch)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch and not messages and self.unkind:
                break  # back to the caller after each empty poll: held messages may be due
            for message in messages:
                batch.append(message)
                size += len(message["Body"]) + 1024
            if batch and deadline is None:
                if s.window_seconds <= 0:
                    break
                deadline = time.monotonic() + s.window_seconds
            if size >= MAX_PAYLOAD_BYTES - 256 * 1024:
                break
        return batch

    def _deliver(self, batch: list[dict[str, Any]], leave: set[str] = frozenset()) -> None:
        """Invoke with the batch; delete what succeeded, but for ``leave`` (unkind redeliveries)."""
        s = self.settings
        event = {"Records": [sqs_record(m, s.queue_arn, s.region) for m in batch]}
        ids = [m["MessageId"] for m in batch]
        result = self.invoke(s.function_name, event)
        self.batches += 1
        keep = failed_ids(result, ids, s.report_failures)
        # A message twice in the batch is deleted once: its receipt handle is the same.
        kept = keep | leave
        done = list({m["ReceiptHandle"]: m for m in batch if m["MessageId"] not in kept}.values())
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            response = self.sqs.delete_message_batch(QueueUrl=s.queue_url, Entries=entries)
            for failure in response.get("Failed", []):
                log.warning("could not delete a message: %s", failure.get("Message"))
        if not result.ok:
            log.warning(
                "%s: batch of %d failed (%s: %s); the messages return after the visibility timeout",
                s.function_name,
                len(batch),
                (result.error or {}).get("errorType"),
                (result.error or {}).get("errorMessage"),
            )
        elif keep:
            log.warning(
                "%s: batch of %d, %d kept for retry after the visibility timeout: %s",
                s.function_name,
                len(batch),
                len(keep),
                ", ".join(sorted(keep)),
            )
        else:
            log.info("%s: batch of %d done", s.function_name, len(batch))
