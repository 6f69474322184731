"""Market intelligence: topics emerging now, and what people say about the product."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth.scopes import TRENDS_READ
from api.analytics.bodies import (
    PRODUCT_FEEDBACK, emerging_topics_body, parse_product_feedback, parse_topics, product_feedback_body,
)
from api.analytics.series import default_range
from api.deps import get_app_settings, get_es, require
from api.queries import BadQuery, UtcTime, interval_seconds
from api.routes.mentions import BRAND_ID
from pipeline.settings import Settings

router = APIRouter(tags=["market"], dependencies=[Depends(require(TRENDS_READ))])

_SEARCH = {"ignore_unavailable": True, "allow_no_indices": True}


class Example(BaseModel):
    id: str
    text: str
    created_at: datetime
    url: str | None = None
    author: dict[str, Any] = Field(default_factory=dict, description="handle and followers")
    sentiment: dict[str, Any] | None = Field(None, description="label")


class Topic(BaseModel):
    kind: str = Field(..., description="`phrase` (a keyphrase of the text: 1-3 words, no stop words, URL "
                      "fragments or brand names) or `hashtag`.")
    term: str
    score: float = Field(..., description="Significance (JLH) of the term in the window against the background.")
    count: int = Field(..., description="Mentions in the window containing it.")
    background_count: int = Field(..., description="Mentions in the background window containing it.")
    examples: list[Example] = Field(..., description="Posts with it, most followed authors first.")


class EmergingTopics(BaseModel):
    brand: str | None
    window: str
    background: str
    since: datetime = Field(..., alias="from", description="Start of the recent window.")
    until: datetime = Field(..., alias="to")
    background_from: datetime
    total: int = Field(..., description="Mentions in the recent window (spam left out).")
    topics: list[Topic] = Field(..., description="Most significant first.")

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "brand": "united", "window": "6h", "background": "7d", "from": "2026-11-07T18:00:00Z",
        "to": "2026-11-08T00:00:00Z", "background_from": "2026-11-01T00:00:00Z", "total": 420,
        "topics": [{"kind": "phrase", "term": "app outage", "score": 3.2, "count": 40, "background_count": 42,
                    "examples": [{"id": "bluesky:3kabc", "text": "united app outage again", "created_at":
                                  "2026-11-07T22:10:00Z", "url": None, "author": {"handle": "jo", "followers": 1200},
                                  "sentiment": {"label": "negative"}}]},
                   {"kind": "hashtag", "term": "appdown", "score": 2.5, "count": 12, "background_count": 12,
                    "examples": []}],
    }]}}


@router.get(
    "/market/emerging-topics",
    response_model=EmergingTopics,
    response_model_by_alias=True,
    summary="Phrases and hashtags whose frequency in the recent window stands out against the background",
    description="`significant_terms` on the keyphrases the pipeline extracted (`phrases`) and on hashtags: mentions "
    "of the last `window` (foreground) against those of the last `background` (which includes the window). A word "
    "is replaced by a longer phrase holding most of its mentions. Spam and near-copies are left out. Terms need at "
    "least 2 mentions in the window.",
)
async def emerging_topics(
    brand: str | None = Query(None, pattern=BRAND_ID, description="Brand id; all mentions if omitted"),
    window: str = Query("6h", description="Recent window: <n>m, <n>h or <n>d"),
    background: str = Query("7d", description="Background window ending at 'to', longer than 'window'"),
    until: UtcTime | None = Query(None, alias="to", description="End of both windows; default now"),
    size: int = Query(10, ge=1, le=50, description="Terms of each kind"),
    examples: int = Query(3, ge=0, le=5, description="Example posts per term"),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> EmergingTopics:
    window_s, background_s = interval_seconds(window), interval_seconds(background)
    if background_s <= window_s:
        raise BadQuery("'background' must be longer than 'window'")
    until = (until if until.tzinfo else until.replace(tzinfo=timezone.utc)) if until else datetime.now(timezone.utc)
    since, background_from = until - timedelta(seconds=window_s), until - timedelta(seconds=background_s)
    body = emerging_topics_body(brand, since, background_from, until, settings.spam_threshold, size, examples)
    found = parse_topics(await es.search(index=settings.mentions_alias, **_SEARCH, **body), size)
    return EmergingTopics(brand=brand, window=window, background=background, since=since, until=until,
                          background_from=background_from, **found)


class FeedbackTheme(BaseModel):
    term: str
    score: float = Field(..., description="Significance against all the brand's mentions in the period.")
    count: int = Field(..., description="Product-feedback mentions containing it.")
    background_count: int
    examples: list[Example]


class FeedbackHashtag(BaseModel):
    hashtag: str
    count: int
    examples: list[Example]


class ProductFeedback(BaseModel):
    brand: str | None
    since: datetime = Field(..., alias="from")
    until: datetime = Field(..., alias="to")
    purpose: str = Field(PRODUCT_FEEDBACK, description="The purpose label counted as product feedback.")
    total: int = Field(..., description="Product-feedback mentions in the period (spam left out).")
    sentiment: dict[str, int]
    themes: list[FeedbackTheme] = Field(..., description="Phrases standing out in the feedback, most significant first.")
    hashtags: list[FeedbackHashtag] = Field(..., description="The feedback's most common hashtags.")

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "brand": "united", "from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z",
        "purpose": "product_feedback", "total": 57, "sentiment": {"negative": 30, "neutral": 17, "positive": 10},
        "themes": [{"term": "slow wifi", "score": 1.9, "count": 14, "background_count": 16, "examples": []}],
        "hashtags": [{"hashtag": "inflightwifi", "count": 5, "examples": []}],
    }]}}


@router.get(
    "/market/product-feedback",
    response_model=ProductFeedback,
    response_model_by_alias=True,
    summary="Product-feedback mentions grouped by theme, with counts and examples",
    description="Mentions with the `product_feedback` purpose (routed to the product team), their sentiment, the "
    "words that stand out in them against all the brand's mentions of the period, and their hashtags.",
)
async def product_feedback(
    brand: str | None = Query(None, pattern=BRAND_ID, description="Brand id; all mentions if omitted"),
    since: UtcTime | None = Query(None, alias="from", description="Default: 7 days before 'to'"),
    until: UtcTime | None = Query(None, alias="to", description="Default: now"),
    size: int = Query(10, ge=1, le=50, description="Themes and hashtags"),
    examples: int = Query(3, ge=0, le=5, description="Example posts per theme"),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ProductFeedback:
    since, until = default_range(since, until, None, datetime.now(timezone.utc), span=timedelta(days=7))
    body = product_feedback_body(brand, since, until, settings.spam_threshold, size, examples)
    found = parse_product_feedback(await es.search(index=settings.mentions_alias, **_SEARCH, **body), size)
    return ProductFeedback(brand=brand, since=since, until=until, **found)
