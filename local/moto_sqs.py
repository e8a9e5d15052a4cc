"""SQS in the emulator at a cost that does not grow with the queue: the same answers, cheaper.

moto 5.2.5 computes every attribute of a queue, its three message counts
among them (each a pass over every message, each message asking the clock
through ``moto.core.utils.unix_time_millis``, two datetimes a call), whenever
anything reads ``Queue.attributes``. Three of its paths read them for one
value:

- ``ReceiveMessage`` checks each message it returns against the queue's
  retention period with ``get_queue_attributes(queue, ["MessageRetentionPeriod"])``;
- ``get_queue_attributes`` for named attributes reads ``queue.attributes`` three
  times per name;
- ``SendMessage`` reads ``queue.attributes.get("ContentBasedDeduplication")``.

With 1,500 messages waiting (a reprocess) a receive of 10 cost the emulator
about 0.2 s of CPU, and each completion event sent to a queue nobody reads grew
dearer as it filled: py-spy showed half of the emulator's CPU in these paths
while tests/test_reprocess_stack.py rendered. Here the retention check reads
the one attribute, named attributes are computed once per request, and a
message's ``visible`` and ``delayed`` and a queue's counts read the clock once
(``time.time()``, the clock moto's ``unix_time`` reads through datetimes).
What each call answers is unchanged; ``tests/test_emulator.py`` checks the
counts, the retention and the attributes against SQS's documented behaviour.
"""

from __future__ import annotations

import time
from typing import Any


def _now_ms() -> float:
    return time.time() * 1000.0


def visible(self: Any) -> bool:
    return _now_ms() > self.visible_at


def delayed(self: Any) -> bool:
    return _now_ms() < self.delayed_until


def messages(self: Any) -> list[Any]:
    now = _now_ms()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def approximate_number_of_messages(self: Any) -> int:
    return len(messages(self))


def approximate_number_of_messages_delayed(self: Any) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if now < m.delayed_until)


def approximate_number_of_messages_not_visible(self: Any) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if not now > m.visible_at)


def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > time.time()


def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    """moto's, with the queue's attributes computed once instead of three times per name."""
    from moto.sqs import models

    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}
    valid = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
    invalid = next((name for name in attribute_names if name not in valid), None)
    if invalid or invalid == "":
        raise models.InvalidAttributeName(invalid)
    computed = queue.attributes
    if "All" in attribute_names:
        return computed
    return {name: computed[name] for name in attribute_names if computed.get(name) is not None}


def patch() -> None:
    from moto.sqs import models

    queue_cls, backend_cls, message_cls = models.Queue, models.SQSBackend, models.Message
    message_cls.visible = property(visible)
    message_cls.delayed = property(delayed)
    queue_cls.messages = property(messages)
    queue_cls.approximate_number_of_messages = property(approximate_number_of_messages)
    queue_cls.approximate_number_of_messages_delayed = property(approximate_number_of_messages_delayed)
    queue_cls.approximate_number_of_messages_not_visible = property(
        approximate_number_of_messages_not_visible
    )
    backend_cls.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    backend_cls.get_queue_attributes = get_queue_attributes
