"""Search enriched mentions: free text plus filters, newest first, cursor-paginated."""

from __future__ import annotations

from typing import Literal

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.cursor import decode_cursor, encode_cursor
from api.auth.scopes import MENTIONS_READ
from api.deps import get_app_settings, get_es, require
from api.queries import BadQuery, MentionFilter, UtcTime, search_body
from api.syntax import SyntaxProblem
from pipeline.listening.compile_es import to_es_query
from pipeline.listening.parser import MAX_QUERY_CHARS, QuerySyntaxError
from pipeline.schema import EnrichedMention
from pipeline.settings import Settings

router = APIRouter(tags=["mentions"], dependencies=[Depends(require(MENTIONS_READ))])

BRAND_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class MentionHit(EnrichedMention):
    highlight: str | None = Field(None, description="The text with matches in <mark>, HTML-escaped.")


class SearchPage(BaseModel):
    total: int = Field(..., description="Mentions matching the query (all pages).")
    hits: list[MentionHit]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.")


@router.get(
    "/mentions/search",
    response_model=SearchPage,
    summary="Search mentions",
    description="Free text (simple query syntax: `\"exact phrase\"`, `-exclude`, `a | b`, `prefix*`) "
    "and/or a listening query (`query`: AND/OR/NOT, NEAR/n, @handle, #tag, $CASH, lang:, source:, author:), "
    "combined with filters. Newest first; follow `next_cursor` for more.",
)
async def search_mentions(
    q: str | None = Query(None, max_length=500, description="Free text; e.g. `delayed -weather`"),
    query: str | None = Query(None, max_length=MAX_QUERY_CHARS,
                              description='Listening query; e.g. `@united AND (bag* NEAR/3 lost) NOT lang:es`'),
    tagged: str | None = Query(None, pattern=BRAND_ID, description="Only mentions the stream tagged with this stored query id"),
    brand: str | None = Query(None, pattern=BRAND_ID, description="Brand id from brands.yaml"),
    sentiment: Literal["negative", "neutral", "positive"] | None = None,
    lang: str | None = Query(None, pattern=r"^[a-z]{2,3}$", description="ISO 639 code, e.g. en"),
    source: str | None = Query(None, max_length=64),
    since: UtcTime | None = Query(None, alias="from", description="created_at >= this (ISO 8601)"),
    until: UtcTime | None = Query(None, alias="to", description="created_at < this (ISO 8601)"),
    size: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=1000),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> SearchPage:
    if since and until and until <= since:
        raise BadQuery("'from' must be before 'to'")
    try:
        listening = to_es_query(query) if query else None
    except QuerySyntaxError as exc:
        raise SyntaxProblem(exc) from None
    filters = MentionFilter(q=q, brand=brand, sentiment=sentiment, lang=lang, source=source, since=since, until=until,
                            listening=listening, tagged=tagged)
    body = search_body(filters, size, decode_cursor(cursor) if cursor else None)
    # Before the first mention is indexed the alias does not exist: that is an empty result.
    response = await es.search(index=settings.mentions_alias, ignore_unavailable=True, allow_no_indices=True, **body)
    hits = []
    for hit in response["hits"]["hits"]:
        fragments = hit.get("highlight", {}).get("text")
        hits.append(MentionHit(**hit["_source"], highlight=fragments[0] if fragments else None))
    raw_hits = response["hits"]["hits"]
    next_cursor = encode_cursor(raw_hits[-1]["sort"]) if len(raw_hits) == size else None
    return SearchPage(total=response["hits"]["total"]["value"], hits=hits, next_cursor=next_cursor)
