"""The alert contract: what the spike detector raises, what ``alerts`` (topic and index) hold,
what the API, the SSE stream and the webhooks deliver.

An alert is one *incident*: one brand, one signal, from the bucket that opened it until a
resolve rule (or a person) closed it. Its id is a pure function of (brand, signal, incident
start), so re-raising the same incident after a crash or a replay overwrites the stored alert
instead of adding a second one. Every change (opened, updated, escalated, resolved) is a new
``version`` of the same id on the ``alerts`` topic.
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


class AlertMention(_Record):
    """A representative mention of the spike (the most engaged)."""

    id: str
    text: str
    created_at: datetime
    author: str | None = None
    url: str | None = None
    engagement: int = Field(0, ge=0, description="likes + shares + replies.")
    sentiment: str | None = None


class Alert(_Record):
    id: str
    brand: str
    signal: Signal
    severity: Severity
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
    terms: list[AlertTerm] = Field(default_factory=list)
    mentions: list[AlertMention] = Field(default_factory=list, max_length=5)
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
                                    "engagement": {"type": "long"}, "sentiment": _KEYWORD}},
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
