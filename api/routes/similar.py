"""More like this: the posts nearest to one post's sentence vector (ES kNN)."""

from __future__ import annotations

from datetime import datetime

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from api.auth.scopes import MENTIONS_READ
from api.analytics.stories import mention_vector_body, similar_body, similar_hits
from api.deps import get_app_settings, get_es, require
from api.errors import errors
from api.queries import BadQuery, UtcTime
from api.routes.market import Example
from api.routes.mentions import BRAND_ID
from pipeline.settings import Settings

router = APIRouter(tags=["mentions"], dependencies=[Depends(require(MENTIONS_READ))])

_SEARCH = {"ignore_unavailable": True, "allow_no_indices": True}


class SimilarPost(Example):
    similarity: float = Field(..., description="Cosine similarity to the post, -1..1 (1: the same meaning).")
    duplicate_of: str | None = Field(None, description="Set on a near-copy (only with include_duplicates).")


class Similar(BaseModel):
    id: str = Field(..., description="The post they are similar to.")
    brand: str | None
    since: datetime | None = Field(None, alias="from")
    until: datetime | None = Field(None, alias="to")
    similar: list[SimilarPost] = Field(..., description="Most similar first; never the post, its original or copies.")

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "id": "bluesky:3kabc", "brand": "united", "from": "2026-11-01T00:00:00Z", "to": None,
        "similar": [{"similarity": 0.91, "id": "x:1789", "text": "bag lost in denver again",
                     "created_at": "2026-11-07T22:40:00Z", "url": None, "author": {"handle": "kim", "followers": 80},
                     "sentiment": {"label": "negative"}, "duplicate_of": None}],
    }]}}


@router.get(
    "/mentions/{mention_id}/similar",
    response_model=Similar,
    response_model_by_alias=True,
    summary="More like this: the posts nearest in meaning to one post",
    description="Approximate kNN (HNSW, int8) on the stored sentence vectors, filtered by brand, time and spam inside "
    "the search. The post itself, the post it copies and that post's copies are left out; other near-copies too "
    "unless `include_duplicates`.",
    responses=errors(404),
)
async def similar_mentions(
    mention_id: str = Path(..., min_length=1, max_length=512),
    brand: str | None = Query(None, pattern=BRAND_ID, description="Only posts naming this brand"),
    since: UtcTime | None = Query(None, alias="from", description="created_at >= this"),
    until: UtcTime | None = Query(None, alias="to", description="created_at < this"),
    size: int = Query(10, ge=1, le=50),
    include_duplicates: bool = Query(False, description="Also list near-copies (retweets, pastes) of other posts"),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Similar:
    if since and until and until <= since:
        raise BadQuery("'from' must be before 'to'")
    found = (await es.search(index=settings.mentions_alias, **_SEARCH, **mention_vector_body(mention_id)))["hits"]["hits"]
    if not found:
        raise HTTPException(404, f"no mention with id {mention_id!r}")
    post = found[0]["_source"]
    if not post.get("embedding"):
        raise HTTPException(404, f"mention {mention_id!r} has no sentence vector (the models did not read it)")
    body = similar_body(post["embedding"], mention_id, post.get("duplicate_of"), brand, since, until,
                        settings.spam_threshold, size, include_duplicates)
    hits = similar_hits(await es.search(index=settings.mentions_alias, **_SEARCH, **body))
    return Similar(id=mention_id, brand=brand, since=since, until=until, similar=[SimilarPost(**h) for h in hits])
