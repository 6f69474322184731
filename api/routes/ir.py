"""Investor relations: what is said about the company as an investment (cashtags, investor talk)."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth.scopes import IR_READ
from api.analytics.bodies import ir_chatter_body, parse_facets
from api.cursor import decode_cursor, encode_cursor
from api.deps import get_app_settings, get_es, require
from api.queries import BadQuery, UtcTime
from api.routes.mentions import BRAND_ID, MentionHit
from pipeline.settings import Settings

router = APIRouter(tags=["investor relations"], dependencies=[Depends(require(IR_READ))])


class AuthorFacet(BaseModel):
    handle: str
    mentions: int = Field(..., description="Matching mentions by this author (all pages).")


class CashtagFacet(BaseModel):
    cashtag: str = Field(..., description="Upper-case, without '$'.")
    mentions: int


class ChatterPage(BaseModel):
    total: int = Field(..., description="Matching mentions (all pages).")
    hits: list[MentionHit] = Field(..., description="Newest first; `highlight` has matches in <mark>, HTML-escaped.")
    authors: list[AuthorFacet] = Field(..., description="Most active authors over all matches.")
    cashtags: list[CashtagFacet] = Field(..., description="Most frequent cashtags over all matches.")
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.")

    model_config = {"json_schema_extra": {"examples": [{
        "total": 2, "next_cursor": None,
        "hits": [{"id": "x:1", "source": "x", "text": "$UAL up 4% after the guidance beat",
                  "highlight": "$UAL up 4% after the <mark>guidance</mark> beat", "created_at": "2026-11-01T14:00:00Z",
                  "ingested_at": "2026-11-01T14:00:02Z", "brands": ["united"], "purposes": ["investor"],
                  "entities": {"handles": [], "hashtags": [], "cashtags": ["UAL"], "urls": []}}],
        "authors": [{"handle": "marketwatcher", "mentions": 2}],
        "cashtags": [{"cashtag": "UAL", "mentions": 2}],
    }]}}


@router.get(
    "/ir/chatter",
    response_model=ChatterPage,
    summary="Investor chatter: search mentions with the investor purpose or a cashtag",
    description="Free text (`q`, the simple query syntax of `/v1/mentions/search`) over mentions that have the "
    "`investor` purpose or any cashtag (`$UAL`), newest first, with highlights and author and cashtag facets. "
    "Follow `next_cursor` for more. Spam is left out unless `include_spam`.",
)
async def ir_chatter(
    q: str | None = Query(None, max_length=500, description="Free text; e.g. `guidance | earnings`"),
    brand: str | None = Query(None, pattern=BRAND_ID, description="Brand id from brands.yaml"),
    since: UtcTime | None = Query(None, alias="from", description="created_at >= this (ISO 8601)"),
    until: UtcTime | None = Query(None, alias="to", description="created_at < this (ISO 8601)"),
    include_spam: bool = Query(False, description="Keep mentions scored as spam (pump-and-dump bots)."),
    size: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=1000),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ChatterPage:
    if since and until and until <= since:
        raise BadQuery("'from' must be before 'to'")
    body = ir_chatter_body(q, brand, since, until, None if include_spam else settings.spam_threshold, size,
                           decode_cursor(cursor) if cursor else None)
    response = await es.search(index=settings.mentions_alias, ignore_unavailable=True, allow_no_indices=True, **body)
    raw_hits = response["hits"]["hits"]
    hits = []
    for hit in raw_hits:
        fragments = hit.get("highlight", {}).get("text")
        hits.append(MentionHit(**hit["_source"], highlight=fragments[0] if fragments else None))
    next_cursor = encode_cursor(raw_hits[-1]["sort"]) if len(raw_hits) == size else None
    return ChatterPage(total=response["hits"]["total"]["value"], hits=hits, next_cursor=next_cursor,
                       **parse_facets(response))
