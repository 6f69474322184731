"""Triage state in Elasticsearch: the index, conditional writes, a team's queue and its KPIs.

The thin shell around ``pipeline/store/triage_state.py``. Writes are read-modify-write with ``if_seq_no`` /
``if_primary_term`` (``create`` for a mention's first document), re-read and re-applied on a
conflict a few times, so two people acting on one mention at once both count or one gets a 409;
never a silent lost update. Reads of one mention's state use ``get``/``mget``, which are
real-time: the queue sees an action at once, without waiting for an index refresh.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, ConflictError

from api.cursor import BadCursor, encode_cursor
from pipeline.settings import Settings
from pipeline.store.triage_state import (QUEUE_SORT, TRIAGE_MAPPINGS, Action, KpiCounts, KpiWindows, TriageRefused, apply,
                                         created_range, handed_in_query, handover_aggregations, kpi_aggregations, kpis,
                                         noise_clauses, team_mentions_query, team_queue_query, team_triage_query,
                                         untouched)

CONFLICT_RETRIES = 5  # tries of a read-modify-write on one triage document before answering 409
QUEUE_SCAN_MAX = 5000  # candidate mentions one queue request looks at (bounds its cost)
SEARCHABLE_TRIES = 50  # 0.2 s apart: how long a new triage index may take to answer searches
HANDED_IN_MAX = 1000  # mentions handed over to a team and awaiting there, read per queue request
QUEUE_FIELDS = ["id", "source", "url", "text", "author", "lang", "created_at", "sentiment", "purposes", "priority",
                "teams", "brands", "spam", "duplicate_of"]


class TriageBusy(TriageRefused):
    """The document kept changing while we wrote it; the client may retry (409)."""


class NotYourTeam(Exception):
    """The mention is worked by teams the caller's key does not serve (the API answers 403)."""

    def __init__(self, mention_id: str, teams: list[str]):
        super().__init__(f"mention {mention_id} is in the queue of {', '.join(teams) or 'no team'}")
        self.teams = teams


async def ensure_triage_layout(es: AsyncElasticsearch, settings: Settings) -> None:
    """Create ``<prefix>-triage`` with its strict mapping, or add new fields to it. Idempotent."""
    try:
        await es.indices.create(index=settings.triage_index, mappings=TRIAGE_MAPPINGS, settings={
            "number_of_shards": settings.index_shards, "number_of_replicas": settings.index_replicas,
            "refresh_interval": settings.index_refresh_interval})
    except BadRequestError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        if (body.get("error") or {}).get("type") != "resource_already_exists_exception":
            raise
        await es.indices.put_mapping(index=settings.triage_index, properties=TRIAGE_MAPPINGS["properties"])
    # A search on a new index can fail with no_shard_available (503) for a moment after its primary is
    # started (seen under load); the queue searches it at once, so wait until a search succeeds.
    await es.cluster.health(index=settings.triage_index, wait_for_status="yellow", timeout="30s")
    for _ in range(SEARCHABLE_TRIES):
        try:
            await es.count(index=settings.triage_index)
            return
        except ApiError as exc:
            if exc.meta.status != 503:
                raise
            await asyncio.sleep(0.2)


async def find_mention(es: AsyncElasticsearch, settings: Settings, mention_id: str) -> dict[str, Any] | None:
    """The mention's ``_source`` (from whichever monthly index holds it), or None."""
    found = await es.search(index=settings.mentions_alias, query={"ids": {"values": [mention_id]}}, size=1,
                            ignore_unavailable=True, allow_no_indices=True, source_includes=QUEUE_FIELDS)
    hits = found["hits"]["hits"]
    return hits[0]["_source"] if hits else None


