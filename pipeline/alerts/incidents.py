"""One brand's spike watch: per-minute counts in, alert documents out. Pure (no Faust, no clock).

The worker re-keys every enriched mention by brand (``brand_mentions``), counts each brand's
minutes in a Faust windowed table, and hands each *closed* minute to the brand's ``BrandWatch``,
which runs one ``SeriesDetector`` per signal:

* ``volume``    mentions per minute;
* ``negative``  share of negative mentions (a share series: its exposure is the volume);
* ``complaint`` complaints per minute;
* ``risk``      mentions with the ``risk`` purpose per minute.

A minute is closed once the brand's event time (the mentions' ``created_at``) has passed its end
by ``lateness_s``, so mentions that arrive a little out of order still count. Each incident's
alert id is ``alert_id(brand, signal, start)``: a replay after a crash rebuilds the same state
from the changelog and the same id, and the alert is updated, not duplicated.

What is persisted (``to_state``) is what decides alerts: detector baselines, the next minute to
close, and each incident's version. The explanation (recent mentions for representative posts
and significant terms) is kept in memory only: after a restart it refills within minutes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from pipeline.alerts.records import SEVERITIES, Alert, alert_id
from pipeline.alerts.detector import DetectorConfig, IncidentEvent, SeriesDetector
from pipeline.alerts.explain import Background, significant_terms, terms_of

SIGNALS: tuple[str, ...] = ("volume", "negative", "complaint", "risk")
MINUTE_S = 60


@dataclass(frozen=True)
class WatchConfig:
    """Tuning of every brand's watch. Times in seconds (event time)."""

    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(bucket_s=MINUTE_S,
                                                                          scales_s=(0, 300, 900, 3600, 10800)))
    lateness_s: float = 60.0
    update_every_s: float = 900.0  # an open incident's figures are re-sent at most this often
    explain_window_s: float = 3600.0  # mentions kept in memory to explain a spike
    explain_max_mentions: int = 5000
    min_severity: str = "low"  # incidents below this are tracked but not sent


