"""Spike detection on one bucketed count series: a seasonal robust baseline, a multi-scale
surprise score, and an incident state machine. Pure: numbers in, events out, no I/O, no clock.

The same ``SeriesDetector`` runs in the Faust worker (per brand and signal, fed by windowed
tables) and in ``earshot detect`` (over a CSV), so what the evaluation measures is what runs.

Baseline (why this one, with numbers, in ``bench/spikes.py`` and the README):

* **Seasonality.** Counts are summed per local hour (the brand's time zone). The expected rate
  for an hour is the *median* of the same local hour over the last ``history_days`` days of the
  same kind (weekday or weekend; all days until two of that kind exist). A median of past days
  ignores a past spike of up to half of them, which a mean would learn as normal.
* **Trend / level.** The seasonal profile is multiplied by the median ratio of observed to
  profile over the last 24 complete hours, so a brand that grows or shrinks moves its baseline
  within a day, while a spike shorter than 12 hours cannot drag it up.
* **Surprise.** For each time scale (the bucket itself, 15 min, 1 h, 3 h; sliding), the
  residual is the signed Poisson *deviance* residual of the window's observed count ``o``
  against its expected count ``e`` (both plus a pseudo-count ``k``):
  ``sign(o - e) * sqrt(2 * ((o + k) * log((o + k) / (e + k)) - (o - e)))``. It is centred and
  scaled by the median and MAD of the same residual sampled at every past hour (robust z), the
  spread never below 1 (Poisson noise alone). The bucket's score is the largest z over the
  scales: a sharp burst wins on short scales, a slow build-up on long ones.
* **Sustained rises.** On windows of an hour or more, the log ratio ``log((o + k) / (e + k))``
  is scored too (robust z the same way, never less spread than counting noise, ``1/sqrt(e + k)``)
  and counts double: the deviance's spread grows with a busy series' over-dispersion on long
  windows, so alone it would miss a busy brand doubling for hours; a ratio does not care how
  busy the brand is. Double, because the deviance z's tails are about twice as long (the
  threshold that suits it, ~10, is about twice the one that suited the ratio, ~4-5).
  Why deviance and not a log ratio (the detector before this one): a log ratio treats 2 -> 40
  mentions like 200 -> 4000, so a sparse brand's crisis scored below a busy brand's noise, and a
  60x burst barely above a 5x one. The deviance grows with the evidence (the excess and the
  volume behind it), and the robust z per series absorbs a busy series' over-dispersion, so one
  threshold serves sparse and busy series alike (``bench/spikes.py``: leave-one-series-out).

Incidents (one per series at a time, so no alert storm): a score at or above ``open_z`` past
warm-up opens one if the bucket before also scored ``confirm_z`` (a one-bucket blip is not an
incident) or if the bucket itself scores ``jump_z`` (a surge that large is news even if it lasts
one bucket); higher scores escalate its severity; it resolves after ``quiet_s`` of scores below
``resolve_z``. A breach within ``cooldown_s`` of the resolution re-opens the *same* incident
(same id) instead of raising a new one.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from itertools import islice
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from statistics import median
from typing import Any, Literal
from zoneinfo import ZoneInfo

EventKind = Literal["opened", "updated", "escalated", "resolved", "reopened"]
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
HOUR_S = 3600
DAY_H = 24
# Hourly residual samples before a scale is scored: a baseline exists from the second day on
# (each hour of the day seen once), and half a day of samples gives a usable median and MAD.
MIN_SAMPLES = 12
# What the residual samples in a persisted state measure; samples of another kind are dropped on
# restore (they refill in MIN_SAMPLES hours) and the score thresholds come from today's defaults.
SURPRISE = "deviance+ratio"
SUSTAINED_S = 3600  # windows at least this long are also scored by their log ratio...
RATIO_WEIGHT = 2.0  # ... whose robust z counts this much (see the module docstring)
RATIO_MIN_SCALE = 0.05  # floor of the log ratio's spread (log units)
SCORE_FIELDS = ("open_z", "severity_z", "confirm_z", "jump_z", "resolve_z", "min_scale")


@dataclass(frozen=True)
class DetectorConfig:
    """Tuning of one detector. Times in seconds, scores in robust z units."""

    bucket_s: int = 60
    scales_s: tuple[int, ...] = (0, 900, 3600, 10800)  # 0 = one bucket
    history_days: int = 7
    warmup_s: int = 3 * 86400
    pseudo_count: float = 1.0  # mentions per window added to observed and expected
    # open_z is the one setting chosen on data (bench/spikes.py, leave-one-series-out); the
    # others follow it: confirm = open, jump = 3 x open, resolve = open / 3, severities from open up.
    open_z: float = 10.0
    severity_z: tuple[float, ...] = (10.0, 15.0, 22.5, 35.0)  # low, medium, high, critical
    confirm_z: float = 10.0  # the bucket before an opening must score at least this (one-bucket blips)
    jump_z: float = 30.0  # ... unless the opening bucket alone scores this much
    resolve_z: float = 3.3  # an open incident resolves after quiet_s with no bucket scoring this much
    quiet_s: int = 3 * 3600
    cooldown_s: int = 12 * 3600
    min_scale: float = 1.0  # floor of the residual spread (deviance units: Poisson noise)
    residual_history_h: int = 14 * 24
    weekly: bool = True  # separate weekday and weekend profiles (False: one daily profile)
    trend: bool = True  # scale the profile by the last day's level (False: profile alone)

    def window_buckets(self) -> list[int]:
        """Each scale as a number of buckets (at least one), deduplicated, ascending."""
        return sorted({max(1, s // self.bucket_s) for s in self.scales_s})

    def severity(self, score: float) -> str:
        level = bisect_right(self.severity_z, score) - 1
        return SEVERITIES[max(0, min(level, len(SEVERITIES) - 1))]

    def with_open_z(self, open_z: float) -> "DetectorConfig":
        """This configuration with its threshold moved and what follows it moved alike."""
        factor = open_z / self.open_z
        return replace(self, open_z=open_z, confirm_z=self.confirm_z * factor, jump_z=self.jump_z * factor,
                       resolve_z=self.resolve_z * factor, severity_z=tuple(z * factor for z in self.severity_z))


@dataclass
class Reading:
    """The detector's reading of one closed bucket."""

    bucket_start: float  # epoch seconds (UTC)
    bucket_end: float
    observed: float  # per bucket: count, or share 0..1 for a share signal
    expected: float
    score: float  # robust z of the most surprising scale, >= 0
    scale_s: int  # the window (seconds) that scored it
    warm: bool


