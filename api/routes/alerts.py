"""Alerts: list and read them, acknowledge and resolve them, follow them live (Server-Sent Events).

An alert is one incident per brand and crisis (``pipeline/alerts/records.py``): its ``signals``,
its 1..10 ``severity_score`` with ``severity_parts``, its ``explanation`` and ``paging``. The same
document is listed here, streamed, and posted to webhooks.

Acknowledging and resolving are the people's side of an alert (``pipeline/alerts/state.py``):
each stores the next ``version`` and publishes it to the alerts topic, so SSE clients and
webhooks hear about it like any detector change. If Kafka is down the change is still stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.alert_feed import AlertFeed
from api.alert_publisher import AlertPublisher
from api.cursor import decode_cursor, encode_cursor
from api.auth.scopes import ALERTS_READ, ALERTS_WRITE
from api.deps import get_alert_feed, get_alert_publisher, get_app_settings, get_es, require
from api.errors import errors
from api.queries import AlertFilter, BadQuery, UtcTime, alert_search_body
from api.routes.mentions import BRAND_ID
from pipeline.alerts.sink import change_alert
from pipeline.alerts.state import acknowledged, resolved
from pipeline.alerts.records import SEVERITIES, Alert, AlertStatus, Signal
from pipeline.settings import Settings
from pipeline.alerts.severity import level

router = APIRouter(tags=["alerts"])
log = logging.getLogger("earshot.api.alerts")
READ, WRITE = [Depends(require(ALERTS_READ))], [Depends(require(ALERTS_WRITE))]
ALERT_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from closing an idle stream, s


class AlertPage(BaseModel):
    total: int = Field(..., description="Alerts matching the filters (all pages).")
    alerts: list[Alert]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.")


class AlertAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(None, min_length=1, max_length=128, description="Who; 'anonymous' when absent.")
    note: str | None = Field(None, max_length=2000, description="Stored with the change (the last note wins).")


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _severities(values: list[str]) -> tuple[str, ...]:
    wanted = _split(values)
    unknown = [v for v in wanted if v not in SEVERITIES]
    if unknown:
        raise BadQuery(f"severity must be one of {', '.join(SEVERITIES)}; got {', '.join(unknown)}")
    return tuple(wanted)


def _brands(values: list[str]) -> frozenset[str]:
    brands = _split(values)
    bad = [b for b in brands if not re.match(BRAND_ID, b)]
    if bad:
        raise BadQuery(f"brand must be a brand id (lowercase letters, digits, _ and -); got {', '.join(bad)}")
    return frozenset(brands)


@router.get("/alerts", response_model=AlertPage, summary="List alerts, newest updated first", dependencies=READ)
async def list_alerts(
    brand: str | None = Query(None, pattern=BRAND_ID, description="Brand id from brands.yaml"),
    status: AlertStatus | None = None,
    severity: list[str] = Query([], description="Exact severities: repeat or comma-separate, e.g. high,critical"),
    signal: Signal | None = None,
    since: UtcTime | None = Query(None, alias="from", description="updated_at >= this (ISO 8601)"),
    until: UtcTime | None = Query(None, alias="to", description="updated_at < this (ISO 8601)"),
    size: int = Query(20, ge=1, description="Page size, at most EARSHOT_API_MAX_PAGE_SIZE"),
    cursor: str | None = Query(None, max_length=1000),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> AlertPage:
    if size > settings.api_max_page_size:
        raise HTTPException(422, f"invalid request: size: must be at most {settings.api_max_page_size}")
    if since and until and until <= since:
        raise BadQuery("'from' must be before 'to'")
    filters = AlertFilter(brand=brand, status=status, severities=_severities(severity), signal=signal,
                          since=since, until=until)
    body = alert_search_body(filters, size, decode_cursor(cursor) if cursor else None)
    # Before the first alert (or while the worker has not created the index) that is an empty list.
    response = await es.search(index=settings.alerts_index, ignore_unavailable=True, allow_no_indices=True, **body)
    hits = response["hits"]["hits"]
    return AlertPage(total=response["hits"]["total"]["value"], alerts=[Alert(**hit["_source"]) for hit in hits],
                     next_cursor=encode_cursor(hits[-1]["sort"]) if len(hits) == size else None)


@router.get("/alerts/stream", summary="Follow alerts live (Server-Sent Events)", response_class=StreamingResponse,
            dependencies=READ,
            description="One `alert` event per alert change: `id: <alert id>:<version>`, `data: <alert JSON>`; "
            f"a `: keep-alive` comment every {KEEPALIVE_S:g} s. Live only: list past alerts with GET /v1/alerts. "
            "A client that falls too far behind is disconnected and should reconnect.")
async def stream_alerts(
    request: Request,
    brand: list[str] = Query([], description="Brand ids: repeat or comma-separate; none = every brand"),
    min_severity: str = Query("low", pattern=r"^(low|medium|high|critical|[1-9]|10)$",
                              description="Lowest severity sent: a band name or a score 1..10"),
    feed: AlertFeed = Depends(get_alert_feed),
    settings: Settings = Depends(get_app_settings),
) -> StreamingResponse:
    # Nothing below the severity the deployment pushes at all (EARSHOT_ALERT_MIN_SEVERITY).
    floor = max(level(min_severity), level(settings.alert_min_severity))
    events = _events(request, feed, _brands(brand), floor)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def sse_event(alert: dict[str, Any]) -> str:
    """One SSE ``alert`` event; the JSON is one line, so one ``data:`` field holds it."""
    data = json.dumps(alert, ensure_ascii=False, separators=(",", ":"))
    return f"id: {alert['id']}:{alert['version']}\nevent: alert\ndata: {data}\n\n"


async def _events(request: Request, feed: AlertFeed, brands: frozenset[str], min_severity: int) -> AsyncIterator[str]:
    sub = feed.subscribe(brands, min_severity)
    try:
        yield ": connected\n\n"  # sends the headers now, so the client knows it is subscribed
        while True:
            try:
                alert = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if alert is None:  # dropped by the feed for reading too slowly
                return
            yield sse_event(alert)
    finally:  # client gone, dropped or server stopping: nothing of this client stays behind
        feed.unsubscribe(sub)


@router.get("/alerts/{alert_id}", response_model=Alert, summary="One alert", dependencies=READ, responses=errors(404))
async def get_alert(
    alert_id: str = Path(..., pattern=ALERT_ID),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Alert:
    found = await es.options(ignore_status=404).get(index=settings.alerts_index, id=alert_id)
    if not found.get("found"):
        raise HTTPException(404, f"no alert with id {alert_id!r}")
    return Alert(**found["_source"])


class AlertChanges:
    """Applies a person's change to an alert: stores it, then publishes the new version."""

    def __init__(self, es: AsyncElasticsearch = Depends(get_es), settings: Settings = Depends(get_app_settings),
                 publisher: AlertPublisher = Depends(get_alert_publisher)):
        self.es, self.settings, self.publisher = es, settings, publisher

    async def apply(self, alert_id: str, what: str, action: AlertAction | None,
                    change: Callable[..., dict[str, Any] | None]) -> Alert:
        by = action.by if action and action.by else "anonymous"
        note = action.note if action else None
        result = await change_alert(self.es, self.settings, alert_id,
                                    lambda stored: change(stored, by, datetime.now(timezone.utc), note))
        if result is None:
            raise HTTPException(404, f"no alert with id {alert_id!r}")
        document, changed = result
        if changed:
            log.info("alert %s %s by %s (v%d)", alert_id, what, by, document["version"])
            await self.publisher.publish(document)
        return Alert(**document)


@router.post("/alerts/{alert_id}/ack", response_model=Alert, summary="Acknowledge an alert (idempotent)",
             dependencies=WRITE, responses=errors(404, 409, 413))
async def acknowledge_alert(
    alert_id: str = Path(..., pattern=ALERT_ID),
    action: AlertAction | None = Body(None),
    changes: AlertChanges = Depends(),
) -> Alert:
    return await changes.apply(alert_id, "acknowledged", action, acknowledged)


@router.post("/alerts/{alert_id}/resolve", response_model=Alert, summary="Resolve an alert (idempotent)", dependencies=WRITE,
             responses=errors(404, 409, 413),
             description="Marks it resolved by a person: later detector updates keep it resolved.")
async def resolve_alert(
    alert_id: str = Path(..., pattern=ALERT_ID),
    action: AlertAction | None = Body(None),
    changes: AlertChanges = Depends(),
) -> Alert:
    return await changes.apply(alert_id, "resolved", action, resolved)