def epoch(value: str | datetime) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def brand_mentions(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The records an enriched mention contributes to ``mentions.by-brand``: one per brand named,
    with only what counting and explaining need."""
    brands = document.get("brands") or []
    if not brands:
        return []
    sentiment = document.get("sentiment") or {}
    metrics = document.get("metrics") or {}
    author = document.get("author") or {}
    base = {
        "id": document["id"],
        "ts": epoch(document["created_at"]),
        "negative": sentiment.get("label") == "negative",
        "complaint": bool((document.get("complaint") or {}).get("label")),
        "risk": "risk" in (document.get("purposes") or []),
        "spam": "spam" in (document.get("purposes") or []),
        "text": (document.get("text") or "")[:1000],
        "author": author.get("handle"),
        "url": document.get("url"),
        "engagement": int(metrics.get("likes", 0)) + int(metrics.get("shares", 0)) + int(metrics.get("replies", 0)),
        "sentiment": sentiment.get("label"),
    }
    return [{**base, "brand": brand} for brand in dict.fromkeys(brands)]


def minute_counts(record: dict[str, Any]) -> list[int]:
    """The record's contribution to its minute: [volume, negative, complaint, risk]."""
    return [1, int(record["negative"]), int(record["complaint"]), int(record["risk"])]


def count_into(minute: list[int] | None, record: dict[str, Any], offset: int) -> list[int] | None:
    """A minute's stored value after counting ``record`` (at ``offset`` of the by-brand topic),
    or None if that record was counted already.

    The value is [volume, negative, complaint, risk, last offset counted]. One brand's records
    sit in one partition and arrive in offset order, so a record at or below the minute's last
    offset was counted before a crash and is being replayed: counting it again would inflate the
    minute (at-least-once delivery made exactly-once for the counts).
    """
    minute = list(minute or [0, 0, 0, 0, -1])
    if len(minute) < 5:
        minute = (minute + [0, 0, 0, 0])[:4] + [-1]
    if offset <= minute[4]:
        return None
    return [a + b for a, b in zip(minute[:4], minute_counts(record))] + [offset]


def _flag_of(signal: str):
    return (lambda m: True) if signal == "volume" else (lambda m: bool(m.get(signal)))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


@dataclass
class _Incident:
    id: str
    started_at: float
    version: int = 0
    last_sent: float = -math.inf
    severity: str = "low"


class BrandWatch:
    """Detectors, minute clock and incidents of one brand."""

    def __init__(self, brand: str, tz: str = "UTC", teams: dict[str, tuple[str, ...]] | None = None,
                 config: WatchConfig | None = None, state: dict[str, Any] | None = None):
        self.brand, self.tz = brand, tz
        self.teams = teams or {}
        self.config = config or WatchConfig()
        self.recent: deque[dict[str, Any]] = deque(maxlen=self.config.explain_max_mentions)
        self.recent_terms: deque[set[str]] = deque(maxlen=self.config.explain_max_mentions)
        self.background = Background()
        state = state or {}
        self.next_minute: float | None = state.get("next_minute")
        self.watermark: float = state.get("watermark", -math.inf)
        self.detectors = {
            s: SeriesDetector.from_state(state["detectors"][s]) if s in state.get("detectors", {})
            else SeriesDetector(config=self.config.detector, tz=tz, share=(s == "negative"))
            for s in SIGNALS
        }
        self.incidents = {s: _Incident(**i) for s, i in state.get("incidents", {}).items()}

    # -- the clock ------------------------------------------------------------------------
    def note(self, record: dict[str, Any]) -> list[float]:
        """Remember a mention (for explanations) and advance event time; return the minutes
        (start, epoch s) that are now closed, oldest first."""
        ts = record["ts"]
        if self.next_minute is None:
            self.next_minute = math.floor(ts / MINUTE_S) * MINUTE_S
        terms = terms_of(record.get("text") or "")
        self.recent.append(record)
        self.recent_terms.append(terms)
        self.background.add(terms, ts)
        return self.advance(ts)

    def advance(self, ts: float) -> list[float]:
        """Move event time to ``ts`` (a mention or a tick) and return the minutes it closes."""
        self.watermark = max(self.watermark, ts)
        if self.next_minute is None:
            return []
        due = []
        while self.next_minute + MINUTE_S + self.config.lateness_s <= self.watermark:
            due.append(self.next_minute)
            self.next_minute += MINUTE_S
            if len(due) >= 3 * 24 * 60:  # after a gap of days, skip ahead: the detector restarts warm
                self.next_minute = math.floor((self.watermark - self.config.lateness_s) / MINUTE_S) * MINUTE_S - MINUTE_S
        return due

    # -- detection ------------------------------------------------------------------------
    def close(self, minute: float, counts: list[int] | None) -> list[dict[str, Any]]:
        """Feed one closed minute ([volume, negative, complaint, risk]) to the detectors; return
        the alert documents to send (new versions of incidents)."""
        volume, negative, complaint, risk = (list(counts or []) + [0, 0, 0, 0])[:4]
        alerts = []
        for signal, value, exposure in (("volume", volume, None), ("negative", negative, volume),
                                        ("complaint", complaint, None), ("risk", risk, None)):
            for event in self.detectors[signal].observe(minute, float(value), exposure=None if exposure is None
                                                        else float(exposure)):
                alert = self._on_event(signal, event)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def _on_event(self, signal: str, event: IncidentEvent) -> dict[str, Any] | None:
        reading = event.reading
        incident = self.incidents.get(signal)
        if incident is None or incident.started_at != event.started_at:
            incident = _Incident(alert_id(self.brand, signal, _utc(event.started_at)), event.started_at)
            self.incidents[signal] = incident
        if event.kind == "resolved":
            del self.incidents[signal]
            if incident.version == 0:
                return None  # never sent (below min_severity): nothing to close for anyone
        elif event.kind == "updated" and reading.bucket_end - incident.last_sent < self.config.update_every_s:
            return None
        elif SEVERITIES.index(event.severity) < SEVERITIES.index(self.config.min_severity):
            return None
        incident.version += 1
        incident.last_sent = reading.bucket_end
        incident.severity = event.severity
        return self._alert(signal, event, incident).to_document()

    def _alert(self, signal: str, event: IncidentEvent, incident: _Incident) -> Alert:
        reading = event.reading
        span = max(reading.scale_s, 300)  # explain at least five minutes of posts
        start = reading.bucket_end - span
        wanted = _flag_of(signal)
        picked = [(m, t) for m, t in zip(self.recent, self.recent_terms)
                  if start <= m["ts"] < reading.bucket_end and wanted(m) and not m.get("spam")]
        terms = significant_terms([t for _, t in picked], self.background)
        top = sorted((m for m, _ in picked), key=lambda m: (-m["engagement"], m["ts"]))[:5]
        return Alert(
            id=incident.id,
            brand=self.brand,
            signal=signal,
            severity=event.severity,
            status=event.status,
            last_change=event.kind,
            started_at=_utc(event.started_at),
            updated_at=_utc(reading.bucket_end),
            resolved_at=_utc(reading.bucket_end) if event.status == "resolved" else None,
            window={"start": _utc(reading.bucket_end - reading.scale_s), "end": _utc(reading.bucket_end),
                    "bucket_s": self.config.detector.bucket_s},
            observed=round(reading.observed, 4),
            expected=round(reading.expected, 4),
            score=reading.score,
            peak_score=round(event.peak_score, 3),
            timezone=self.tz,
            terms=[{"term": t, "score": s, "spike_count": a, "baseline_count": b} for t, s, a, b in terms],
            mentions=[{"id": m["id"], "text": m["text"], "created_at": _utc(m["ts"]), "author": m.get("author"),
                       "url": m.get("url"), "engagement": m["engagement"], "sentiment": m.get("sentiment")}
                      for m in top],
            teams=list(self.teams.get(signal, ())),
            version=incident.version,
        )

    # -- persistence ----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "next_minute": self.next_minute,
            "watermark": self.watermark if math.isfinite(self.watermark) else None,
            "detectors": {s: d.to_state() for s, d in self.detectors.items()},
            "incidents": {s: {"id": i.id, "started_at": i.started_at, "version": i.version,
                              "last_sent": i.last_sent if math.isfinite(i.last_sent) else -1e18,
                              "severity": i.severity}
                          for s, i in self.incidents.items()},
        }

    @classmethod
    def from_state(cls, brand: str, state: dict[str, Any], tz: str = "UTC",
                   teams: dict[str, tuple[str, ...]] | None = None, config: WatchConfig | None = None) -> "BrandWatch":
        state = dict(state)
        if state.get("watermark") is None:
            state["watermark"] = -math.inf
        return cls(brand, tz, teams, config, state)


def watch_config(lateness_s: float, min_severity: str, warmup_h: float) -> WatchConfig:
    """The watch configuration from the settings (EARSHOT_DETECTOR_*, EARSHOT_ALERT_MIN_SEVERITY)."""
    default = WatchConfig()
    return replace(default, lateness_s=lateness_s, min_severity=min_severity,
                   detector=replace(default.detector, warmup_s=int(warmup_h * 3600)))
