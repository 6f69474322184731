"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter").

Full jitter spreads retries of many workers evenly instead of letting them retry in lockstep
against a service that is just coming back.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): uniform in [0, min(cap, base*2^(attempt-1))]."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap_s, base_s * (2 ** min(attempt - 1, 30)))
    return (rng or random).uniform(0.0, ceiling)
