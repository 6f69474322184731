"""Stories: a brand's posts of a window grouped by what they are about (``api/analytics/stories.py``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from api.auth.scopes import TRENDS_READ
from api.analytics.reader import checked
from api.analytics.series import default_range
from api.analytics.stories import STORY_SAMPLE, sample_of, stories, story_sample_body
from api.deps import get_app_settings, get_es, require
from api.queries import UtcTime
from api.routes.market import Example
from api.routes.mentions import BRAND_ID
from pipeline.settings import Settings

router = APIRouter(tags=["comms"], dependencies=[Depends(require(TRENDS_READ))])


class Story(BaseModel):
    label: str | None = Field(..., description="Its most distinctive phrase (null if its posts share none).")
    phrases: list[str] = Field(..., description="Up to 3 distinctive phrases, the label first.")
    size: int = Field(..., description="Sampled posts in the story.")
    volume: int = Field(..., description="Posts of the window it stands for (size x window volume / sample).")
    previous_volume: int = Field(..., description="The same estimate for the previous window of equal length.")
    growth: float | None = Field(..., description="(volume - previous_volume) / previous_volume; null if it had none.")
    sentiment: dict[str, int] = Field(..., description="Sampled posts per sentiment label.")
    cohesion: float = Field(..., description="Mean cosine similarity of its posts to its centre, -1..1.")
    representatives: list[Example] = Field(..., description="The 2 posts closest to its centre, by different authors.")
    ids: list[str] = Field(..., description="Ids of its sampled posts, closest to the centre first.")


class Stories(BaseModel):
    brand: str
    since: datetime = Field(..., alias="from")
    until: datetime = Field(..., alias="to")
    volume: int = Field(..., description="Posts in the window that are neither spam nor near-copies and carry a vector.")
    sampled: int = Field(..., description="How many of them were clustered (the newest).")
    stories: list[Story] = Field(..., description="Biggest first.")

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "brand": "united", "from": "2026-11-07T00:00:00Z", "to": "2026-11-08T00:00:00Z", "volume": 1200,
        "sampled": 400, "stories": [{
            "label": "lost luggage", "phrases": ["lost luggage", "baggage claim", "denver"], "size": 60,
            "volume": 180, "previous_volume": 40, "growth": 3.5,
            "sentiment": {"negative": 52, "neutral": 6, "positive": 2}, "cohesion": 0.71,
            "representatives": [{"id": "bluesky:3kabc", "text": "lost luggage again in denver",
                                 "created_at": "2026-11-07T22:10:00Z", "url": None,
                                 "author": {"handle": "jo", "followers": 1200}, "sentiment": {"label": "negative"}}],
            "ids": ["bluesky:3kabc"]}],
    }]}}


@router.get(
    "/brands/{brand}/stories",
    response_model=Stories,
    response_model_by_alias=True,
    summary="The window's posts grouped into stories, with label, size, growth, sentiment and examples",
    description="The newest `sample` posts of the window (spam and near-copies left out) clustered by their sentence "
    "vectors (k-means with a fixed seed, at most `k` stories). Growth compares with the previous window of equal "
    "length, sampled the same way. Default window: the last 24 hours.",
)
async def brand_stories(
    brand: str = Path(..., pattern=BRAND_ID),
    since: UtcTime | None = Query(None, alias="from", description="Default: 24 hours before 'to'"),
    until: UtcTime | None = Query(None, alias="to", description="Default: now, rounded up to the hour"),
    k: int = Query(6, ge=1, le=12, description="At most this many stories"),
    sample: int = Query(STORY_SAMPLE, ge=20, le=1000, description="Posts clustered (the newest of the window)"),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Stories:
    since, until = default_range(since, until, None, datetime.now(timezone.utc))
    before = since - (until - since)
    header = {"index": settings.mentions_alias, "ignore_unavailable": True, "allow_no_indices": True}
    searches: list[dict[str, Any]] = []
    for start, end in ((since, until), (before, since)):
        searches += [header, story_sample_body(brand, start, end, settings.spam_threshold, sample)]
    answers = [checked(r) for r in (await es.msearch(searches=searches))["responses"]]
    (docs, volume), (earlier, earlier_volume) = sample_of(answers[0]), sample_of(answers[1])
    # k-means over a few hundred vectors is tens of milliseconds of CPU: off the event loop.
    found = await asyncio.to_thread(stories, docs, volume, earlier, earlier_volume, k)
    return Stories(brand=brand, since=since, until=until, volume=volume, sampled=len(docs),
                   stories=[Story(**s) for s in found])
