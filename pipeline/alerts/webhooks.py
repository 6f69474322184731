"""Webhooks, the pure part: who is paged for an alert, the digest of what was not, the signed
request body, and the retry schedule.

**Who is paged** (``route``). A hook receives a version of an incident when the version pages
(``alert["paging"]["page"]``: at or above the brand's threshold and outside the brand's quiet
period, decided in ``pipeline/alerts/incidents.py``) and the incident's 1..10 severity is at
least the hook's ``min_severity`` (a score 1..10, or a band name: low = 1, medium = 4, high = 6,
critical = 8). Its resolution reaches the hooks that were paged about it. An incident that
*opened* below the hook's threshold (or the brand's) goes to the hook's **digest** instead
(``DigestBook``): one message per ``EARSHOT_ALERT_DIGEST_S`` listing those incidents, their
latest severity and summary; an incident paged meanwhile leaves the digest.

Every delivery carries ``X-Earshot-Signature: t=<unix seconds>,v1=<hex>`` (the scheme Stripe
uses): ``v1`` is HMAC-SHA256, keyed with the hook's secret, over ``"<t>."`` followed by the raw
request body. A receiver recomputes it over the bytes it got (before parsing the JSON), compares
in constant time, and refuses a ``t`` more than a few minutes from its clock, so a captured
request cannot be replayed later. ``verify`` does exactly that and is what receivers written in
Python can import. ``pipeline/alerts/delivery.py`` does the HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Collection
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.alerts.records import SEVERITIES, Severity
from pipeline.alerts.severity import alert_level, level
from pipeline.worker.retry import backoff_delay

SIGNATURE_HEADER = "X-Earshot-Signature"
WebhookFormat = Literal["json", "slack"]
Threshold = Severity | Annotated[int, Field(ge=1, le=10)]  # a band name or a 1..10 score
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

_KEYWORD = {"type": "keyword", "ignore_above": 512}
WEBHOOK_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "url": {"type": "keyword", "index": False},  # Slack URLs are credentials: stored, never searched
        "secret": {"type": "keyword", "index": False, "doc_values": False},
        "brands": _KEYWORD,
        "min_severity": _KEYWORD,
        "format": _KEYWORD,
        "digest": {"type": "boolean"},
        "created_at": {"type": "date"},
        "description": {"type": "text"},
    },
}


class Webhook(BaseModel):
    """A registered receiver of alerts, as stored in the webhooks index."""

    model_config = ConfigDict(extra="ignore")

    id: str
    url: str
    secret: str = Field(..., repr=False)  # never in a repr, so never in a log line
    brands: list[str] = Field(default_factory=list, description="Brand ids it wants; empty = every brand.")
    min_severity: Threshold = "low"
    format: WebhookFormat = "json"
    digest: bool = Field(True, description="Receive the digest of incidents that opened below its threshold.")
    created_at: datetime
    description: str | None = None


def alert_matches(alert: dict[str, Any], brands: Collection[str], min_severity: str | int) -> bool:
    """Whether an alert passes a brand filter (empty = all brands) and a minimum severity (a band
    name or a 1..10 score)."""
    if brands and alert["brand"] not in brands:
        return False
    return alert_level(alert) >= level(min_severity)


def wants(hook: Webhook, alert: dict[str, Any]) -> bool:
    """Whether ``hook`` is sent ``alert``: one of its brands (or any) and at least its severity."""
    return alert_matches(alert, hook.brands, hook.min_severity)


PAGED_CHANGES = frozenset({"opened", "escalated", "reopened"})


def route(hook: Webhook, alert: dict[str, Any], floor: str | int = 1) -> Literal["page", "digest"] | None:
    """What ``hook`` gets for this alert version: a page, a digest entry, or nothing.

    ``floor`` is the deployment's lowest pushed severity (EARSHOT_ALERT_MIN_SEVERITY). Versions
    written before paging existed (no ``paging``) page as they did: by change and severity.
    """
    if hook.brands and alert["brand"] not in hook.brands:
        return None
    change, score = alert.get("last_change"), alert_level(alert)
    if score < level(floor) and change != "resolved":
        return None  # below what the deployment pushes at all: the API and SSE only
    threshold = max(level(hook.min_severity), level(floor))
    paging = alert.get("paging")
    if paging is None:
        return "page" if change in PAGED_CHANGES | {"resolved"} and score >= threshold else None
    if change == "resolved":
        paged = paging.get("paged_score")
        return "page" if paged is not None and paged >= threshold else None
    if change not in PAGED_CHANGES:
        return None
    if paging.get("page") and score >= threshold:
        return "page"
    if change in ("opened", "reopened") and paging.get("reason") != "quiet_period" and hook.digest:
        return "digest"
    return None


def digest_entry(alert: dict[str, Any]) -> dict[str, Any]:
    """What a digest lists of an incident."""
    explanation = alert.get("explanation") or {}
    return {"id": alert["id"], "brand": alert["brand"], "severity": alert["severity"],
            "severity_score": alert_level(alert), "status": alert["status"],
            "signals": [s["signal"] for s in alert.get("signals") or []] or [alert["signal"]],
            "started_at": alert["started_at"], "updated_at": alert["updated_at"],
            "summary": explanation.get("summary"),
            "phrases": [t["term"] for t in (explanation.get("phrases") or [])[:5]]}


class DigestBook:
    """Per hook, the incidents that opened below its threshold since its last digest. Pure: the
    caller feeds it every alert version (``note``) and asks for what is due (``take``)."""

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, dict[str, Any]]] = {}  # hook id -> alert id -> entry

    def note(self, hook: Webhook, alert: dict[str, Any], floor: str | int = 1) -> Literal["page", "digest"] | None:
        """Route ``alert`` for ``hook`` and keep the digest up to date; return the route."""
        decision = route(hook, alert, floor)
        entries = self.pending.setdefault(hook.id, {})
        if decision == "digest" or (decision is None and alert["id"] in entries):
            entries[alert["id"]] = digest_entry(alert)  # newest state of a listed incident
        elif decision == "page":
            entries.pop(alert["id"], None)  # paged after all: it is no digest's business any more
        return decision

    def take(self) -> dict[str, list[dict[str, Any]]]:
        """The digests due now (hook id -> incidents, oldest first), emptied."""
        due = {hook_id: sorted(entries.values(), key=lambda e: e["started_at"])
               for hook_id, entries in self.pending.items() if entries}
        self.pending = {}
        return due


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Earshot-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance_s`` seconds
    of ``now`` (unix seconds). Several ``v1`` values are allowed (a receiver rotating secrets)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    # compare_digest on every candidate (no early exit): the timing says nothing about the secret
    return any([hmac.compare_digest(expected.encode("ascii"), c.encode("ascii", "replace")) for c in candidates])


def backoff_delays(max_attempts: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> list[float]:
    """Seconds to wait after each failed attempt but the last: ``max_attempts - 1`` delays, the
    n-th uniform in [0, min(cap_s, base_s * 2^(n-1))] (exponential backoff, full jitter)."""
    return [backoff_delay(n, base_s=base_s, cap_s=cap_s, rng=rng) for n in range(1, max_attempts)]


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def payload(alert: dict[str, Any], fmt: WebhookFormat) -> bytes:
    """The request body (UTF-8 JSON) for ``alert``: ``json`` = ``{"type": "alert", "alert": ...}``,
    ``slack`` = a Slack incoming-webhook message (``text`` fallback plus Block Kit ``blocks``)."""
    message = {"type": "alert", "alert": alert} if fmt == "json" else slack_message(alert)
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def digest_payload(entries: list[dict[str, Any]], start: datetime, end: datetime, fmt: WebhookFormat) -> bytes:
    """The digest body: ``json`` = ``{"type": "digest", "period": {start, end}, "incidents": [...]}``,
    ``slack`` = one Slack message listing them."""
    period = {"start": start.isoformat(), "end": end.isoformat()}
    message = ({"type": "digest", "period": period, "incidents": entries} if fmt == "json"
               else slack_digest(entries, period))
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def slack_digest(entries: list[dict[str, Any]], period: dict[str, str]) -> dict[str, Any]:
    title = f"earshot digest: {len(entries)} incident(s) below the paging threshold"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    for e in entries[:40]:  # Slack allows 50 blocks a message
        line = (f"*{_escape(e['brand'])}* {e['severity_score']}/10 {e['severity']} · {', '.join(e['signals'])}"
                f" · {e['status']} since {e['started_at']}")
        if e.get("summary"):
            line += "\n" + _escape(e["summary"][:600])
        blocks.append(_section(line))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                                                    "text": f"{period['start']} – {period['end']}"}]})
    return {"text": title, "blocks": blocks}


def _escape(text: str) -> str:
    # Slack mrkdwn treats these three as control characters; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _per(bucket_s: int) -> str:
    if bucket_s % 3600 == 0:
        return f"{bucket_s // 3600} h"
    return f"{bucket_s // 60} min" if bucket_s % 60 == 0 else f"{bucket_s} s"


def observed_vs_expected(alert: dict[str, Any]) -> str:
    """E.g. ``"42 mentions per 5 min vs 6.1 expected"`` or ``"38% negative vs 12% expected"``."""
    if alert["signal"] == "negative":  # a share 0..1
        return f"{alert['observed']:.0%} negative vs {alert['expected']:.0%} expected"
    what = {"volume": "mentions", "complaint": "complaints", "risk": "risk mentions"}[alert["signal"]]
    per = _per(alert["window"]["bucket_s"])
    return f"{alert['observed']:g} {what} per {per} vs {alert['expected']:.1f} expected"


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def slack_message(alert: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook body: brand, signal, severity, status, observed vs expected, the top
    terms, the most engaged mention and the teams it is routed to."""
    scored = f" {alert['severity_score']}/10" if alert.get("severity_score") else ""
    title = f"{alert['severity'].upper()}{scored} {alert['signal']} alert: {alert['brand']} ({alert['status']})"
    signals = ", ".join(s["signal"] for s in alert.get("signals") or []) or alert["signal"]
    fields = [("Brand", alert["brand"]), ("Signal", signals), ("Severity", alert["severity"] + scored),
              ("Status", alert["status"]), ("Observed", observed_vs_expected(alert)),
              ("Teams", ", ".join(alert.get("teams") or []) or "none")]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},  # Slack's header limit
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{_escape(value)}"}
                                       for name, value in fields]},
    ]
    explanation = alert.get("explanation") or {}
    if explanation.get("summary"):
        blocks.append(_section(_escape(explanation["summary"][:2900])))  # Slack's section limit is 3000
    terms = [t["term"] for t in explanation.get("phrases") or alert.get("terms") or []][:8]
    if terms:
        blocks.append(_section("*Top terms:* " + ", ".join(f"`{_escape(t)}`" for t in terms)))
    hashtags = [t["term"] for t in explanation.get("hashtags") or []][:5]
    if hashtags:
        blocks.append(_section("*Hashtags:* " + ", ".join(_escape(t) for t in hashtags)))
    for top in (alert.get("mentions") or [])[:3]:
        text = top["text"] if len(top["text"]) <= 300 else top["text"][:299] + "…"
        by = f"@{top['author']}" if top.get("author") else "someone"
        link = f" · <{_escape(top['url'])}|open>" if top.get("url") else ""
        copies = f" · {top['copies']} copies" if top.get("copies", 1) > 1 else ""
        blocks.append(_section(f"> {_escape(text)}\n{_escape(by)}, {top.get('engagement', 0)} engagements"
                               f"{copies}{link}"))
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": f"alert `{alert['id']}` v{alert['version']}"}]})
    return {"text": f"{title}: {observed_vs_expected(alert)}", "blocks": blocks}
