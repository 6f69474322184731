"""Triage of routed mentions: each mention's state, the actions people take on it, the KPIs. Pure.

A team works the mentions routed to it (``teams`` on the enriched mention, ``pipeline/enrich/routing.py``).
What people did lives in one document per mention in ``<prefix>-triage`` (``_id`` = mention id):
``status`` new -> assigned -> responded -> resolved, the assignee, when it was first answered and
resolved, and the history of actions (who = the API key's name, when, note). A mention nobody
touched has no document: it is ``new``.

A handover moves a mention to another team's queue with a reason (the switchboard case: a post
routed to care that belongs to PR): ``teams`` on the document is then the team it was handed
to, ``routed_teams`` what the router chose, and the mention stays tracked there until resolved.

The document also keeps a copy of the mention's facts that the KPIs filter on (teams,
``created_at``, spam score, ``duplicate_of``), refreshed on every action, so the KPIs are a few
``count`` requests on each index plus one aggregation, never a join (see ``kpis``).

Times are timezone-aware UTC datetimes; durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

Status = Literal["new", "assigned", "responded", "resolved"]
STATUSES: tuple[str, ...] = ("new", "assigned", "responded", "resolved")
AWAITING: tuple[str, ...] = ("new", "assigned")  # awaiting a response: what a team's queue shows
HANDLED: tuple[str, ...] = ("responded", "resolved")
UNANSWERED_AFTER_S = 72 * 3600  # "share unanswered after 72 h"
MAX_HISTORY = 200  # actions kept per mention; older ones are dropped (the audit log keeps all)
RESPONSE_SKEW_S = 300  # a responded_at may be this far in the future (clock skew), s

_KEYWORD = {"type": "keyword", "ignore_above": 512}
TRIAGE_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "mention_id": _KEYWORD,
        "teams": _KEYWORD,  # the teams working it now: routed_teams, or the team it was handed over to
        "routed_teams": _KEYWORD,  # the mention's teams, as the router chose them
        "handed_over": {"type": "boolean"},
        "created_at": {"type": "date"},  # the mention's publication time
        "spam_score": {"type": "float"},
        "duplicate_of": _KEYWORD,
        "status": _KEYWORD,
        "assignee": _KEYWORD,
        "first_response_at": {"type": "date"},
        "first_response_s": {"type": "double"},  # first_response_at - created_at
        "resolved_at": {"type": "date"},
        "handled_s": {"type": "double"},  # to the first response or resolution, whichever came first
        "updated_at": {"type": "date"},
        "version": {"type": "integer"},
        "history": {"type": "object", "enabled": False},  # read back, never searched
    },
}


class TriageRefused(Exception):
    """The action does not apply to the mention's current state (the API answers 409)."""


class InvalidAction(ValueError):
    """The action's own values are wrong, e.g. a response before the post (the API answers 422)."""


class StaleVersion(TriageRefused):
    """The caller saw an older version than the one stored (the API answers 409)."""


@dataclass(frozen=True)
class Action:
    """What a person did: ``kind`` assign/respond/resolve/handover, ``by`` the API key's name, ``at`` now.

    ``responded_at`` (respond only) is when the reply went out, if not now; ``reply_url`` (respond
    only) links the reply; ``team`` and ``reason`` (handover only) say where the mention goes and
    why; ``expected_version`` is the version the caller last saw (None: apply to whatever is stored)."""

    kind: Literal["assign", "respond", "resolve", "handover"]
    by: str
    at: datetime
    note: str | None = None
    assignee: str | None = None
    responded_at: datetime | None = None
    expected_version: int | None = None
    reply_url: str | None = None
    team: str | None = None
    reason: str | None = None


def mention_facts(mention: dict[str, Any]) -> dict[str, Any]:
    """The fields of an enriched mention (ES ``_source``) that a triage document copies."""
    spam = mention.get("spam") or {}
    return {"mention_id": mention["id"], "teams": list(mention.get("teams") or []),
            "routed_teams": list(mention.get("teams") or []), "created_at": mention["created_at"], "spam_score": spam.get("score"),
            "duplicate_of": mention.get("duplicate_of")}


