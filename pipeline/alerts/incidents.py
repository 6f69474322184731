"""One brand's spike watch: per-minute counts in, alert documents out. Pure (no Faust, no clock).

The worker re-keys every enriched mention by brand (``brand_mentions``), counts each brand's
minutes in a Faust windowed table, and hands each *closed* minute to the brand's ``BrandWatch``,
which runs one ``SeriesDetector`` per signal:

* ``volume``    mentions per minute;
* ``negative``  share of negative mentions (a share series: its exposure is the volume);
* ``complaint`` complaints per minute;
* ``risk``      mentions with the ``risk`` purpose per minute.

A minute is closed once the brand's event time (the mentions' ``created_at``) has passed its end
by ``lateness_s``, so mentions that arrive a little out of order still count.

**One incident per brand and crisis.** The first signal whose detector opens starts the brand's
incident; every other signal that opens while it is open joins it (``signals``: when each fired,
its last 15 minutes observed vs expected, its scores). The incident resolves when every signal
that joined it has resolved; a breach within the detector's ``cooldown_s`` of that re-opens the
same incident. Its id is ``alert_id(brand, opening signal, start)``: a replay after a crash
rebuilds the same state from the changelog and the same id, and the alert is updated, not
duplicated. At most one new version per closed minute: ``opened`` / ``reopened``,
``escalated`` (the 1..10 severity of ``pipeline/alerts/severity.py`` rose, or a signal joined),
``resolved``, and ``updated`` at most every ``update_every_s``.

**Paging** (alert fatigue). Each pushed version says whether it pages (``paging``): not when its
score is below the brand's ``page_min_score`` (it goes to the webhooks' digest instead), and
not within ``quiet_s`` of the brand's last page unless the severity band rose above the paged
one. Webhooks apply their own ``min_severity`` on top (``pipeline/alerts/webhooks.py``).

What is persisted (``to_state``) is what decides alerts: detector baselines, the next minute to
close, the incident and the brand's last page. The explanation (recent mentions, the terms
background) is kept in memory only: after a restart it refills within minutes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from pipeline.alerts import severity as sev
from pipeline.alerts.records import SEVERITIES, Alert, alert_id
from pipeline.alerts.detector import DetectorConfig, IncidentEvent, SeriesDetector
from pipeline.alerts.explain import Background, explain, facets_of, post_terms, significant_terms

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
    explain_max_posts: int = 1500  # newest posts of the incident an explanation reads (cost)
    min_severity: str = "low"  # incidents below this band are tracked but not sent at all
    page_min_score: int = 1  # the brand's paging threshold (1..10); below it: digest only
    quiet_s: float = 1800.0  # no re-page of the brand within this, unless the severity band rose


def epoch(value: str | datetime) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def brand_mentions(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The records an enriched mention contributes to ``mentions.by-brand``: one per brand named,
    with only what counting and explaining need. None for a mention whose time is a guess
    (``created_at_estimated``: an undated feed entry) or that came in a first poll's backlog
    (``raw.backlog``): counting them would date a whole backlog to one minute, a fake spike."""
    brands = document.get("brands") or []
    raw = document.get("raw") if isinstance(document.get("raw"), dict) else {}
    if not brands or document.get("created_at_estimated") or raw.get("backlog"):
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
    # Only the fields BrandMention (pipeline/worker/streams.py) carries; the source is the id's
    # prefix, hashtags are read from the text, near-copies found within the incident.
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


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


@dataclass
class _Signal:
    """A signal that fired in the incident."""

    signal: str
    fired_at: float
    updated_at: float
    status: str = "open"
    score: float = 0.0
    peak_score: float = 0.0


@dataclass
class _Incident:
    id: str
    signal: str  # the one that opened it
    started_at: float
    signals: dict[str, _Signal] = field(default_factory=dict)
    status: str = "open"  # open | escalated | resolved
    version: int = 0
    last_sent: float = -math.inf
    score: int = 0  # severity 1..10 (highest so far)
    parts: dict[str, Any] = field(default_factory=dict)
    minutes_active: int = 0
    resolved_at: float | None = None
    paged_score: int | None = None

    @property
    def severity(self) -> str:
        return sev.band(max(self.score, 1))

    def to_state(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "signals"}
        state["last_sent"] = self.last_sent if math.isfinite(self.last_sent) else -1e18
        state["signals"] = [s.__dict__ for s in self.signals.values()]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "_Incident":
        state = dict(state)
        signals = {s["signal"]: _Signal(**s) for s in state.pop("signals", [])}
        return cls(**state, signals=signals)


