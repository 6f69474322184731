"""Severity of an incident, 1..10, from its magnitude and its persistence. Pure.

For each signal of the incident, over the last 15 minutes (``WINDOW_MIN``) of counts:

* ``ratio``  = (observed + 1) / (expected + 1)   (mentions, complaints, risk mentions, or for the
  negative signal negative mentions against the baseline share times the volume);
* ``excess`` = max(observed - expected, 0)       (mentions more than expected).

    magnitude   = min(7, max(0, log4(ratio)) + log10(1 + excess))    of the strongest signal
    persistence = min(2, log2(1 + minutes_active / 15))               minutes some signal still scored
                                                                      at least the detector's resolve_z
    breadth     = min(1, 0.5 * (signals - 1))                         more signals, more of a crisis
    score       = clamp(round(magnitude + persistence + breadth), 1, 10)

Each 4x of ratio adds a point, and so does each 10x of excess. Both count: a sparse brand's 80x
burst (2 -> 160 mentions an hour: 40 against 0.5 in 15 min) scores 4 (medium) at once and high
within half an hour, like a busy brand doubling from 1,000 to 2,000 per 15 min (ratio 2, excess
1,000); neither a large ratio on nothing nor a small one on a big base alone makes a critical.
An incident's score never drops while it is open (it escalates only).

Bands (what ``severity`` names, and what filters written with names mean):
1-3 ``low``, 4-5 ``medium``, 6-7 ``high``, 8-10 ``critical``.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.alerts.records import SEVERITIES

WINDOW_MIN = 15
BAND_FLOOR = {"low": 1, "medium": 4, "high": 6, "critical": 8}  # lowest score of each band


def band(score: int) -> str:
    """The severity name of a 1..10 score."""
    for name in reversed(SEVERITIES):
        if score >= BAND_FLOOR[name]:
            return name
    return "low"


def level(value: int | str | None) -> int:
    """A threshold or severity as a 1..10 score: an int as is, a band name as its lowest score."""
    if value is None:
        return 1
    if isinstance(value, str):
        if value.isdigit():
            return max(1, min(10, int(value)))
        return BAND_FLOOR[value]
    return max(1, min(10, int(value)))


def alert_level(alert: dict[str, Any]) -> int:
    """An alert document's score (documents written before scores existed: their band's floor)."""
    score = alert.get("severity_score")
    return int(score) if score else BAND_FLOOR.get(alert.get("severity", "low"), 1)


def magnitude(observed: float, expected: float) -> tuple[float, float, float]:
    """(points 0..7, ratio, excess) of one signal's window counts."""
    expected = max(expected, 0.0)
    ratio = (observed + 1.0) / (expected + 1.0)
    excess = max(observed - expected, 0.0)
    return min(7.0, max(0.0, math.log(ratio, 4)) + math.log10(1.0 + excess)), ratio, excess


def persistence(minutes_active: int) -> float:
    return min(2.0, math.log2(1.0 + max(minutes_active, 0) / WINDOW_MIN))


def breadth(signals: int) -> float:
    return min(1.0, 0.5 * max(signals - 1, 0))


def score(windows: dict[str, tuple[float, float]], minutes_active: int) -> tuple[int, dict[str, Any]]:
    """The 1..10 score and its parts from each signal's (observed, expected) window counts."""
    best = (0.0, 1.0, 0.0)
    for observed, expected in windows.values():
        best = max(best, magnitude(observed, expected))
    m, ratio, excess = best
    p, b = persistence(minutes_active), breadth(len(windows))
    total = max(1, min(10, int(math.floor(m + p + b + 0.5))))
    return total, {"magnitude": round(m, 2), "persistence": round(p, 2), "breadth": round(b, 2),
                   "ratio": round(ratio, 2), "excess": round(excess, 1), "minutes_active": minutes_active}
