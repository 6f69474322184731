"""The alert contract: what the spike detector raises, what ``alerts`` (topic and index) hold,
what the API, the SSE stream and the webhooks deliver.

An alert is one *incident*: one brand and one crisis, from the bucket that opened it until every
signal that joined it resolved (or a person closed it). ``signal`` is the signal that opened it,
``signals`` every signal that fired while it was open (volume, negative, complaint, risk), each
with when it fired and its figures. Its id is a pure function of (brand, opening signal,
incident start), so re-raising the same incident after a crash or a replay overwrites the stored
alert instead of adding a second one. Every change (opened, updated, escalated, reopened,
resolved) is a new ``version`` of the same id on the ``alerts`` topic.

``severity_score`` is 1..10 (``pipeline/alerts/severity.py`` has the formula, its parts are in
``severity_parts``); ``severity`` is its band name (1-3 low, 4-5 medium, 6-7 high, 8-10
critical), which the API filters, the metrics and older webhooks use.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Signal = Literal["volume", "negative", "complaint", "risk"]
Severity = Literal["low", "medium", "high", "critical"]
AlertStatus = Literal["open", "escalated", "resolved"]
Change = Literal["opened", "updated", "escalated", "reopened", "resolved", "acknowledged"]
SIGNALS: tuple[str, ...] = ("volume", "negative", "complaint", "risk")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
STATUSES: tuple[str, ...] = ("open", "escalated", "resolved")


def alert_id(brand: str, signal: str, started_at: datetime) -> str:
    """Deterministic id of an incident: 20 hex chars of SHA-256 over brand, signal and start (UTC)."""
    key = f"{brand}\x1f{signal}\x1f{started_at.isoformat()}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertWindow(_Record):
    """The bucket whose data last changed the alert."""

    start: datetime
    end: datetime
    bucket_s: int = Field(..., gt=0, description="Bucket width, seconds.")


class AlertTerm(_Record):
    """A term that explains the spike: frequent in the spike, rare in the brand's baseline."""

    term: str
    score: float = Field(..., description="Significance (log-likelihood ratio, G2); higher explains more.")
    spike_count: int = Field(..., ge=0, description="Mentions in the spike that contain it.")
    baseline_count: int = Field(..., ge=0, description="Baseline mentions that contain it.")


class AlertSignal(_Record):
    """One signal that fired while the incident was open."""

    signal: Signal
    fired_at: datetime = Field(..., description="Start of the bucket in which this signal's detector opened.")
    updated_at: datetime
    status: Literal["open", "resolved"] = "open"
    observed: float = Field(..., description="Last 15 min: mentions (volume, complaint, risk) or negative mentions.")
    expected: float = Field(..., description="Baseline for the same 15 min, same unit.")
    ratio: float = Field(..., description="(observed + 1) / (expected + 1).")
    score: float = Field(..., description="The detector's surprise (robust z) of the last bucket.")
    peak_score: float


class SeverityParts(_Record):
    """How ``severity_score`` was reached (``pipeline/alerts/severity.py``)."""

    magnitude: float = Field(..., description="0..7 points: log4(ratio) + log10(1 + excess) of the strongest signal.")
    persistence: float = Field(..., description="0..2 points: log2(1 + active minutes / 15).")
    breadth: float = Field(..., description="0..1 points: 0.5 per signal beyond the first.")
    ratio: float = Field(..., description="Observed / expected of the strongest signal (pseudo-count 1), last 15 min.")
    excess: float = Field(..., description="Observed - expected of the strongest signal, mentions in the last 15 min.")
    minutes_active: int = Field(..., description="Minutes of the incident in which a signal still scored as active.")


class AlertMention(_Record):
    """A representative mention of the incident (one per cluster of copies, most engaged first)."""

    id: str
    text: str
    created_at: datetime
    author: str | None = None
    url: str | None = None
    engagement: int = Field(0, ge=0, description="likes + shares + replies.")
    sentiment: str | None = None
    copies: int = Field(1, ge=1, description="Posts of the incident in its cluster of near-copies (itself included).")
    theme: str | None = Field(None, description="The rising phrase it was picked for.")