async def act(es: AsyncElasticsearch, settings: Settings, mention_id: str, action: Action,
              may_work: Callable[[list[str]], bool] = lambda teams: True) -> tuple[dict[str, Any], bool] | None:
    """Apply ``action`` to the mention's triage state: ``(state, changed)``, or None for an
    unknown mention. Raises ``NotYourTeam`` (403) when ``may_work`` refuses the teams now working
    the mention, ``TriageRefused``/``StaleVersion``/``TriageBusy`` (409) and ``InvalidAction``
    (422) from ``pipeline.store.triage_state.apply``."""
    mention = await find_mention(es, settings, mention_id)
    if mention is None:
        return None
    index = settings.triage_index
    for _ in range(CONFLICT_RETRIES):
        found = await es.options(ignore_status=404).get(index=index, id=mention_id)
        stored = found["_source"] if found.get("found") else None
        current = (stored or untouched(mention))["teams"]
        if not may_work(current):
            raise NotYourTeam(mention_id, current)
        state = apply(stored, mention, action)
        if state is None:
            return stored or untouched(mention), False
        # The receiving team's queue finds handed-over mentions by search, not by id: wait until it can.
        refresh = {"refresh": "wait_for"} if action.kind == "handover" else {}
        try:
            if stored is None:  # 409 if another writer created it first: re-read and re-apply
                await es.create(index=index, id=mention_id, document=state, **refresh)
            else:
                await es.index(index=index, id=mention_id, document=state,
                               if_seq_no=found["_seq_no"], if_primary_term=found["_primary_term"], **refresh)
        except ConflictError:
            continue
        return state, True
    raise TriageBusy(f"the triage state of {mention_id} is being changed by others right now; retry")


# -- the queue ----------------------------------------------------------------------------------------

def encode_queue_cursor(sort_values: list[Any]) -> str:
    return encode_cursor(sort_values)


def decode_queue_cursor(cursor: str) -> list[Any]:
    """``[priority, created_at ms, id]`` of the last item a queue page returned."""
    try:
        values = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        values = None
    if not (isinstance(values, list) and len(values) == 3 and isinstance(values[0], (int, float))
            and isinstance(values[1], int) and isinstance(values[2], str)):
        raise BadCursor("cursor is not valid: pass back the next_cursor of a previous queue page")
    return values


@dataclass(frozen=True)
class QueuePage:
    items: list[tuple[dict[str, Any], dict[str, Any]]]  # (mention _source, triage state)
    next_cursor: str | None


async def queue_page(es: AsyncElasticsearch, settings: Settings, team: str, statuses: tuple[str, ...], limit: int,
                     cursor: str | None, include_spam: bool = False, include_duplicates: bool = False) -> QueuePage:
    """Up to ``limit`` mentions routed to ``team`` whose status is one of ``statuses``, by
    priority (desc), then age (oldest first), then id.

    The mentions index knows the order, the triage index the status; ES cannot join them. So
    read candidates in order, a page at a time, ``mget`` their triage documents (real-time, by
    id) and keep the ones still awaiting; refill until the page is full. Handled mentions are
    skipped at the cost of reading them; ``QUEUE_SCAN_MAX`` caps that per request (a short page
    with a ``next_cursor`` then means "more may follow")."""
    query = team_queue_query(team, None if include_spam else settings.spam_threshold, include_duplicates,
                             await handed_in(es, settings, team))
    batch = min(max(2 * limit, 50), 500)
    search_after = decode_queue_cursor(cursor) if cursor else None
    items: list[tuple[dict[str, Any], dict[str, Any]]] = []
    scanned, last_sort, exhausted = 0, search_after, False
    while len(items) < limit and scanned < QUEUE_SCAN_MAX:
        kwargs = {"search_after": search_after} if search_after else {}
        response = await es.search(index=settings.mentions_alias, query=query, sort=QUEUE_SORT, size=batch,
                                   source_includes=QUEUE_FIELDS, track_total_hits=False,
                                   ignore_unavailable=True, allow_no_indices=True, **kwargs)
        hits = response["hits"]["hits"]
        states = await _states(es, settings, [hit["_id"] for hit in hits])
        taken = 0
        for hit in hits:
            taken += 1
            last_sort = hit["sort"]
            state = states.get(hit["_id"]) or untouched(hit["_source"])
            if state["status"] in statuses and team in state["teams"]:  # not handed away
                items.append((hit["_source"], state))
                if len(items) == limit:
                    break
        scanned += taken
        if len(hits) < batch and taken == len(hits):
            exhausted = True
            break
        search_after = last_sort
    return QueuePage(items, None if exhausted or last_sort is None else encode_queue_cursor(last_sort))


