"""Per-key request rate limits: a token bucket per API key, in this process. Pure: the clock is injected.

A key with a rate of N per minute may send N requests at once, then one every 60/N seconds.
Each API process keeps its own buckets: behind N replicas a key gets up to N times its rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``per_second``; a request takes one."""

    capacity: float
    per_second: float
    tokens: float
    updated: float  # clock reading of the last refill, s

    @classmethod
    def per_minute(cls, rate: int, now: float) -> TokenBucket:
        return cls(capacity=float(rate), per_second=rate / 60.0, tokens=float(rate), updated=now)

    def take(self, now: float) -> float:
        """0.0 and one token taken if one is there; otherwise the seconds until one will be (nothing taken)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.per_second


class RateLimiter:
    """One bucket per key id; a key whose rate changed gets a fresh bucket at the new rate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.buckets: dict[str, tuple[int, TokenBucket]] = {}

    def wait_s(self, key_id: str, rate_per_minute: int) -> float:
        """0.0 when the request may go ahead (it is counted), else the seconds to wait before retrying."""
        now = self.clock()
        known = self.buckets.get(key_id)
        if known is None or known[0] != rate_per_minute:
            known = (rate_per_minute, TokenBucket.per_minute(rate_per_minute, now))
            self.buckets[key_id] = known
        return known[1].take(now)