class Alert(_Record):
    id: str
    brand: str
    signal: Signal
    severity: Severity = Field(..., description="Band of severity_score: 1-3 low, 4-5 medium, 6-7 high, 8-10 critical.")
    severity_score: int | None = Field(None, ge=1, le=10, description="1..10 from magnitude and persistence.")
    severity_parts: SeverityParts | None = None
    signals: list[AlertSignal] = Field(default_factory=list, description="Every signal that fired in the incident.")
    status: AlertStatus
    last_change: Change = Field("opened", description="What this version changed: opened, updated, escalated, "
                                                      "reopened (within the cooldown), resolved, acknowledged.")
    started_at: datetime = Field(..., description="Start of the bucket that opened the incident.")
    updated_at: datetime = Field(..., description="End of the last bucket that changed it (event time).")
    resolved_at: datetime | None = None
    window: AlertWindow
    observed: float = Field(..., description="Signal value in the window: mentions per bucket (volume, "
                                            "complaint, risk) or negative share 0..1 (negative).")
    expected: float = Field(..., description="Baseline for that window, same unit as observed.")
    score: float = Field(..., description="Surprise of the window against the baseline (robust z, >= 0).")
    peak_score: float = Field(..., description="Highest score over the incident so far.")
    timezone: str = Field("UTC", description="IANA zone the brand's seasonality is read in.")
    terms: list[AlertTerm] = Field(default_factory=list, description="Rising single words and hashtags.")
    mentions: list[AlertMention] = Field(default_factory=list, max_length=5)
    explanation: dict[str, Any] | None = Field(None, description="What changed against the brand's baseline "
                                               "(pipeline/alerts/explain.py): summary, phrases, hashtags, sentiment, "
                                               "emotion, sources, authors, near_duplicates, representatives.")
    paging: dict[str, Any] | None = Field(None, description="Whether this version pages: page (bool), reason "
                                          "(threshold, escalated, below_threshold, quiet_period, update, resolved), "
                                          "paged_score (highest severity paged for this incident, or null).")
    teams: list[str] = Field(default_factory=list, description="Teams the routing assigns (routing.yaml).")
    version: int = Field(1, ge=1, description="Incremented at each change of the incident.")
    # Set by people through the API, never by the detector.
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = Field(None, description="Who resolved it by hand; None when the detector did.")
    note: str | None = Field(None, max_length=2000, description="The last note a person left with an ack or resolve.")

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_KEYWORD = {"type": "keyword", "ignore_above": 512}
_DATE = {"type": "date"}

ALERT_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "brand": _KEYWORD,
        "signal": _KEYWORD,
        "severity": _KEYWORD,
        "severity_score": {"type": "integer"},
        "severity_parts": {"type": "object", "enabled": False},
        "signals": {"type": "object", "enabled": False},
        "explanation": {"type": "object", "enabled": False},
        "paging": {"type": "object", "enabled": False},
        "status": _KEYWORD,
        "last_change": _KEYWORD,
        "started_at": _DATE,
        "updated_at": _DATE,
        "resolved_at": _DATE,
        "window": {"properties": {"start": _DATE, "end": _DATE, "bucket_s": {"type": "integer"}}},
        "observed": {"type": "float"},
        "expected": {"type": "float"},
        "score": {"type": "float"},
        "peak_score": {"type": "float"},
        "timezone": _KEYWORD,
        "terms": {"properties": {"term": _KEYWORD, "score": {"type": "float"},
                                 "spike_count": {"type": "integer"}, "baseline_count": {"type": "integer"}}},
        "mentions": {"properties": {"id": _KEYWORD, "text": {"type": "text"}, "created_at": _DATE,
                                    "author": _KEYWORD, "url": {"type": "keyword", "index": False},
                                    "engagement": {"type": "long"}, "sentiment": _KEYWORD,
                                    "copies": {"type": "integer"}, "theme": _KEYWORD}},
        "teams": _KEYWORD,
        "version": {"type": "integer"},
        "acknowledged_at": _DATE,
        "acknowledged_by": _KEYWORD,
        "resolved_by": _KEYWORD,
        "note": {"type": "text"},
    },
}

# Fields only people change (through the API); the detector's writes never overwrite them.
HUMAN_FIELDS: tuple[str, ...] = ("acknowledged_at", "acknowledged_by", "resolved_by", "note")
