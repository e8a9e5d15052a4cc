"""Unkind delivery: the local poller delivers as badly as a standard SQS queue may.

moto's queue hands every message over once, in order, at once. SQS does not
promise that: "Standard queues support at-least-once message delivery.
However, occasionally (because of the highly distributed architecture that
allows nearly unlimited throughput), more than one copy of a message might be
delivered out of order. Standard queues provide best-effort ordering which
ensures that messages are generally delivered in the same order as they're
sent." (Amazon SQS Developer Guide, "Amazon SQS standard queues"), and Lambda
says the same of its event sources: "Lambda event source mappings process each
event at least once, and duplicate processing of records can occur." (Lambda
Developer Guide, "How Lambda processes records from stream and queue-based
event sources"). A message received and not deleted comes back: "After the
visibility timeout, the messages become visible to Lambda again" (Lambda
Developer Guide, "Creating and configuring an Amazon SQS event source
mapping"). With this mode on, each message the poller receives is, at the
given rate each:

- **duplicated**: delivered twice: the first duplicate of a batch twice in that
  batch (the poller keeps a slot free for it), any further one once more in
  another batch, which any poller of the mapping may take at the same time;
- **delayed**: held back for a random time up to a bound, so messages received
  after it are delivered before it;
- **left undeleted** after its batch succeeded, on its first receive: it comes
  back from the queue itself once the queue's VisibilityTimeout ends (a
  redelivery), as when a DeleteMessage is lost;

and every batch is shuffled. Nothing is lost by the mode itself: the real queue
stays the only record of a message. A message is deleted only after a delivery
of it succeeded; one held back, or still held when the poller stops, is simply
not deleted and returns after its visibility timeout; the queue's redrive
policy still moves a message that keeps failing to the dead-letter queue. The
mode leaves a message undeleted only while its receive count is under the
queue's maxReceiveCount, so the redelivery is still delivered, not moved.

Knobs (environment of ``make run``, or ``make run UNKIND=1``):
``LOCAL_UNKIND_DELIVERY=1`` switches it on; ``LOCAL_UNKIND_SEED`` (an integer;
default: one picked at random, printed in the banner) makes the choices
repeatable; ``LOCAL_UNKIND_RATE`` (0..0.33, default 0.2) is the chance of each
of the three acts per message; ``LOCAL_UNKIND_MAX_DELAY`` (seconds, default 3)
bounds a hold-back, which also stays under a quarter of the queue's
visibility timeout so the held receipt is still valid when it is delivered.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("local.poller")

COUNTERS = ("duplicated", "reordered", "delayed", "left_undeleted", "redelivered")
MAX_RATE = 1 / 3  # three exclusive acts per message


class UnkindSettingsError(ValueError):
    """A LOCAL_UNKIND_* variable is not usable; the message names it."""


@dataclass(frozen=True)
class UnkindSettings:
    """How unkind the poller is: the seed, each act's rate, the longest hold-back."""

    seed: int
    rate: float = 0.2
    max_delay_seconds: float = 3.0

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= MAX_RATE:
            raise UnkindSettingsError(f"LOCAL_UNKIND_RATE={self.rate} must be within 0..0.33")
        if not 0 <= self.max_delay_seconds <= 300:
            raise UnkindSettingsError(
                f"LOCAL_UNKIND_MAX_DELAY={self.max_delay_seconds} must be within 0..300"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> UnkindSettings | None:
        """The settings from LOCAL_UNKIND_*, or None when the mode is off (the default)."""
        switch = environ.get("LOCAL_UNKIND_DELIVERY", "").strip()
        if switch in ("", "0"):
            return None
        if switch != "1":
            raise UnkindSettingsError(f"LOCAL_UNKIND_DELIVERY={switch!r} must be 1 (on) or 0 (off)")
        seed = _number(environ, "LOCAL_UNKIND_SEED", int, random.SystemRandom().randrange(1, 10**6))
        rate = _number(environ, "LOCAL_UNKIND_RATE", float, cls.rate)
        delay = _number(environ, "LOCAL_UNKIND_MAX_DELAY", float, cls.max_delay_seconds)
        return cls(seed=seed, rate=rate, max_delay_seconds=delay)

    def describe(self) -> str:
        return (
            f"unkind (seed {self.seed}): duplicates, reorders, delays up to {self.max_delay_seconds:g} s "
            f"and redeliveries after the visibility timeout, each at rate {self.rate:g}"
        )


def _number(environ: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise UnkindSettingsError(f"{name}={raw!r} is not a {kind.__name__}") from None


@dataclass
class Plan:
    """What to do with one batch: deliver these, hold or copy those, leave some undeleted."""

    deliver: list[dict[str, Any]] = field(default_factory=list)
    hold: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (seconds, message)
    copies: list[dict[str, Any]] = field(default_factory=list)  # for another batch, now
    leave: set[str] = field(default_factory=set)  # message ids not to delete on success
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))


def receive_count(message: dict[str, Any]) -> int:
    return int((message.get("Attributes") or {}).get("ApproximateReceiveCount") or 1)