def untouched(mention: dict[str, Any]) -> dict[str, Any]:
    """The state of a mention nobody acted on yet (version 0, no document stored)."""
    return {**mention_facts(mention), "status": "new", "assignee": None, "first_response_at": None,
            "first_response_s": None, "resolved_at": None, "handled_s": None, "updated_at": None,
            "version": 0, "history": [], "handed_over": False}


def awaiting(state: dict[str, Any] | None) -> bool:
    """Is the mention still waiting for a response (no document, or new/assigned)?"""
    return state is None or state.get("status") in AWAITING


def _time(value: str | datetime) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _seconds_since_created(state: dict[str, Any], when: datetime) -> float:
    return max(0.0, (when - _time(state["created_at"])).total_seconds())


def apply(stored: dict[str, Any] | None, mention: dict[str, Any], action: Action) -> dict[str, Any] | None:
    """The triage document after ``action``, or None when it changes nothing (a repeated request).

    ``stored`` is the stored document (None if there is none), ``mention`` the mention's ``_source``.
    Rules: assign sets the assignee (new/assigned become assigned; a responded mention keeps its
    status); respond records the first response once (later ones only add their note to the
    history); resolve closes the mention. A resolved mention takes no more actions but a repeated
    resolve. Raises ``StaleVersion`` or ``TriageRefused`` (both: 409), or ``InvalidAction`` (422)."""
    state = {**(stored or untouched(mention)), **mention_facts(mention)}  # facts refreshed each time
    if stored and stored.get("handed_over"):  # ...but a handover's team stays until another handover
        state["teams"] = list(stored["teams"])
    version = int(state.get("version") or 0)
    if action.expected_version is not None and action.expected_version != version:
        raise StaleVersion(f"mention {state['mention_id']} is at version {version}, "
                           f"not {action.expected_version}: read it again")
    status = state["status"]
    if status == "resolved":
        if action.kind == "resolve":
            return None
        raise TriageRefused(f"mention {state['mention_id']} is resolved; it takes no more {action.kind} actions")
    entry: dict[str, Any] = {"action": action.kind, "by": action.by, "at": action.at.isoformat()}
    if action.kind == "assign":
        if not action.assignee:
            raise InvalidAction("assign needs an assignee")
        if state["assignee"] == action.assignee and status != "new" and not action.note:
            return None
        state["assignee"] = action.assignee
        state["status"] = "assigned" if status in AWAITING else status
        entry["assignee"] = action.assignee
    elif action.kind == "respond":
        when = action.responded_at or action.at
        if state["first_response_at"] is not None:
            if not action.note:
                return None  # the first response is recorded once; a retry changes nothing
        else:
            created = _time(state["created_at"])
            if when < created:
                raise InvalidAction(f"responded_at {when.isoformat()} is before the mention was published "
                                 f"({created.isoformat()})")
            if when > action.at + timedelta(seconds=RESPONSE_SKEW_S):
                raise InvalidAction(f"responded_at {when.isoformat()} is in the future")
            state["first_response_at"] = when.isoformat()
            state["first_response_s"] = _seconds_since_created(state, when)
        state["status"] = "responded"
        entry["responded_at"] = when.isoformat()
        if action.reply_url:
            entry["reply_url"] = action.reply_url
    elif action.kind == "resolve":
        state["status"] = "resolved"
        state["resolved_at"] = action.at.isoformat()
    elif action.kind == "handover":
        if not action.team or not (action.reason or "").strip():
            raise InvalidAction("a handover needs a team and a reason")
        if state["teams"] == [action.team]:
            return None  # already there: a repeated request
        entry.update({"from_teams": list(state["teams"]), "team": action.team, "reason": action.reason.strip()})
        state["teams"] = [action.team]
        state["handed_over"] = True
        if status in AWAITING:  # the new team picks it up afresh
            state["status"], state["assignee"] = "new", None
    else:  # pragma: no cover - Action.kind is a Literal
        raise ValueError(f"unknown action {action.kind!r}")
    if state["handled_s"] is None and state["status"] in HANDLED:
        done = state["first_response_at"] or state["resolved_at"]
        state["handled_s"] = _seconds_since_created(state, _time(done))
    if action.note:
        entry["note"] = action.note
    state["history"] = (list(state.get("history") or []) + [entry])[-MAX_HISTORY:]
    state["updated_at"] = action.at.isoformat()
    state["version"] = version + 1
    return state


