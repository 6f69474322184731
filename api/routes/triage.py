"""Triage: a team's queue of routed mentions awaiting a response, the actions on a mention, the KPIs.

Reading needs ``triage:read``, acting ``triage:write``. A key bound to teams (``earshot keys create
--teams``) reads and acts on those teams' queues only: another team's queue, KPIs or mention is a
403; it may hand a mention of its own over to any team. Each action is stored in ``<prefix>-triage``
(``api/triage_store.py``: conditional writes, so concurrent actions never overwrite each other) with
the API key's name as who did it, and noted on the request's audit entry.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth.scopes import TRIAGE_READ, TRIAGE_WRITE
from api.audit import note_action
from api.auth.guard import check_team, team_refusal
from api.deps import Principal, get_app_settings, get_es, require
from api.errors import errors
from api.queries import BadQuery, UtcTime
from api.triage_store import NotYourTeam, act, ensure_triage_layout, queue_page, team_kpis
from pipeline.schema import Author, Sentiment
from pipeline.settings import Settings
from pipeline.store.triage_state import AWAITING, Action, InvalidAction, Status, TriageRefused

TEAM_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_KPI_DAYS = 30


async def triage_layout(request: Request) -> None:
    """The triage index exists with its mapping before a route reads or writes it (once per process).
    Called in the handlers, after the key was checked: a refused caller creates nothing."""
    state = request.app.state
    if not getattr(state, "triage_layout_ready", False):
        await ensure_triage_layout(state.es, state.settings)  # ES down: raises, the client gets a 503
        state.triage_layout_ready = True


router = APIRouter(prefix="/triage", tags=["triage"])


class HistoryEntry(BaseModel):
    action: Literal["assign", "respond", "resolve", "handover"]
    by: str = Field(..., description="Name of the API key that acted.")
    at: datetime
    note: str | None = None
    assignee: str | None = None
    responded_at: datetime | None = None
    reply_url: str | None = Field(None, description="respond: the link to the reply.")
    team: str | None = Field(None, description="handover: the team it went to.")
    from_teams: list[str] | None = Field(None, description="handover: the teams that had it.")
    reason: str | None = Field(None, description="handover: why.")


class TriageState(BaseModel):
    mention_id: str
    teams: list[str] = Field(..., description="The teams working it: the routed ones, or the one it was handed to.")
    routed_teams: list[str] | None = Field(None, description="The teams the router chose.")
    handed_over: bool = False
    status: Status
    assignee: str | None = None
    first_response_at: datetime | None = None
    first_response_s: float | None = Field(None, description="Seconds from the post to its first response.")
    resolved_at: datetime | None = None
    updated_at: datetime | None = Field(None, description="Last action; null for a mention nobody touched.")
    version: int = Field(..., description="0 before the first action; send it back as `version` to act only "
                                          "if nobody acted since.")
    history: list[HistoryEntry] = Field(default_factory=list, description="Oldest first.")


class QueueMention(BaseModel):
    id: str
    source: str
    url: str | None = None
    text: str
    author: Author
    lang: str | None = None
    created_at: datetime
    sentiment: Sentiment | None = None
    purposes: list[str] = Field(default_factory=list)
    priority: float = Field(0.0, description="0..100 (pipeline/enrich/routing.py).")
    teams: list[str] = Field(default_factory=list)
    brands: list[str] = Field(default_factory=list)


class QueueItem(BaseModel):
    mention: QueueMention
    triage: TriageState


class QueuePageOut(BaseModel):
    team: str
    items: list[QueueItem]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for more; null when the queue is done. "
                                    "A page may be short and still have a cursor (see the description).")


class ActionResult(BaseModel):
    changed: bool = Field(..., description="False when the action was already done (a repeated request).")
    triage: TriageState


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)
    version: int | None = Field(None, ge=0, description="Act only if the state is still at this version (else 409).")


class AssignBody(_Body):
    assignee: str = Field(..., min_length=1, max_length=128)


class RespondBody(_Body):
    responded_at: datetime | None = Field(None, description="When the reply went out (ISO 8601); default now.")
    reply_url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$", description="Link to the reply.")


class HandoverBody(_Body):
    team: str = Field(..., pattern=TEAM_ID, description="The team that takes the mention over.")
    reason: str = Field(..., min_length=1, max_length=2000, description="Why it belongs there (kept in the history).")


class Kpis(BaseModel):
    team: str
    since: datetime = Field(..., alias="from", serialization_alias="from")
    until: datetime = Field(..., alias="to", serialization_alias="to")
    as_of: datetime
    routed: int = Field(..., description="Mentions routed to the team created in [from, to), spam and copies left out; "
                        "those handed over count for the team that has them.")
    responded: int = Field(..., description="Of those, how many have a first response.")
    first_response_median_s: float | None = Field(..., description="Median seconds from post to first response.")
    first_response_p90_s: float | None = Field(..., description="90th percentile of the same, s.")
    backlog: int = Field(..., description="Of the routed ones, those awaiting a response now (new or assigned).")
    sla_s: float = Field(..., description="The team's SLA, s (EARSHOT_TRIAGE_SLA_S, EARSHOT_TRIAGE_SLA_BY_TEAM).")
    sla_due: int = Field(..., description="Routed ones older than the SLA now (the ones that can have breached it).")
    sla_breaches: int = Field(..., description="Of those, not responded or resolved within the SLA.")
    older_than_72h: int = Field(..., description="Routed ones published more than 72 h ago.")
    unanswered_72h: int = Field(..., description="Of those, without a response within 72 h.")
    unanswered_72h_share: float | None = Field(..., description="unanswered_72h / older_than_72h, 0..1.")

    model_config = ConfigDict(populate_by_name=True)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@router.get("/{team}/queue", response_model=QueuePageOut, summary="A team's queue of mentions awaiting a response",
            description="Mentions routed to the team (`teams` contains it) that nobody has responded to or "
            "resolved, most urgent first (`priority` desc), then the longest waiting, then by id. Spam "
            "(`spam.score` >= EARSHOT_SPAM_THRESHOLD) and copies (`duplicate_of` set) are left out unless asked. "
            "Follow `next_cursor`: a page can be shorter than `limit` and still have one, when the request "
            "skipped many handled mentions.")
async def team_queue(
    request: Request,
    team: str = Path(..., pattern=TEAM_ID),
    status: Literal["new", "assigned"] | None = Query(None, description="Only this status; default both."),
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=1000),
    include_spam: bool = False,
    include_duplicates: bool = False,
    principal: Principal = Depends(require(TRIAGE_READ)),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> QueuePageOut:
    check_team(principal, team)
    await triage_layout(request)
    statuses = (status,) if status else AWAITING
    page = await queue_page(es, settings, team, statuses, limit, cursor, include_spam, include_duplicates)
    items = [QueueItem(mention=QueueMention(**mention), triage=TriageState(**state)) for mention, state in page.items]
    return QueuePageOut(team=team, items=items, next_cursor=page.next_cursor)


async def _act(request: Request, es: AsyncElasticsearch, settings: Settings, mention_id: str,
               action: Action, principal: Principal) -> ActionResult:
    await triage_layout(request)
    try:
        result = await act(es, settings, mention_id, action, may_work=principal.serves_any)
    except NotYourTeam as exc:
        raise team_refusal(principal, f"{exc}") from None
    except TriageRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidAction as exc:
        raise HTTPException(422, f"invalid request: {exc}") from None
    if result is None:
        raise HTTPException(404, f"no mention {mention_id!r} is stored")
    state, changed = result
    extra = {"team": action.team, "reason": action.reason} if action.kind == "handover" else {}
    note_action(request, mention_id=mention_id, triage_action=action.kind, status=state["status"],
                assignee=state.get("assignee"), version=state["version"], changed=changed, **extra)
    return ActionResult(changed=changed, triage=TriageState(**state))


MENTION_ID = Path(..., min_length=1, max_length=512, description="e.g. bluesky:3kabc")


@router.post("/mentions/{mention_id:path}/assign", response_model=ActionResult, summary="Assign a mention",
             responses=errors(404, 409, 413))
async def assign(
    request: Request,
    body: AssignBody,
    mention_id: str = MENTION_ID,
    principal: Principal = Depends(require(TRIAGE_WRITE)),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ActionResult:
    """Give the mention to `assignee` (status new/assigned -> assigned). Repeating it changes nothing."""
    action = Action("assign", principal.name, datetime.now(timezone.utc), body.note, assignee=body.assignee,
                    expected_version=body.version)
    return await _act(request, es, settings, mention_id, action, principal)


@router.post("/mentions/{mention_id:path}/respond", response_model=ActionResult, summary="Record a response",
             responses=errors(404, 409, 413))
async def respond(
    request: Request,
    body: RespondBody = Body(default_factory=RespondBody),
    mention_id: str = MENTION_ID,
    principal: Principal = Depends(require(TRIAGE_WRITE)),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ActionResult:
    """Status -> responded. The first response time is recorded once; a later call only adds its note."""
    action = Action("respond", principal.name, datetime.now(timezone.utc), body.note,
                    responded_at=_utc(body.responded_at) if body.responded_at else None, expected_version=body.version,
                    reply_url=body.reply_url)
    return await _act(request, es, settings, mention_id, action, principal)


@router.post("/mentions/{mention_id:path}/resolve", response_model=ActionResult, summary="Resolve a mention",
             responses=errors(404, 409, 413))
async def resolve(
    request: Request,
    body: _Body = Body(default_factory=_Body),
    mention_id: str = MENTION_ID,
    principal: Principal = Depends(require(TRIAGE_WRITE)),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ActionResult:
    """Close the mention (any status -> resolved); it leaves the queue. Repeating it changes nothing."""
    action = Action("resolve", principal.name, datetime.now(timezone.utc), body.note, expected_version=body.version)
    return await _act(request, es, settings, mention_id, action, principal)


@router.post("/mentions/{mention_id:path}/handover", response_model=ActionResult,
             summary="Hand a mention over to another team", responses=errors(404, 409, 413))
async def handover(
    request: Request,
    body: HandoverBody,
    mention_id: str = MENTION_ID,
    principal: Principal = Depends(require(TRIAGE_WRITE)),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ActionResult:
    """Move the mention to `team`'s queue with a reason (a post routed to care that belongs to PR, say): it
    leaves the queues of the teams that had it, awaits `team` as new and unassigned, and stays tracked there
    until resolved. Handing it to the team that already has it changes nothing. A team-bound key may hand
    over only a mention of its own teams, to any team."""
    action = Action("handover", principal.name, datetime.now(timezone.utc), body.note, team=body.team,
                    reason=body.reason, expected_version=body.version)
    return await _act(request, es, settings, mention_id, action, principal)


@router.get("/{team}/kpis", response_model=Kpis, response_model_by_alias=True, summary="A team's response KPIs",
            description="Over the mentions routed to the team and published in [from, to) (default: the last "
            f"{DEFAULT_KPI_DAYS} days), spam and copies left out: first-response time (median, p90), the backlog, "
            "SLA breaches and the share left unanswered after 72 h.")
async def kpis(
    request: Request,
    team: str = Path(..., pattern=TEAM_ID),
    since: UtcTime | None = Query(None, alias="from", description="created_at >= this (ISO 8601)"),
    until: UtcTime | None = Query(None, alias="to", description="created_at < this (ISO 8601); default now"),
    principal: Principal = Depends(require(TRIAGE_READ)),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Kpis:
    check_team(principal, team)
    now = datetime.now(timezone.utc)
    until = _utc(until) if until else now
    since = _utc(since) if since else until - timedelta(days=DEFAULT_KPI_DAYS)
    if until <= since:
        raise BadQuery("'from' must be before 'to'")
    await triage_layout(request)
    figures = await team_kpis(es, settings, team, since, until, now)
    return Kpis(team=team, since=since, until=until, as_of=now, **figures)
