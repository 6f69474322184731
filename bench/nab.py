"""NAB scoring (the Numenta Anomaly Benchmark's published rules), in our own code.

Follows numenta/NAB ``nab/sweeper.py`` (the per-row scores), ``nab/scorer.py`` and
``config/profiles.json``:

* A series is rows; a labelled *window* is the rows with ``start <= timestamp <= end``.
* The first ``probation_rows(n)`` rows (15 % of the series, at most 750 rows, as the sweeper
  caps it) are probationary: detections there are ignored, and a window wholly inside it does
  not count.
* A detection at row ``i`` inside a window ``[left, right]`` of ``width`` rows is worth
  ``tp x S(-(right - i + 1) / width) / S(-1)``, where ``S(x) = 2 / (1 + exp(5x)) - 1`` is the
  scaled sigmoid (``S = -1`` beyond ``x > 3``): the window's first row earns exactly ``tp``, its
  last row almost nothing. Each window keeps only its best (earliest) detection; a window with
  none costs ``-fn``.
* A detection outside every window is a false positive worth ``fp x S(|i - right_prev| /
  (width_prev - 1))`` after a window (close behind it costs little, a window-width later almost
  ``-fp``), and ``-fp`` before the first window. Every flagged row counts, not every incident.
* Profiles weigh (tp, fp, fn): standard (1, 0.11, 1), reward_low_FP_rate (1, 0.22, 1),
  reward_low_FN_rate (1, 0.11, 2).
* Normalisation: ``100 x (raw - null) / (perfect - null)``, with the *null* detector (never
  fires: ``-fn`` per window) and the *perfect* one (fires on each window's first row: ``tp`` per
  window). Across series NAB sums raw, null and perfect over the corpus, then normalises once.

Pure: rows and detections in, numbers out.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Profile:
    """NAB's cost matrix: the weight of a true positive, a false positive and a missed window."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}
PROBATION_PERCENT = 0.15
PROBATION_CAP_ROWS = PROBATION_PERCENT * 5000  # the sweeper's cap: 750 rows


def scaled_sigmoid(position: float) -> float:
    """NAB's weight of a detection at a relative position: -1 = a window's left edge (0.987),
    0 = its right edge (0), > 0 = that many window widths behind it (negative; -1 past 3)."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_rows(n_rows: int) -> int:
    """Rows at the start of a series that are never scored."""
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_CAP_ROWS))


def window_rows(timestamps: Sequence[float], windows: Iterable[tuple[float, float]]) -> list[tuple[int, int]]:
    """Each window as (first row, last row), inclusive; windows without rows are dropped."""
    rows = []
    for start, end in sorted(windows):
        first, last = bisect_left(timestamps, start), bisect_right(timestamps, end) - 1
        if first <= last:
            rows.append((first, last))
    return rows


@dataclass
class SeriesScore:
    """One series under one profile. ``raw``, ``null`` and ``perfect`` are NAB's unnormalised
    scores of the detector, the never-firing and the perfect detector."""

    raw: float
    null: float
    perfect: float
    windows: int  # scored windows (not wholly probationary)
    windows_detected: int
    false_positive_rows: int

    @property
    def normalised(self) -> float:
        return normalise(self.raw, self.null, self.perfect)


def normalise(raw: float, null: float, perfect: float) -> float:
    """NAB's 0..100 scale: 0 = the null detector, 100 = the perfect one (can go below 0)."""
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0


def score_series(n_rows: int, windows: list[tuple[int, int]], detections: Iterable[int],
                 profile: Profile) -> SeriesScore:
    """NAB score of detection rows (indices into the series) against windows (first, last row)."""
    probation = probation_rows(n_rows)
    max_tp = scaled_sigmoid(-1.0)
    scored = [(a, b) for a, b in windows if b >= probation]
    best: dict[int, float] = {}
    fp_score, fp_rows = 0.0, 0
    for i in sorted(set(detections)):
        if i < probation or i >= n_rows:
            continue
        inside = next((k for k, (a, b) in enumerate(scored) if a <= i <= b), None)
        if inside is not None:
            a, b = scored[inside]
            width = b - a + 1
            value = scaled_sigmoid(-(b - i + 1) / width) * profile.tp / max_tp
            best[inside] = max(best.get(inside, -math.inf), value)
            continue
        fp_rows += 1
        # The sweeper measures a false positive from the last window that ended before it,
        # including windows that ended inside probation.
        before = [(a, b) for a, b in windows if b < i]
        if not before:
            fp_score -= profile.fp
        else:
            a, b = before[-1]
            width = b - a + 1
            fp_score += scaled_sigmoid(abs(i - b) / (width - 1) if width > 1 else 3.1) * profile.fp
    missed = len(scored) - len(best)
    raw = sum(best.values()) + fp_score - missed * profile.fn
    return SeriesScore(raw=raw, null=-profile.fn * len(scored), perfect=profile.tp * len(scored),
                       windows=len(scored), windows_detected=len(best), false_positive_rows=fp_rows)


def corpus_score(scores: Iterable[SeriesScore]) -> float:
    """NAB's score over several series: raw, null and perfect summed, then normalised."""
    scores = list(scores)
    return normalise(sum(s.raw for s in scores), sum(s.null for s in scores), sum(s.perfect for s in scores))