def _window_counts(detector: SeriesDetector, minutes: int) -> tuple[float, float, float]:
    """(observed, expected, exposure) summed over the detector's last ``minutes`` buckets; an
    expectation not yet known counts as zero."""
    observed = expected = exposure = 0.0
    for o, e, x in list(detector.recent)[-minutes:]:
        observed += o
        expected += max(e, 0.0)
        exposure += x
    return observed, expected, exposure


class BrandWatch:
    """Detectors, minute clock and the incident of one brand."""

    def __init__(self, brand: str, tz: str = "UTC", teams: dict[str, tuple[str, ...]] | None = None,
                 config: WatchConfig | None = None, state: dict[str, Any] | None = None,
                 own: frozenset[str] = frozenset()):
        self.brand, self.tz = brand, tz
        self.teams = teams or {}
        self.config = config or WatchConfig()
        self.own = own or frozenset({brand})
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
        # States written before incidents were per brand hold per-signal "incidents": those are
        # dropped, and an open one is picked up again at its detector's next event (same id).
        self.incident: _Incident | None = _Incident.from_state(state["incident"]) if state.get("incident") else None
        self.last_page_at: float | None = state.get("last_page_at")
        self.last_page_band: str | None = state.get("last_page_band")

    # -- the clock ------------------------------------------------------------------------
    def note(self, record: dict[str, Any]) -> list[float]:
        """Remember a mention (for explanations) and advance event time; return the minutes
        (start, epoch s) that are now closed, oldest first."""
        ts = record["ts"]
        if self.next_minute is None:
            self.next_minute = math.floor(ts / MINUTE_S) * MINUTE_S
        terms = post_terms(record.get("text") or "", self.own)
        self.recent.append(record)
        self.recent_terms.append(terms)
        self.background.add(terms, ts, facets_of(record))
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
        the alert documents to send (at most one new version of the brand's incident)."""
        volume, negative, complaint, risk = (list(counts or []) + [0, 0, 0, 0])[:4]
        events: dict[str, list[IncidentEvent]] = {}
        for signal, value, exposure in (("volume", volume, None), ("negative", negative, volume),
                                        ("complaint", complaint, None), ("risk", risk, None)):
            found = self.detectors[signal].observe(minute, float(value), exposure=None if exposure is None
                                                   else float(exposure))
            if found:
                events[signal] = found
        alert = self._step(minute + MINUTE_S, events)
        return [alert] if alert is not None else []

    def _join(self, signal: str, event: IncidentEvent, changes: set[str]) -> _Incident:
        """The open incident ``event`` belongs to: the brand's, opened or re-opened if need be."""
        incident, end = self.incident, event.reading.bucket_end
        if incident is None or incident.status == "resolved":
            cooldown = self.config.detector.cooldown_s
            if incident is not None and incident.resolved_at is not None and end - incident.resolved_at < cooldown:
                incident.status, incident.resolved_at = "open", None
                changes.add("reopened")
            else:
                incident = _Incident(alert_id(self.brand, signal, _utc(event.started_at)), signal, event.started_at)
                changes.add("opened")
            self.incident = incident
        entry = incident.signals.get(signal)
        if entry is None:
            incident.signals[signal] = _Signal(signal, event.started_at, end)
            changes.add("joined")
        elif entry.status == "resolved":
            entry.status = "open"
            changes.add("joined")
        return incident

    def _step(self, end: float, events: dict[str, list[IncidentEvent]]) -> dict[str, Any] | None:
        changes: set[str] = set()
        active = False
        resolve_z = self.config.detector.resolve_z
        for signal, found in events.items():
            for event in found:
                if event.kind == "resolved":
                    entry = self.incident.signals.get(signal) if self.incident else None
                    if entry is not None and self.incident.status != "resolved":
                        entry.status, entry.updated_at = "resolved", event.reading.bucket_end
                    continue
                incident = self._join(signal, event, changes)
                entry = incident.signals[signal]
                entry.updated_at, entry.score = event.reading.bucket_end, event.reading.score
                entry.peak_score = max(entry.peak_score, event.peak_score)
                active = active or event.reading.score >= resolve_z
        incident = self.incident
        if incident is None or (incident.status == "resolved" and not changes):
            return None
        if active:
            incident.minutes_active += 1
        previous = incident.score
        score, parts = sev.score(self._windows(incident), incident.minutes_active)
        if score > incident.score:
            incident.score, incident.parts = score, parts
        if all(s.status == "resolved" for s in incident.signals.values()):
            incident.status, incident.resolved_at = "resolved", end
            kind = "resolved"
        elif changes & {"opened", "reopened"}:
            kind = "opened" if "opened" in changes else "reopened"
        elif "joined" in changes or incident.score > previous:
            kind = "escalated"
            incident.status = "escalated"
        elif end - incident.last_sent >= self.config.update_every_s:
            kind = "updated"
        else:
            return None
        if kind == "resolved" and incident.version == 0:
            return None  # never sent (below min_severity): nothing to close for anyone
        if kind != "resolved" and SEVERITIES.index(incident.severity) < SEVERITIES.index(self.config.min_severity):
            return None
        paging = self._paging(incident, kind, end)
        incident.version += 1
        incident.last_sent = end
        return self._alert(incident, kind, end, paging).to_document()

    def _windows(self, incident: _Incident) -> dict[str, tuple[float, float]]:
        """Each joined signal's (observed, expected) counts over the severity window."""
        windows = {}
        for signal in incident.signals:
            observed, expected, _ = _window_counts(self.detectors[signal], sev.WINDOW_MIN)
            windows[signal] = (observed, expected)
        return windows

    def _paging(self, incident: _Incident, kind: str, end: float) -> dict[str, Any]:
        """Whether this version pages, and why (see the module docstring)."""
        if kind == "resolved":
            return {"page": incident.paged_score is not None, "reason": "resolved", "paged_score": incident.paged_score}
        if kind == "updated":
            return {"page": False, "reason": "update", "paged_score": incident.paged_score}
        band = incident.severity
        if incident.score < self.config.page_min_score:
            reason = "below_threshold"
        elif (self.last_page_at is not None and end - self.last_page_at < self.config.quiet_s
              and self.last_page_band is not None and SEVERITIES.index(band) <= SEVERITIES.index(self.last_page_band)):
            reason = "quiet_period"
        else:
            self.last_page_at, self.last_page_band = end, band
            incident.paged_score = max(incident.paged_score or 0, incident.score)
            return {"page": True, "reason": "threshold" if kind != "escalated" else "escalated",
                    "paged_score": incident.paged_score}
        return {"page": False, "reason": reason, "paged_score": incident.paged_score}

    def _alert(self, incident: _Incident, kind: str, end: float, paging: dict[str, Any]) -> Alert:
        lead = "volume" if "volume" in incident.signals else incident.signal
        observed, expected, exposure = _window_counts(self.detectors[lead], sev.WINDOW_MIN)
        shown_observed, shown_expected = observed, expected
        if lead == "negative":  # the contract shows a share signal as shares 0..1
            shown_observed = observed / exposure if exposure else 0.0
            shown_expected = expected / exposure if exposure else 0.0
        signals = []
        for s in incident.signals.values():
            o, e, _ = _window_counts(self.detectors[s.signal], sev.WINDOW_MIN)
            signals.append({"signal": s.signal, "fired_at": _utc(s.fired_at), "updated_at": _utc(s.updated_at),
                            "status": s.status, "observed": round(o, 2), "expected": round(e, 2),
                            "ratio": round((o + 1) / (e + 1), 2), "score": s.score,
                            "peak_score": round(s.peak_score, 3)})
        explanation, terms = self._explain(incident, end, observed, expected)
        teams = list(dict.fromkeys(t for s in incident.signals for t in self.teams.get(s, ())))
        return Alert(
            id=incident.id,
            brand=self.brand,
            signal=incident.signal,
            severity=incident.severity,
            severity_score=max(incident.score, 1),
            severity_parts=incident.parts or None,
            signals=signals,
            status="resolved" if kind == "resolved" else incident.status,
            last_change=kind,
            started_at=_utc(incident.started_at),
            updated_at=_utc(end),
            resolved_at=_utc(end) if kind == "resolved" else None,
            window={"start": _utc(end - sev.WINDOW_MIN * MINUTE_S), "end": _utc(end),
                    "bucket_s": sev.WINDOW_MIN * MINUTE_S},
            observed=round(shown_observed, 4),
            expected=round(shown_expected, 4),
            score=incident.signals[lead].score,
            peak_score=round(max(s.peak_score for s in incident.signals.values()), 3),
            timezone=self.tz,
            terms=terms,
            mentions=[{**{k: v for k, v in m.items() if k != "ts"}, "created_at": _utc(m["ts"])}
                      for m in explanation["representatives"]],
            # The posts' text and authors live in ``mentions`` only, which erasure and retention strip.
            explanation={**explanation, "representatives": [{"id": m["id"], "copies": m["copies"],
                                                             "theme": m["theme"]}
                                                            for m in explanation["representatives"]]},
            paging=paging,
            teams=teams,
            version=incident.version,
        )

    def _explain(self, incident: _Incident, end: float, observed: float, expected: float):
        """The explanation object and the rising single terms, over the incident's posts (from a
        few minutes before it opened, at most ``explain_window_s``)."""
        start = max(end - self.config.explain_window_s, min(incident.started_at - 2 * MINUTE_S, end - 300))
        flags = [s for s in incident.signals if s != "volume"]
        wanted = (lambda m: True) if "volume" in incident.signals else (lambda m: any(m.get(f) for f in flags))
        picked = [(m, t) for m, t in zip(self.recent, self.recent_terms)
                  if start <= m["ts"] < end and wanted(m) and not m.get("spam")][-self.config.explain_max_posts:]
        facts = {"brand": self.brand, "severity_score": max(incident.score, 1), "severity": incident.severity,
                 "signals": list(incident.signals), "observed": round(observed), "expected": expected,
                 "window_min": sev.WINDOW_MIN, "minutes": int((end - incident.started_at) // MINUTE_S)}
        explanation = explain([m for m, _ in picked], [t for _, t in picked], self.background, facts)
        singles = [t for t in explanation["phrases"] + explanation["hashtags"] if " " not in t["term"]]
        # The single words behind the phrases too, for filters and older readers of ``terms``.
        words = [{"term": t, "score": s, "spike_count": a, "baseline_count": b}
                 for t, s, a, b in significant_terms([{w for w in ts if " " not in w} for _, ts in picked],
                                                     self.background)]
        seen = {t["term"] for t in words}
        return explanation, (words + [t for t in singles if t["term"] not in seen])[:10]

    # -- persistence ----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "next_minute": self.next_minute,
            "watermark": self.watermark if math.isfinite(self.watermark) else None,
            "detectors": {s: d.to_state() for s, d in self.detectors.items()},
            "incident": self.incident.to_state() if self.incident else None,
            "last_page_at": self.last_page_at,
            "last_page_band": self.last_page_band,
        }

    @classmethod
    def from_state(cls, brand: str, state: dict[str, Any], tz: str = "UTC",
                   teams: dict[str, tuple[str, ...]] | None = None, config: WatchConfig | None = None,
                   own: frozenset[str] = frozenset()) -> "BrandWatch":
        state = dict(state)
        if state.get("watermark") is None:
            state["watermark"] = -math.inf
        return cls(brand, tz, teams, config, state, own)


def watch_config(lateness_s: float, min_severity: str, warmup_h: float, page_min_score: int = 1,
                 quiet_s: float = 1800.0) -> WatchConfig:
    """The watch configuration from the settings (EARSHOT_DETECTOR_*, EARSHOT_ALERT_MIN_SEVERITY,
    EARSHOT_ALERT_BRAND_MIN_SEVERITY for ``page_min_score``, EARSHOT_ALERT_QUIET_S)."""
    default = WatchConfig()
    return replace(default, lateness_s=lateness_s, min_severity=min_severity, page_min_score=page_min_score,
                   quiet_s=quiet_s, detector=replace(default.detector, warmup_s=int(warmup_h * 3600)))