@dataclass
class IncidentEvent:
    """A change of the series' incident: what ``alerts`` records and pushes."""

    kind: EventKind
    started_at: float  # epoch seconds: start of the bucket that opened the incident
    severity: str
    status: str  # open | escalated | resolved
    reading: Reading
    peak_score: float


def deviance_residual(observed: float, expected: float, k: float) -> float:
    """Signed Poisson deviance residual of a count against its expectation (pseudo-count ``k``
    on both): about (o - e) / sqrt(e) near the expectation, growing like o * log(o / e) far
    above it; 0 when o = e."""
    o, e = observed + k, expected + k
    deviance = 2.0 * (o * math.log(o / e) - (o - e))
    return math.copysign(math.sqrt(max(deviance, 0.0)), o - e)


def _mad_scale(values: list[float]) -> tuple[float, float]:
    """(median, 1.4826 x median absolute deviation): a robust centre and spread."""
    centre = median(values)
    return centre, 1.4826 * median(abs(v - centre) for v in values)


@dataclass
class _Hour:
    index: int  # local hours since the epoch
    observed: float = 0.0
    exposure: float = 0.0  # for share signals: the denominator (all mentions)
    buckets: int = 0


@dataclass
class SeriesDetector:
    """Baseline, score and incident of one series (one brand x one signal).

    Feed closed buckets in time order with ``observe``; missing buckets are zeros. A *share*
    series (negative share) passes ``exposure`` = all mentions in the bucket: its baseline is
    the robust share, its expected count is exposure x share.
    """

    config: DetectorConfig = field(default_factory=DetectorConfig)
    tz: str = "UTC"
    share: bool = False
    first_bucket: float | None = None
    last_bucket: float | None = None
    hours: list[_Hour] = field(default_factory=list)  # completed local hours, oldest first
    current: _Hour | None = None
    recent: deque = field(default_factory=deque)  # (observed, expected, exposure) of the last buckets
    residuals: dict[int, list[float]] = field(default_factory=dict)  # window buckets -> hourly samples
    profile: dict[tuple[bool, int], float] = field(default_factory=dict)  # (weekend, hour) -> per-hour rate
    level: float = 1.0
    incident_start: float | None = None
    incident_status: str | None = None  # open | escalated | resolved
    incident_severity: str | None = None
    incident_peak: float = 0.0
    quiet_since: float | None = None
    resolved_at: float | None = None
    previous_score: float = 0.0

    def __post_init__(self) -> None:
        self._zone = ZoneInfo(self.tz)
        self._windows = self.config.window_buckets()
        self.recent = deque(self.recent, maxlen=self._windows[-1])
        # Residual sample histories: key w = deviance over w buckets, -w = log ratio over w.
        self._keys = [w for w in self._windows] + [
            -w for w in self._windows if w * self.config.bucket_s >= SUSTAINED_S]
        for key in self._keys:
            self.residuals.setdefault(key, [])
        self._spread: dict[int, tuple[float, float]] = {}
        self._refit_spread()

    # -- time ---------------------------------------------------------------------------
    def _local_hour(self, ts: float) -> int:
        offset = datetime.fromtimestamp(ts, self._zone).utcoffset()
        return int((ts + (offset.total_seconds() if offset else 0)) // HOUR_S)

    def _weekend(self, local_hour: int) -> bool:
        # 1970-01-01 was a Thursday: day 0 -> weekday 3.
        return self.config.weekly and (local_hour // DAY_H + 3) % 7 >= 5

    # -- baseline -----------------------------------------------------------------------
    def _expected_rate(self, local_hour: int) -> float | None:
        """Expected count per bucket (or share) at a local hour; None before that hour of the
        day has been seen once (the first day has no baseline for its later hours)."""
        key = (self._weekend(local_hour), local_hour % DAY_H)
        rate = self.profile.get(key)
        if rate is None:
            rate = self.profile.get((not key[0], key[1]))
        return None if rate is None else rate * self.level

    def _refit(self) -> None:
        """Rebuild the seasonal profile and the level from the completed hours."""
        if not self.hours:
            return
        latest_day = self.hours[-1].index // DAY_H
        by_slot: dict[tuple[bool, int], list[float]] = {}
        pooled: dict[int, list[float]] = {}
        for hour in self.hours:
            if hour.buckets == 0 or latest_day - hour.index // DAY_H >= self.config.history_days * 2:
                continue
            rate = self._hour_rate(hour)
            if rate is None:
                continue
            by_slot.setdefault((self._weekend(hour.index), hour.index % DAY_H), []).append(rate)
            pooled.setdefault(hour.index % DAY_H, []).append(rate)
        profile: dict[tuple[bool, int], float] = {}
        for (weekend, slot), rates in by_slot.items():
            if len(rates) >= 2:
                profile[(weekend, slot)] = median(rates[-self.config.history_days:])
        for slot, rates in pooled.items():
            for weekend in (False, True):
                profile.setdefault((weekend, slot), median(rates[-self.config.history_days:]))
        self.profile = profile
        if self.config.trend and not self.share:
            ratios = []
            for hour in self.hours[-DAY_H:]:
                base = profile.get((self._weekend(hour.index), hour.index % DAY_H), 0.0) * hour.buckets
                ratios.append(math.log((hour.observed + self.config.pseudo_count) / (base + self.config.pseudo_count)))
            self.level = math.exp(median(ratios)) if ratios else 1.0

    def _hour_rate(self, hour: _Hour) -> float | None:
        if self.share:
            return hour.observed / hour.exposure if hour.exposure > 0 else None
        return hour.observed / hour.buckets

    def _close_hour(self) -> None:
        hour = self.current
        if hour is None:
            return
        self.hours.append(hour)
        keep_h = self.config.history_days * 2 * DAY_H + DAY_H
        if len(self.hours) > keep_h:
            del self.hours[: len(self.hours) - keep_h]
        # One residual sample per scale per hour: enough for a stable median/MAD, cheap to keep.
        for key in self._keys:
            residual = self._residual(key) if len(self.recent) >= abs(key) else None
            if residual is not None:
                samples = self.residuals[key]
                samples.append(residual)
                if len(samples) > self.config.residual_history_h:
                    del samples[: len(samples) - self.config.residual_history_h]
        self._refit()
        self._refit_spread()

    def _refit_spread(self) -> None:
        """Robust centre and spread of each residual (needs ``MIN_SAMPLES`` hourly samples)."""
        self._spread = {}
        for key, samples in self.residuals.items():
            if len(samples) >= MIN_SAMPLES:
                centre, spread = _mad_scale(samples)
                floor = self.config.min_scale if key > 0 else RATIO_MIN_SCALE
                self._spread[key] = (centre, max(spread, floor))

    # -- scoring ------------------------------------------------------------------------
    def _window(self, w: int) -> tuple[float, float] | None:
        """(observed, expected) summed over the last ``w`` buckets.

        Over several buckets the largest is capped at the second largest: one bucket's blip (a
        bot, one retweet wave) is the one-bucket scale's business, where it must also persist
        into the next bucket to count, and must not carry the longer scales on its own.
        """
        observed = expected = 0.0
        top = second = 0.0
        for o, e, _ in islice(reversed(self.recent), w):
            if e < 0:
                return None
            observed += o
            expected += e
            if o > top:
                top, second = o, top
            elif o > second:
                second = o
        if w > 1:
            observed -= top - second
        return observed, expected

    def _residual(self, key: int) -> float | None:
        """Deviance residual over ``key`` buckets, or (``key`` < 0) log ratio over ``-key``."""
        window = self._window(abs(key))
        if window is None:
            return None
        observed, expected = window
        k = self.config.pseudo_count
        if key > 0:
            return deviance_residual(observed, expected, k)
        return math.log((observed + k) / (expected + k))

    def _score(self) -> tuple[float, int]:
        best, best_w = 0.0, self._windows[0]
        for key in self._keys:
            w = abs(key)
            fitted = self._spread.get(key)
            if fitted is None or len(self.recent) < w:
                continue
            residual = self._residual(key)
            if residual is None:
                continue
            centre, spread = fitted
            if key > 0:
                z = (residual - centre) / spread
            else:
                # Counting noise alone spreads log(o + k) by about 1/sqrt(e + k): a sparse
                # brand's hour of five mentions must not look like a crisis.
                expected = self._window(w)[1]
                z = RATIO_WEIGHT * (residual - centre) / max(spread, 1.0 / math.sqrt(expected + self.config.pseudo_count))
            if z > best:
                best, best_w = z, w
        return best, best_w

    def observe(self, bucket_start: float, value: float, exposure: float | None = None) -> list[IncidentEvent]:
        """Close one bucket (and any missing ones before it, as zeros); return incident changes."""
        bucket_s = self.config.bucket_s
        events: list[IncidentEvent] = []
        if self.last_bucket is not None:
            if bucket_start <= self.last_bucket:
                return events  # late or repeated bucket: already closed
            # Buckets nobody wrote in are zeros; after a gap of days, the baseline restarts warm.
            filler, budget = self.last_bucket + bucket_s, 2 * DAY_H * HOUR_S // bucket_s
            while filler < bucket_start and budget > 0:
                events += self._observe_one(filler, 0.0, 0.0 if exposure is not None else None)
                filler += bucket_s
                budget -= 1
        events += self._observe_one(bucket_start, value, exposure)
        return events

    def _observe_one(self, bucket_start: float, value: float, exposure: float | None) -> list[IncidentEvent]:
        if self.first_bucket is None:
            self.first_bucket = bucket_start
        self.last_bucket = bucket_start
        local = self._local_hour(bucket_start)
        if self.current is not None and self.current.index != local:
            self._close_hour()
            self.current = None
        if self.current is None:
            self.current = _Hour(local)
        self.current.observed += value
        self.current.exposure += exposure or 0.0
        self.current.buckets += 1

        rate = self._expected_rate(local)
        if rate is None:
            expected = -1.0  # no baseline yet: windows over this bucket are neither scored nor sampled
        else:
            expected = rate * (exposure or 0.0) if self.share else rate
        self.recent.append((value, expected, exposure or 0.0))
        score, w = self._score()
        warm = bucket_start - self.first_bucket >= self.config.warmup_s and bool(self.profile)
        if self.share:
            shown_obs, shown_exp = (value / exposure if exposure else 0.0), (rate or 0.0)
        else:
            shown_obs, shown_exp = value, max(expected, 0.0)
        reading = Reading(bucket_start, bucket_start + self.config.bucket_s, shown_obs, shown_exp,
                          round(score, 3), w * self.config.bucket_s, warm)
        return self._track(reading)

    # -- incidents ----------------------------------------------------------------------
    def _event(self, kind: EventKind, reading: Reading) -> IncidentEvent:
        return IncidentEvent(kind, self.incident_start, self.incident_severity, self.incident_status,
                             reading, self.incident_peak)

    def _track(self, r: Reading) -> list[IncidentEvent]:
        cfg = self.config
        active = self.incident_status in ("open", "escalated")
        confirmed = self.previous_score >= cfg.confirm_z or r.score >= cfg.jump_z
        self.previous_score = r.score
        if not active:
            if not r.warm or r.score < cfg.open_z or not confirmed:
                return []
            reopen = self.resolved_at is not None and r.bucket_end - self.resolved_at < cfg.cooldown_s
            if not reopen:
                self.incident_start = r.bucket_start
                self.incident_peak = 0.0
                self.incident_severity = None
            self.incident_status = "open"
            self.quiet_since = None
            self.resolved_at = None
            previous = self.incident_severity
            self.incident_peak = max(self.incident_peak, r.score)
            self.incident_severity = cfg.severity(self.incident_peak)
            if reopen and previous is not None and SEVERITIES.index(self.incident_severity) > SEVERITIES.index(previous):
                self.incident_status = "escalated"
            return [self._event("reopened" if reopen else "opened", r)]

        if r.score >= cfg.resolve_z:
            self.quiet_since = None
        elif self.quiet_since is None:
            self.quiet_since = r.bucket_start
        if self.quiet_since is not None and r.bucket_end - self.quiet_since >= cfg.quiet_s:
            self.incident_status = "resolved"
            self.resolved_at = r.bucket_end
            return [self._event("resolved", r)]
        if r.score > self.incident_peak:
            self.incident_peak = r.score
            severity = cfg.severity(r.score)
            if SEVERITIES.index(severity) > SEVERITIES.index(self.incident_severity):
                self.incident_severity = severity
                self.incident_status = "escalated"
                return [self._event("escalated", r)]
        return [self._event("updated", r)]

    # -- persistence (Faust table values are JSON) ---------------------------------------
    def to_state(self) -> dict[str, Any]:
        state = {k: v for k, v in asdict(self).items() if k not in ("config", "recent", "hours", "current", "profile")}
        state["config"] = asdict(self.config)
        state["recent"] = [list(x) for x in self.recent]
        state["hours"] = [[h.index, h.observed, h.exposure, h.buckets] for h in self.hours]
        state["current"] = None if self.current is None else [
            self.current.index, self.current.observed, self.current.exposure, self.current.buckets]
        state["profile"] = [[int(k[0]), k[1], v] for k, v in self.profile.items()]
        state["residuals"] = {str(k): v for k, v in self.residuals.items()}
        state["surprise"] = SURPRISE
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig | None = None) -> "SeriesDetector":
        """A detector from ``to_state``; ``config``, when given, replaces the persisted one."""
        state = dict(state)
        stored = state.pop("config")
        stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()
                  if k in DetectorConfig.__dataclass_fields__}
        same_kind = state.pop("surprise", None) == SURPRISE
        if config is None:
            config = DetectorConfig(**stored)
            if not same_kind:  # thresholds in another score's units: today's defaults instead
                config = replace(config, **{k: getattr(DetectorConfig(), k) for k in SCORE_FIELDS})
        hours = [_Hour(*h) for h in state.pop("hours")]
        current = state.pop("current")
        profile = {(bool(w), int(h)): v for w, h, v in state.pop("profile")}
        residuals = {int(k): v for k, v in state.pop("residuals").items()}
        if not same_kind:  # samples of another score: refilled within MIN_SAMPLES hours
            residuals = {}
        if not same_kind:
            state["previous_score"] = 0.0
        recent = [tuple(x) for x in state.pop("recent")]
        detector = cls(config=config, hours=hours, current=_Hour(*current) if current else None,
                       profile=profile, residuals=residuals, recent=deque(recent), **state)
        return detector


def infer_bucket_s(timestamps: list[float]) -> int:
    """The bucket width of a series, seconds: the most common positive step between rows."""
    steps: dict[int, int] = {}
    for a, b in zip(timestamps, timestamps[1:]):
        step = int(round(b - a))
        if step > 0:
            steps[step] = steps.get(step, 0) + 1
    if not steps:
        raise ValueError("need at least two distinct timestamps to infer the bucket width")
    return max(steps, key=lambda s: (steps[s], -s))


def to_utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
