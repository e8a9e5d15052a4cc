"""The emulator's server: ``moto.server`` with three SQS fixes, so it answers as SQS does.

``local.emulator`` starts this module (``python -m local.moto_server``) instead of
``moto.server``; the arguments are moto's. moto 5.2's SQS model differs from
AWS in three ways that matter to this repository's Terraform:

1. ``RedrivePolicy`` comes back as ``json.dumps`` output, with spaces
   (``{"deadLetterTargetArn": "...", "maxReceiveCount": 3}``); SQS returns it
   compact. The provider stores the text it reads for the queue's inline
   ``redrive_policy``, so a second plan would always show a change.
2. ``SetQueueAttributes`` without ``Policy`` clears the queue's policy; SQS
   changes only the attributes it is given.
3. ``RedriveAllowPolicy`` is accepted but never returned, and asking for it by
   name is an ``InvalidAttributeName`` error; SQS stores and returns it.

The patches wrap moto's own methods (``Queue.attributes``,
``Queue._set_attributes``, ``SQSBackend.get_queue_attributes``); everything else
is moto's server, unchanged.
"""

from __future__ import annotations

import json
import sys
from typing import Any

REDRIVE_ALLOW_POLICY = "RedriveAllowPolicy"


def _compact(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"))


def _patch_sqs() -> None:
    from moto.sqs import models

    queue_cls, backend_cls = models.Queue, models.SQSBackend
    original_attributes = queue_cls.attributes.fget
    original_set = queue_cls._set_attributes
    original_get = backend_cls.get_queue_attributes

    def attributes(self: Any) -> dict[str, Any]:
        result = original_attributes(self)
        if result.get("RedrivePolicy"):
            result["RedrivePolicy"] = _compact(result["RedrivePolicy"])
        allow = getattr(self, "redrive_allow_policy", None)
        if allow:
            result[REDRIVE_ALLOW_POLICY] = allow
        return result

    def _set_attributes(self: Any, attrs: dict[str, Any], now: float | None = None) -> None:
        kept = None if "Policy" in attrs else getattr(self, "_policy_json", None)
        original_set(self, attrs, now)
        if kept is not None:
            self._policy_json = kept
        if REDRIVE_ALLOW_POLICY in attrs:
            # An empty value removes it, as in SQS.
            self.redrive_allow_policy = (
                _compact(attrs[REDRIVE_ALLOW_POLICY]) if attrs[REDRIVE_ALLOW_POLICY] else None
            )

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        if REDRIVE_ALLOW_POLICY not in attribute_names:
            return original_get(self, queue_name, attribute_names)
        names = [n for n in attribute_names if n != REDRIVE_ALLOW_POLICY]
        result = original_get(self, queue_name, names)  # checks the queue exists, even for []
        allow = getattr(self.get_queue(queue_name), "redrive_allow_policy", None)
        if allow:
            result[REDRIVE_ALLOW_POLICY] = allow
        return result

    queue_cls.attributes = property(attributes)
    queue_cls._set_attributes = _set_attributes
    backend_cls.get_queue_attributes = get_queue_attributes


def main(argv: list[str] | None = None) -> None:
    _patch_sqs()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
