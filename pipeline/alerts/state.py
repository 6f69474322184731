"""How a stored alert document changes: the detector's writes and the people's. Pure functions.

The detector owns every field but the human ones (``HUMAN_FIELDS``); people own those, through
the API. Each function takes the stored document and returns the one to store, or ``None``
when nothing is to be written (a stale replay, a second acknowledgement).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline.alerts.records import HUMAN_FIELDS


def _updated(doc: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(doc["updated_at"]).replace("Z", "+00:00"))


def merge_detector_write(stored: dict[str, Any] | None, incoming: dict[str, Any]) -> dict[str, Any] | None:
    """The document to store when the detector sends ``incoming`` over ``stored``.

    The detector's changes are ordered by ``updated_at`` (the end of the bucket that changed the
    incident: each change is a later bucket) and then by version. ``None`` when ``incoming`` is
    not newer than what is stored: a replay after a crash re-sends old changes, and re-sending
    the stored one changes nothing. People's changes bump ``version`` without touching
    ``updated_at``, so the detector's own counter may lag: the stored version only ever grows.
    Human fields are kept from ``stored``; a person's resolution also keeps ``status="resolved"``
    and its ``resolved_at``, whatever the detector says.
    """
    if stored is None:
        return dict(incoming)
    if (_updated(incoming), incoming["version"]) <= (_updated(stored), stored["version"]):
        return None
    if _updated(incoming) == _updated(stored) and incoming["version"] < stored["version"]:
        return None
    merged = {**incoming, "version": max(incoming["version"], stored["version"] + 1)}
    for field in HUMAN_FIELDS:
        if stored.get(field) is not None:
            merged[field] = stored[field]
    if stored.get("resolved_by"):
        merged["status"] = "resolved"
        merged["resolved_at"] = stored["resolved_at"]
    return merged


def _with_note(document: dict[str, Any], note: str | None) -> dict[str, Any]:
    return {**document, "note": note} if note else document


def acknowledged(stored: dict[str, Any], by: str, now: datetime, note: str | None = None) -> dict[str, Any] | None:
    """``stored`` acknowledged by ``by`` at ``now`` (next version); None if already acknowledged."""
    if stored.get("acknowledged_at"):
        return None
    return _with_note({**stored, "acknowledged_at": now.isoformat(), "acknowledged_by": by,
                       "last_change": "acknowledged", "version": stored["version"] + 1}, note)


def resolved(stored: dict[str, Any], by: str, now: datetime, note: str | None = None) -> dict[str, Any] | None:
    """``stored`` resolved by ``by`` (next version); None if a person already resolved it.

    An incident the detector already closed keeps its ``resolved_at``; the person's name pins it
    resolved against later detector writes.
    """
    if stored.get("resolved_by"):
        return None
    resolved_at = stored.get("resolved_at") if stored["status"] == "resolved" else None
    return _with_note({**stored, "status": "resolved", "resolved_at": resolved_at or now.isoformat(),
                       "resolved_by": by, "last_change": "resolved", "version": stored["version"] + 1}, note)
