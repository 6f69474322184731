"""``GET /v1/audit``: the audit log (``api/audit.py``), newest first, for keys with ``audit:read`` (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.auth.scopes import AUDIT_READ, KEY_ID
from api.audit import audit_read_pattern
from api.cursor import decode_cursor, encode_cursor
from api.deps import get_app_settings, get_es, require
from api.queries import BadQuery, UtcTime, time_range
from pipeline.settings import Settings

router = APIRouter(tags=["audit"], dependencies=[Depends(require(AUDIT_READ))])


class AuditEntry(BaseModel):
    id: str
    time: datetime
    key_id: str | None = None
    key_name: str | None = None
    role: str | None = None
    via: str | None = Field(None, description="key, bootstrap, signature (signed ingest) or cli.")
    method: str
    route: str = Field(..., description="The route template, e.g. /v1/alerts/{alert_id}/ack.")
    path: str | None = None
    status: int
    outcome: str = Field(..., description="ok, error, unauthenticated, forbidden or rate_limited.")
    client_ip: str | None = None
    action: dict[str, Any] | None = Field(None, description="What a write changed (ids, counts).")


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: str | None = None


@router.get("/audit", response_model=AuditPage, summary="The audit log, newest first")
async def list_audit(
    key_id: str | None = Query(None, pattern=KEY_ID.pattern),
    role: str | None = Query(None, max_length=32),
    outcome: Literal["ok", "error", "unauthenticated", "forbidden", "rate_limited"] | None = None,
    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH", "CLI"] | None = None,
    since: UtcTime | None = Query(None, alias="from", description="time >= this (ISO 8601)"),
    until: UtcTime | None = Query(None, alias="to", description="time < this (ISO 8601)"),
    size: int = Query(50, ge=1),
    cursor: str | None = Query(None, max_length=1000),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> AuditPage:
    if size > settings.api_max_page_size:
        raise HTTPException(422, f"invalid request: size: must be at most {settings.api_max_page_size}")
    if since and until and until <= since:
        raise BadQuery("'from' must be before 'to'")
    filters: list[dict[str, Any]] = [{"term": {field: value}} for field, value in
                                     (("key_id", key_id), ("role", role), ("outcome", outcome), ("method", method))
                                     if value]
    filters += time_range("time", since, until)
    body: dict[str, Any] = {"size": size, "query": {"bool": {"filter": filters}},
                            "sort": [{"time": {"order": "desc"}}, {"id": {"order": "desc"}}]}
    if cursor:
        body["search_after"] = decode_cursor(cursor)
    response = await es.search(index=audit_read_pattern(settings), ignore_unavailable=True, allow_no_indices=True,
                               **body)
    hits = response["hits"]["hits"]
    return AuditPage(entries=[AuditEntry(**hit["_source"]) for hit in hits],
                     next_cursor=encode_cursor(hits[-1]["sort"]) if len(hits) == size else None)