# -- queries -------------------------------------------------------------------------------------------

QUEUE_SORT: list[dict[str, Any]] = [
    {"priority": {"order": "desc", "missing": 0}},  # most urgent first
    {"created_at": {"order": "asc"}},  # then the longest waiting
    {"id": {"order": "asc"}},  # ids are unique: a total order, so cursors never skip or repeat
]


def noise_clauses(spam_field: str, spam_threshold: float | None, duplicates: bool = False) -> list[dict[str, Any]]:
    """Leave out spam (score >= threshold; None keeps it) and copies (``duplicate_of`` set) unless
    ``duplicates``. A mention with no spam score (indexed before scoring) stays in."""
    must_not: list[dict[str, Any]] = [] if duplicates else [{"exists": {"field": "duplicate_of"}}]
    if spam_threshold is not None:
        must_not.append({"range": {spam_field: {"gte": spam_threshold}}})
    return [{"bool": {"must_not": must_not}}] if must_not else []


def created_range(since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """[since, until) on ``created_at`` (both indices name the mention's publication time so)."""
    rng = {k: v.isoformat() for k, v in (("gte", since), ("lt", until)) if v is not None}
    return [{"range": {"created_at": rng}}] if rng else []


def team_mentions_query(team: str, spam_threshold: float | None, since: datetime | None = None,
                        until: datetime | None = None, duplicates: bool = False) -> dict[str, Any]:
    """Mentions routed to ``team`` created in [since, until), spam and copies left out (see
    ``noise_clauses``: ``spam_threshold`` None keeps spam, ``duplicates`` keeps copies)."""
    return {"bool": {"filter": [{"term": {"teams": team}}, *created_range(since, until),
                                *noise_clauses("spam.score", spam_threshold, duplicates)]}}


def team_queue_query(team: str, spam_threshold: float | None, duplicates: bool = False,
                     handed_in: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Candidates for ``team``'s queue: mentions routed to it or handed over to it (``handed_in``
    ids), spam and copies left out as in ``team_mentions_query``. Those handed away from the team
    are dropped by the caller, which reads each candidate's triage state anyway."""
    routed: list[dict[str, Any]] = [{"term": {"teams": team}}]
    if handed_in:
        routed.append({"ids": {"values": list(handed_in)}})
    return {"bool": {"filter": [{"bool": {"should": routed, "minimum_should_match": 1}},
                                *noise_clauses("spam.score", spam_threshold, duplicates)]}}


def handed_in_query(team: str) -> dict[str, Any]:
    """Triage documents of mentions handed over to ``team`` and still awaiting a response."""
    return {"bool": {"filter": [{"term": {"teams": team}}, {"term": {"handed_over": True}},
                                {"terms": {"status": list(AWAITING)}}]}}


def handover_aggregations(team: str, windows: KpiWindows) -> dict[str, Any]:
    """Over handed-over triage documents created in the window: those handed away from ``team``
    (routed to it, worked elsewhere) and those handed to it (routed elsewhere), each also counted
    over the SLA and 72 h windows, so that the mentions-index counts can be corrected."""
    def counted(flt: dict[str, Any]) -> dict[str, Any]:
        return {"filter": flt, "aggs": {
            "sla_due": {"filter": {"bool": {"filter": created_range(windows.since, windows.sla_due_until)}}},
            "answer_due": {"filter": {"bool": {"filter": created_range(windows.since, windows.answer_due_until)}}}}}

    return {
        "handed_out": counted({"bool": {"filter": [{"term": {"routed_teams": team}}],
                                        "must_not": [{"term": {"teams": team}}]}}),
        "handed_in": counted({"bool": {"filter": [{"term": {"teams": team}}],
                                       "must_not": [{"term": {"routed_teams": team}}]}}),
    }


def team_triage_query(team: str, spam_threshold: float, since: datetime | None, until: datetime | None,
                      *extra: dict[str, Any]) -> dict[str, Any]:
    """Triage documents of the mentions ``team_mentions_query`` counts (same filters, on the copies)."""
    return {"bool": {"filter": [{"term": {"teams": team}}, *created_range(since, until),
                                *noise_clauses("spam_score", spam_threshold), *extra]}}


# -- KPIs ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KpiWindows:
    """The created_at ranges each KPI counts over: mentions old enough to be judged."""

    since: datetime
    until: datetime
    sla_due_until: datetime  # created before this: the SLA has run out (until, or now - SLA)
    answer_due_until: datetime  # created before this: 72 h have passed

    @classmethod
    def at(cls, since: datetime, until: datetime, now: datetime, sla_s: float) -> KpiWindows:
        return cls(since, until, max(since, min(until, now - timedelta(seconds=sla_s))),
                   max(since, min(until, now - timedelta(seconds=UNANSWERED_AFTER_S))))


def kpi_aggregations(windows: KpiWindows, sla_s: float) -> dict[str, Any]:
    """Aggregations over a team's triage documents (already filtered to [since, until))."""
    return {
        "handled": {"filter": {"terms": {"status": list(HANDLED)}}},
        "responded": {"filter": {"exists": {"field": "first_response_s"}}, "aggs": {
            # ES sorts small samples exactly (linear interpolation between ranks); a t-digest beyond.
            "first_response": {"percentiles": {"field": "first_response_s", "percents": [50, 90]}}}},
        "handled_in_sla": {"filter": {"bool": {"filter": [
            *created_range(windows.since, windows.sla_due_until), {"range": {"handled_s": {"lte": sla_s}}}]}}},
        "answered_in_72h": {"filter": {"bool": {"filter": [
            *created_range(windows.since, windows.answer_due_until),
            {"range": {"first_response_s": {"lte": UNANSWERED_AFTER_S}}}]}}},
    }


@dataclass(frozen=True)
class KpiCounts:
    routed: int  # mentions routed to the team, created in [since, until)
    sla_due: int  # of those, created before sla_due_until
    answer_due: int  # of those, created before answer_due_until
    handled: int  # triage documents responded or resolved
    responded: int  # with a first response
    handled_in_sla: int  # of the sla_due ones, responded or resolved within the SLA
    answered_in_72h: int  # of the answer_due ones, first responded within 72 h
    median_s: float | None
    p90_s: float | None


def kpis(counts: KpiCounts, sla_s: float) -> dict[str, Any]:
    """The KPI figures from the counts. Differences are clamped at 0: a triage document whose
    mention is gone (a monthly index dropped by retention) must not make a count negative."""
    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    unanswered = max(0, counts.answer_due - counts.answered_in_72h)
    return {
        "routed": counts.routed,
        "responded": counts.responded,
        "first_response_median_s": counts.median_s,
        "first_response_p90_s": counts.p90_s,
        "backlog": max(0, counts.routed - counts.handled),
        "sla_s": sla_s,
        "sla_due": counts.sla_due,
        "sla_breaches": max(0, counts.sla_due - counts.handled_in_sla),
        "older_than_72h": counts.answer_due,
        "unanswered_72h": unanswered,
        "unanswered_72h_share": share(unanswered, counts.answer_due),
    }


def percentile(values: list[float], percent: float) -> float | None:
    """Linear interpolation between closest ranks (what ES's exact small-sample percentiles give)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = percent / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
