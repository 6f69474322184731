"""Competitive views: share of voice over time, and brands' mixes side by side."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from api.auth.scopes import TRENDS_READ
from api.analytics.mixes import mix, share_of_voice
from api.analytics.reader import read_counts
from api.analytics.series import Source, check_buckets, default_range, series_totals
from api.deps import get_app_settings, get_es, require
from api.queries import BadQuery, UtcTime
from api.routes.mentions import BRAND_ID
from api.routes.reputation import SOURCE_DESCRIPTION, SOURCE_HEADER, LabelMix, PurposeShare
from pipeline.settings import Settings

router = APIRouter(tags=["competitors"], dependencies=[Depends(require(TRENDS_READ))])

MAX_BRANDS = 10
_BRAND = re.compile(BRAND_ID)


def parse_brands(text: str) -> list[str]:
    """``a,b,c`` into brand ids, in order, without repeats; 400 on a bad id or too many."""
    brands = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not brands:
        raise BadQuery("'brands' needs at least one brand id, e.g. brands=united,delta")
    if len(brands) > MAX_BRANDS:
        raise BadQuery(f"at most {MAX_BRANDS} brands")
    bad = [b for b in brands if not _BRAND.match(b)]
    if bad:
        raise BadQuery(f"not a brand id: {bad[0][:64]!r}")
    return brands


class BrandVoice(BaseModel):
    volume: int = Field(..., description="The brand's mentions (spam left out).")
    share: float = Field(..., description="Its share of the listed brands' mentions, 0..1.")
    positive_share: float = Field(..., description="Its share of the listed brands' positive mentions, 0..1.")
    negative_share: float = Field(..., description="Its share of the listed brands' negative mentions, 0..1.")


class VoiceBucket(BaseModel):
    start: datetime = Field(..., description="Bucket start (UTC).")
    volume: dict[str, int] = Field(..., description="Mentions per brand in the bucket.")
    share: dict[str, float] = Field(..., description="Each brand's share of the bucket's mentions; 0 for all if none.")
    positive_share: dict[str, float]
    negative_share: dict[str, float]


class ShareOfVoice(BaseModel):
    interval: str
    since: datetime = Field(..., alias="from")
    until: datetime = Field(..., alias="to")
    brands: list[str]
    totals: dict[str, BrandVoice]
    buckets: list[VoiceBucket]

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "interval": "1h", "from": "2026-11-01T00:00:00Z", "to": "2026-11-01T02:00:00Z", "brands": ["united", "delta"],
        "totals": {"united": {"volume": 30, "share": 0.6, "positive_share": 0.5, "negative_share": 0.75},
                   "delta": {"volume": 20, "share": 0.4, "positive_share": 0.5, "negative_share": 0.25}},
        "buckets": [{"start": "2026-11-01T00:00:00Z", "volume": {"united": 10, "delta": 10},
                     "share": {"united": 0.5, "delta": 0.5}, "positive_share": {"united": 0.5, "delta": 0.5},
                     "negative_share": {"united": 0.5, "delta": 0.5}},
                    {"start": "2026-11-01T01:00:00Z", "volume": {"united": 20, "delta": 10},
                     "share": {"united": 0.667, "delta": 0.333}, "positive_share": {"united": 0.5, "delta": 0.5},
                     "negative_share": {"united": 0.8, "delta": 0.2}}],
    }]}}


BRANDS_QUERY = Query(..., max_length=700, description="Comma-separated brand ids, e.g. `united,delta,american`",
                     openapi_examples={"airlines": {"summary": "three airlines", "value": "united,delta,american"}})


@router.get(
    "/competitors/share-of-voice",
    response_model=ShareOfVoice,
    response_model_by_alias=True,
    summary="Share of voice of the listed brands, in total and per interval",
    description="Shares are within the listed brands: `share` = brand's mentions / all listed brands' mentions; "
    "`positive_share` = brand's positive mentions / all listed brands' positive mentions (likewise negative). "
    "A mention naming two listed brands counts for both. Spam is left out. Read from the hourly rollup when "
    "`from`, `to` and `interval` are whole UTC hours (header `X-Earshot-Source`).",
)
async def competitors_share_of_voice(
    response: Response,
    brands: str = BRANDS_QUERY,
    since: UtcTime | None = Query(None, alias="from", description="Default: 24 h before 'to'"),
    until: UtcTime | None = Query(None, alias="to", description="Default: now, rounded up to the hour"),
    interval: str = Query("1h", description="Bucket width: <n>m, <n>h or <n>d"),
    source: Source = Query("auto", description=SOURCE_DESCRIPTION),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ShareOfVoice:
    listed = parse_brands(brands)
    since, until = default_range(since, until, interval, datetime.now(timezone.utc))
    check_buckets(since, until, interval)
    series, used = await read_counts(es, settings, listed, since, until, interval, False, source)
    response.headers[SOURCE_HEADER] = used
    return ShareOfVoice(interval=interval, since=since, until=until, brands=listed, **share_of_voice(series, listed))


class BrandMix(BaseModel):
    brand: str
    volume: int = Field(..., description="Mentions, spam left out.")
    voices: int
    complaints: int
    complaint_share: float = Field(..., description="complaints / volume, 0..1.")
    sentiment: LabelMix
    net_sentiment: float = Field(..., description="(positive - negative) / mentions with a sentiment reading, -1..1.")
    emotion: LabelMix
    purposes: list[PurposeShare] = Field(..., description="Every purpose seen, most common first.")


class Comparison(BaseModel):
    since: datetime = Field(..., alias="from")
    until: datetime = Field(..., alias="to")
    source: str = Field(..., description="Where the counts came from: rollup, raw or rollup+raw.")
    brands: list[BrandMix] = Field(..., description="In the order asked for.")

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "source": "rollup",
        "brands": [{"brand": "united", "volume": 120, "voices": 110, "complaints": 30, "complaint_share": 0.25,
                    "sentiment": {"counts": {"negative": 60, "neutral": 30, "positive": 30},
                                  "shares": {"negative": 0.5, "neutral": 0.25, "positive": 0.25}},
                    "net_sentiment": -0.25,
                    "emotion": {"counts": {"anger": 50, "joy": 20, "optimism": 20, "sadness": 30},
                                "shares": {"anger": 0.417, "joy": 0.167, "optimism": 0.167, "sadness": 0.25}},
                    "purposes": [{"purpose": "customer_care", "count": 40, "share": 0.333}]}],
    }]}}


@router.get(
    "/competitors/compare",
    response_model=Comparison,
    response_model_by_alias=True,
    summary="Sentiment, emotion and purpose mixes of brands side by side",
    description="Spam is left out. From the hourly rollup when `from` and `to` are whole UTC hours.",
)
async def competitors_compare(
    response: Response,
    brands: str = BRANDS_QUERY,
    since: UtcTime | None = Query(None, alias="from", description="Default: 24 h before 'to'"),
    until: UtcTime | None = Query(None, alias="to", description="Default: now, rounded up to the hour"),
    source: Source = Query("auto", description=SOURCE_DESCRIPTION),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Comparison:
    listed = parse_brands(brands)
    since, until = default_range(since, until, None, datetime.now(timezone.utc))
    series, used = await read_counts(es, settings, listed, since, until, None, False, source)
    totals = series_totals(series)
    response.headers[SOURCE_HEADER] = used
    return Comparison(since=since, until=until, source=used,
                      brands=[BrandMix(brand=b, **mix(totals[b], top_purposes=len(totals[b].purposes))) for b in listed])