async def handed_in(es: AsyncElasticsearch, settings: Settings, team: str) -> list[str]:
    """Ids of mentions handed over to ``team`` that await a response there (up to ``HANDED_IN_MAX``)."""
    found = await es.search(index=settings.triage_index, query=handed_in_query(team), size=HANDED_IN_MAX,
                            source=False, track_total_hits=False)
    return [hit["_id"] for hit in found["hits"]["hits"]]


async def _states(es: AsyncElasticsearch, settings: Settings, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    found = await es.mget(index=settings.triage_index, ids=ids)
    return {doc["_id"]: doc["_source"] for doc in found["docs"] if doc.get("found")}


# -- KPIs ---------------------------------------------------------------------------------------------

def team_sla_s(settings: Settings, team: str) -> float:
    return settings.triage_sla_by_team.get(team, settings.triage_sla_s)


async def team_kpis(es: AsyncElasticsearch, settings: Settings, team: str, since: datetime, until: datetime,
                    now: datetime) -> dict[str, Any]:
    """The KPI figures of ``pipeline.store.triage_state.kpis`` for mentions created in [since, until), as of ``now``.

    Three ``count`` requests on the mentions (routed; old enough for the SLA; older than 72 h)
    and one aggregation on the triage documents of the same mentions (handled, responded with
    the percentiles of ``first_response_s``, handled within the SLA, answered within 72 h), and one
    over handed-over documents that moves those mentions from the routed team's counts to the team
    that has them: the cost does not grow with the number of mentions."""
    sla_s = team_sla_s(settings, team)
    windows = KpiWindows.at(since, until, now, sla_s)
    threshold = settings.spam_threshold

    async def routed(before: datetime) -> int:
        if before <= since:
            return 0
        found = await es.count(index=settings.mentions_alias, query=team_mentions_query(team, threshold, since, before),
                               ignore_unavailable=True, allow_no_indices=True)
        return found["count"]

    async def triaged() -> dict[str, Any]:
        found = await es.search(index=settings.triage_index, size=0, track_total_hits=False,
                                query=team_triage_query(team, threshold, since, until),
                                aggs=kpi_aggregations(windows, sla_s))
        return found["aggregations"]

    async def handovers() -> dict[str, Any]:
        query = {"bool": {"filter": [{"term": {"handed_over": True}}, *created_range(since, until),
                                     *noise_clauses("spam_score", threshold)]}}
        found = await es.search(index=settings.triage_index, size=0, track_total_hits=False, query=query,
                                aggs=handover_aggregations(team, windows))
        return found["aggregations"]

    total, sla_due, answer_due, aggs, moved = await asyncio.gather(
        routed(until), routed(windows.sla_due_until), routed(windows.answer_due_until), triaged(), handovers())

    def net(count: int, window: str | None) -> int:  # + handed in, - handed away
        inn, out = moved["handed_in"], moved["handed_out"]
        return max(0, count + (inn[window] if window else inn)["doc_count"] - (out[window] if window else out)["doc_count"])

    percentiles = aggs["responded"]["first_response"]["values"]
    counts = KpiCounts(routed=net(total, None), sla_due=net(sla_due, "sla_due"), answer_due=net(answer_due, "answer_due"), handled=aggs["handled"]["doc_count"],
                       responded=aggs["responded"]["doc_count"], handled_in_sla=aggs["handled_in_sla"]["doc_count"],
                       answered_in_72h=aggs["answered_in_72h"]["doc_count"],
                       median_s=percentiles.get("50.0"), p90_s=percentiles.get("90.0"))
    return kpis(counts, sla_s)
