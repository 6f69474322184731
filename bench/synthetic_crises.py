"""Synthetic crises injected into real quiet stretches of the development series.

A second check beside the labelled windows (real held-out series decide): for each series, the
first afternoon (14:00 UTC, day 10 on) whose day before and two days after hold no labelled
window and no alert of the shipped detector is the *onset*; a crisis is added to the real counts
from there, and the shipped detector runs over the series up to two days after the onset.
``normal`` is, per bucket, the median count of the same slot over the previous seven days.

* ``sudden_burst``   5 x normal for one hour;
* ``ramp_6h``        rising linearly to 3 x normal over six hours, held six more;
* ``level_shift``    2 x normal from the onset on, for the two days;
* ``sparse_2_to_40`` the whole series thinned to 2 mentions an hour (binomial, keeping its
  rhythm), then 40 an hour for three hours.

Extra mentions are Poisson draws (seeded). *Detected* means an incident opened within 24 h of the
onset (48 h for the level shift); *delay* is minutes from the onset to the end of the raising
bucket.
"""

from __future__ import annotations

import statistics
import zlib
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from bench.spikes import Series, detector_alerts
from pipeline.alerts.detector import DetectorConfig, infer_bucket_s

DAY_S = 86400
HOUR_S = 3600
SPARSE_PER_HOUR = 2.0
SURGE_PER_HOUR = 40.0


def quiet_onset(series: Series, alerts: list[float]) -> float | None:
    """The first 14:00 UTC from day 10 on with no window and no alert from a day before to two after."""
    first_day = (series.timestamps[0] // DAY_S + 10) * DAY_S
    t0 = first_day + 14 * HOUR_S
    while t0 + 2 * DAY_S <= series.timestamps[-1]:
        lo, hi = t0 - DAY_S, t0 + 2 * DAY_S
        if not any(a <= hi and b >= lo for a, b in series.windows) and not any(lo <= t <= hi for t in alerts):
            return t0
        t0 += DAY_S
    return None


def _normal(values: np.ndarray, per_day: int) -> np.ndarray:
    """Per bucket, the median of the same slot over the previous seven days (the value itself
    where fewer exist)."""
    past = [np.roll(values, d * per_day) for d in range(1, 8)]
    out = np.median(np.stack(past), axis=0)
    out[: 7 * per_day] = values[: 7 * per_day]
    return out


def _inject(kind: str, values: np.ndarray, normal: np.ndarray, since: np.ndarray, bucket_s: int,
            rng: np.random.Generator) -> np.ndarray:
    """The series with one crisis added; ``since`` = seconds from the onset per bucket."""
    after = since >= 0
    if kind == "sudden_burst":
        extra = np.where(after & (since < HOUR_S), 4.0 * normal, 0.0)
    elif kind == "ramp_6h":
        ramp = np.clip(since / (6 * HOUR_S), 0.0, 1.0) * 2.0
        extra = np.where(after & (since < 12 * HOUR_S), ramp * normal, 0.0)
    elif kind == "level_shift":
        extra = np.where(after, normal, 0.0)
    elif kind == "sparse_2_to_40":
        per_hour = values.sum() / (len(values) * bucket_s / HOUR_S)
        thinned = rng.binomial(values.astype(np.int64), min(1.0, SPARSE_PER_HOUR / per_hour)).astype(float)
        surge = np.where(after & (since < 3 * HOUR_S), SURGE_PER_HOUR * bucket_s / HOUR_S, 0.0)
        return thinned + rng.poisson(surge)
    else:
        raise ValueError(kind)
    return values + rng.poisson(extra)


KINDS: dict[str, float] = {"sudden_burst": DAY_S, "ramp_6h": DAY_S, "level_shift": 2 * DAY_S,
                           "sparse_2_to_40": DAY_S}


def synthetic_checks(all_series: list[Series], shipped_alerts: dict[str, list[float]],
                     config_for: Callable[[int], DetectorConfig] | None = None) -> dict:
    """Each crisis kind on each series' quiet stretch: detected or not, and the delay."""
    config_for = config_for or (lambda bucket_s: DetectorConfig(bucket_s=bucket_s))
    results: dict[str, dict] = {kind: {} for kind in KINDS}
    for s in all_series:
        onset = quiet_onset(s, shipped_alerts.get(s.name, []))
        if onset is None:
            continue
        bucket_s = infer_bucket_s(s.timestamps)
        end = onset + 2 * DAY_S
        keep = [i for i, t in enumerate(s.timestamps) if t < end]
        times = [s.timestamps[i] for i in keep]
        values = np.array([s.values[i] for i in keep], dtype=float)
        normal = _normal(values, round(DAY_S / bucket_s))
        since = np.array(times) - onset
        for kind, horizon in KINDS.items():
            rng = np.random.default_rng(zlib.crc32(f"{s.name}:{kind}".encode()))
            crisis = replace(s, timestamps=times, values=_inject(kind, values, normal, since, bucket_s, rng).tolist())
            _, alerts = detector_alerts(crisis, config_for(bucket_s))
            inside = [t for t in alerts if onset < t <= onset + horizon]
            before = [t for t in alerts if onset - DAY_S <= t <= onset]
            results[kind][s.name] = {
                "onset": datetime.fromtimestamp(onset, timezone.utc).strftime("%Y-%m-%d %H:%M"),
                "detected": bool(inside),
                "delay_minutes": round((inside[0] - onset) / 60, 1) if inside else None,
                "alerts_in_day_before": len(before)}
    summary = {}
    for kind, per_series in results.items():
        delays = [r["delay_minutes"] for r in per_series.values() if r["detected"]]
        summary[kind] = {"detected": sum(r["detected"] for r in per_series.values()), "of": len(per_series),
                         "median_delay_minutes": statistics.median(delays) if delays else None}
    return {"summary": summary, "per_kind": results}
