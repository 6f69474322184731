"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter").

Full jitter spreads retries of many workers evenly instead of letting them retry in lockstep
against a service that is just coming back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def backoff_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): uniform in [0, min(cap, base*2^(attempt-1))]."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap_s, base_s * (2 ** min(attempt - 1, 30)))
    return (rng or random).uniform(0.0, ceiling)


async def retry_until_done(action: Callable[[], Awaitable[T]], *, what: str, cap_s: float = 30.0) -> T:
    """Await ``action()`` until it succeeds, sleeping ``backoff_delay`` between failed attempts.

    For work that must not be given up (its batch is not acked until it is done); ``what`` names
    it in the warning logged for each failure.
    """
    attempt = 0
    while True:
        try:
            return await action()
        except Exception as exc:  # noqa: BLE001 - any failure: keep the work, try again
            attempt += 1
            delay = backoff_delay(attempt, cap_s=cap_s)
            log.warning("%s failed (%r); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