def plan_batch(
    messages: list[dict[str, Any]],
    rng: random.Random,
    settings: UnkindSettings,
    slots: int,
    max_receive_count: int | None,
    max_delay: float,
) -> Plan:
    """The unkind fate of each freshly received message, drawn from ``rng`` (pure: same seed, same plan).

    ``slots`` is how many messages this batch still takes beside held ones now due.
    """
    plan = Plan()
    rate = settings.rate
    twice_here = False
    for message in messages:
        draw = rng.random()
        if draw < rate:
            plan.counts["duplicated"] += 1
            plan.deliver.append(message)
            if not twice_here and len(messages) < slots:  # a free slot for it
                plan.deliver.append(message)  # twice in this batch
                twice_here = True
            else:
                plan.copies.append(message)  # once more, in whichever batch comes next
        elif draw < 2 * rate and max_delay > 0:
            plan.counts["delayed"] += 1
            plan.hold.append((rng.uniform(0, max_delay), message))
        elif draw < 3 * rate and _may_leave(message, max_receive_count):
            plan.counts["left_undeleted"] += 1
            plan.leave.add(message["MessageId"])
            plan.deliver.append(message)
        else:
            plan.deliver.append(message)
    before = [m["MessageId"] for m in plan.deliver]
    rng.shuffle(plan.deliver)
    if [m["MessageId"] for m in plan.deliver] != before:
        plan.counts["reordered"] += 1
    return plan


def _may_leave(message: dict[str, Any], max_receive_count: int | None) -> bool:
    # On its first receive only, and only if the redelivery will still be delivered.
    count = receive_count(message)
    return count == 1 and (max_receive_count is None or count < max_receive_count)


class UnkindDelivery:
    """One mapping's unkindness, shared by its pollers: the choices, the held messages, the counters."""

    def __init__(
        self, settings: UnkindSettings, max_receive_count: int | None = None, visibility_timeout: float = 30
    ) -> None:
        self.settings = settings
        self.max_receive_count = max_receive_count
        self.max_delay = min(settings.max_delay_seconds, visibility_timeout / 4)
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._held: list[tuple[float, dict[str, Any]]] = []  # (when it may go, message)
        self._left: set[str] = set()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._pollers = 0

    @classmethod
    def for_queue(cls, settings: UnkindSettings, sqs: Any, queue_url: str) -> UnkindDelivery:
        """Bounded by the queue's own VisibilityTimeout and redrive policy."""
        attrs = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
        )["Attributes"]
        redrive = json.loads(attrs.get("RedrivePolicy") or "{}")
        max_receive = int(redrive["maxReceiveCount"]) if "maxReceiveCount" in redrive else None
        return cls(settings, max_receive, float(attrs.get("VisibilityTimeout") or 30))

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def room(self, batch_size: int) -> int:
        """How many fresh messages fit in the next batch beside the held ones now due."""
        now = time.monotonic()
        with self._lock:
            due = sum(1 for when, _ in self._held if when <= now)
            return max(0, batch_size - due - (1 if batch_size > 1 else 0))  # one slot kept for a duplicate

    def holding(self) -> bool:
        """Whether any message is held back (due now or later)."""
        with self._lock:
            return bool(self._held)

    def prepare(
        self, received: list[dict[str, Any]], batch_size: int
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """The batch to deliver now (fresh and held messages), and the ids to leave undeleted."""
        now = time.monotonic()
        with self._lock:
            self._note_redeliveries(received)
            ready = [entry for entry in self._held if entry[0] <= now]
            for entry in ready:
                self._held.remove(entry)
            slots = batch_size - len(ready)
            plan = plan_batch(
                received, self._rng, self.settings, slots, self.max_receive_count, self.max_delay
            )
            # Held messages first; what does not fit in BatchSize goes in the next batch.
            batch = [message for _, message in ready] + plan.deliver
            self._held.extend((now, message) for message in batch[batch_size:])
            batch = batch[:batch_size]
            self._held.extend((now + delay, message) for delay, message in plan.hold)
            self._held.extend((now, message) for message in plan.copies)
            plan.leave &= {message["MessageId"] for message in batch}  # an overflow is deleted as usual
            plan.counts["left_undeleted"] = len(plan.leave)
            self._left |= plan.leave
            if ready and plan.deliver:
                self._rng.shuffle(batch)  # held-back messages go among later ones
                plan.counts["reordered"] += 1
            for name, count in plan.counts.items():
                self._counts[name] += count
        _log_plan(plan)
        return batch, plan.leave

    def _note_redeliveries(self, received: list[dict[str, Any]]) -> None:
        for message in received:
            ident = message["MessageId"]
            if ident in self._left and receive_count(message) > 1:
                self._left.discard(ident)
                self._counts["redelivered"] += 1
                log.info("unkind: message %s redelivered after the visibility timeout", ident)

    def attach(self) -> None:
        with self._lock:
            self._pollers += 1

    def detach(self) -> None:
        """A poller stopped; the last one drops what is held (it returns from the queue) and logs totals."""
        with self._lock:
            self._pollers -= 1
            if self._pollers > 0:
                return
            dropped, self._held = len(self._held), []
            totals = dict(self._counts)
        log.info(
            "unkind delivery totals: %s (%d held message(s) not delivered: they return after the "
            "visibility timeout)",
            json.dumps(totals, sort_keys=True),
            dropped,
        )


def _log_plan(plan: Plan) -> None:
    for delay, message in plan.hold:
        log.info("unkind: message %s held back %.2f s", message["MessageId"], delay)
    for message in plan.copies:
        log.info("unkind: message %s duplicated into another batch", message["MessageId"])
    seen: set[str] = set()
    for message in plan.deliver:
        if message["MessageId"] in seen:
            log.info("unkind: message %s delivered twice in one batch", message["MessageId"])
        seen.add(message["MessageId"])
    for ident in sorted(plan.leave):
        log.info("unkind: message %s will not be deleted: it comes back after the visibility timeout", ident)
