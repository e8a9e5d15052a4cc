"""How long one image may render, so that no image can run an invocation out of time.

The function's timeout is seen as the time remaining when an invocation
starts. One image may take ``RENDER_SHARE`` of it; ``reserve`` seconds are
kept after every render for writing the outputs and the record. A message
that starts with less than ``MIN_RENDER_S`` left is handed back to SQS
untouched (a batch item failure) and gets a fresh invocation.
"""

from __future__ import annotations

from dataclasses import dataclass

RENDER_SHARE = 0.5  # a 60 s function renders one image for 30 s at most
RESERVE_SHARE = 0.1  # ...and keeps 10 % (at most RESERVE_MAX_S) for the writes after it
RESERVE_MAX_S = 5.0
MIN_RENDER_S = 1.0


@dataclass(frozen=True)
class TimeBox:
    timeout_s: float  # the invocation's remaining time at its start

    @classmethod
    def from_remaining(cls, remaining_ms: int) -> TimeBox:
        return cls(max(0.0, remaining_ms / 1000))

    @property
    def render_limit_s(self) -> float:
        return self.timeout_s * RENDER_SHARE

    @property
    def reserve_s(self) -> float:
        return min(RESERVE_MAX_S, self.timeout_s * RESERVE_SHARE)

    def can_start(self, remaining_ms: int) -> bool:
        """Whether a message starting now still gets a useful render time."""
        return remaining_ms / 1000 - self.reserve_s >= min(MIN_RENDER_S, self.render_limit_s)

    def render_seconds(self, remaining_ms: int) -> tuple[float, bool]:
        """Seconds this render may take, and whether that is the image's whole allowance."""
        left = remaining_ms / 1000 - self.reserve_s
        if left >= self.render_limit_s:
            return self.render_limit_s, True
        return max(0.1, left), False
