"""A brand's reputation over a period, against the period before it of equal length."""

from __future__ import annotations

from datetime import datetime, timezone

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from api.auth.scopes import TRENDS_READ
from api.analytics.bodies import authors_body, parse_authors, parse_reputation_extras, reputation_extras_body
from api.analytics.mixes import deltas, mix, sentiment_series
from api.analytics.reader import checked, read_counts
from api.analytics.series import Source, check_buckets, default_range, series_totals
from api.deps import get_app_settings, get_es, require
from api.queries import UtcTime
from api.routes.mentions import BRAND_ID
from pipeline.settings import Settings

router = APIRouter(tags=["comms"], dependencies=[Depends(require(TRENDS_READ))])

SOURCE_HEADER = "X-Earshot-Source"
SOURCE_DESCRIPTION = ("Where the counts come from: `auto` (the hourly rollup where it can answer exactly, checked "
                      "against the mentions; the raw mentions otherwise), `rollup` or `raw`.")


class LabelMix(BaseModel):
    counts: dict[str, int] = Field(..., description="Mentions per label.")
    shares: dict[str, float] = Field(..., description="Each label's share of the labelled mentions, 0..1.")


class PurposeShare(BaseModel):
    purpose: str
    count: int
    share: float = Field(..., description="Share of the period's mentions, 0..1 (a post may serve several purposes).")


class Theme(BaseModel):
    term: str = Field(..., description="A phrase (1-3 words; no stop words, URL fragments or brand names) that stands "
                      "out in complaints against all the brand's mentions; a longer phrase replaces a word it covers.")
    score: float = Field(..., description="Significance score (JLH): higher stands out more.")
    count: int = Field(..., description="Complaints containing it.")
    background_count: int = Field(..., description="Mentions of the brand in the period containing it.")


class InfluentialAuthor(BaseModel):
    handle: str
    mentions: int = Field(..., description="Their mentions of the brand in the period.")
    followers: int = Field(..., description="Largest follower count seen on those mentions.")
    engagement: int = Field(..., description="Likes + shares + replies on those mentions.")


class Period(BaseModel):
    since: datetime = Field(..., alias="from")
    until: datetime = Field(..., alias="to")
    volume: int = Field(..., description="Mentions, spam left out.")
    voices: int = Field(..., description="Mentions that are not near-copies of an earlier one.")
    complaints: int
    complaint_share: float = Field(..., description="complaints / volume, 0..1.")
    sentiment: LabelMix
    net_sentiment: float = Field(..., description="(positive - negative) / mentions with a sentiment reading, -1..1.")
    emotion: LabelMix
    purposes: list[PurposeShare] = Field(..., description="The most common purposes, most first.")
    complaint_themes: list[Theme]
    influential_authors: list[InfluentialAuthor] = Field(..., description="Most followed authors first.")

    model_config = {"populate_by_name": True}


class Deltas(BaseModel):
    volume: int = Field(..., description="Current minus previous volume.")
    volume_change: float | None = Field(..., description="Relative change of volume (0.25 = +25 %); null if the "
                                        "previous period had none.")
    complaints: int
    net_sentiment: float = Field(..., description="Difference of net sentiment.")
    sentiment_shares: dict[str, float] = Field(..., description="Difference of each sentiment share.")
    emotion_shares: dict[str, float]


class SeriesPoint(BaseModel):
    start: datetime = Field(..., description="Bucket start (UTC).")
    volume: int
    voices: int
    complaints: int
    negative: int
    neutral: int
    positive: int
    net_sentiment: float


class Reputation(BaseModel):
    brand: str
    interval: str
    since: datetime = Field(..., alias="from")
    until: datetime = Field(..., alias="to")
    source: str = Field(..., description="Where the counts came from: rollup, raw or rollup+raw.")
    current: Period
    previous: Period = Field(..., description="The period of equal length just before 'from'.")
    deltas: Deltas
    series: list[SeriesPoint] = Field(..., description="Volume and sentiment per interval over the current period.")

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "brand": "united", "interval": "1h", "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
        "source": "rollup",
        "current": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "volume": 120, "voices": 110,
                    "complaints": 30, "complaint_share": 0.25,
                    "sentiment": {"counts": {"negative": 60, "neutral": 30, "positive": 30},
                                  "shares": {"negative": 0.5, "neutral": 0.25, "positive": 0.25}},
                    "net_sentiment": -0.25,
                    "emotion": {"counts": {"anger": 50, "joy": 20, "optimism": 20, "sadness": 30},
                                "shares": {"anger": 0.417, "joy": 0.167, "optimism": 0.167, "sadness": 0.25}},
                    "purposes": [{"purpose": "customer_care", "count": 40, "share": 0.333}],
                    "complaint_themes": [{"term": "refund request", "score": 1.7, "count": 12, "background_count": 14}],
                    "influential_authors": [{"handle": "aviationnews", "mentions": 2, "followers": 250000,
                                             "engagement": 900}]},
        "deltas": {"volume": 20, "volume_change": 0.2, "complaints": 10, "net_sentiment": -0.15,
                   "sentiment_shares": {"negative": 0.1, "neutral": -0.05, "positive": -0.05},
                   "emotion_shares": {"anger": 0.1, "joy": -0.05, "optimism": -0.02, "sadness": -0.03}},
        "series": [{"start": "2026-11-01T00:00:00Z", "volume": 5, "voices": 5, "complaints": 1, "negative": 2,
                    "neutral": 2, "positive": 1, "net_sentiment": -0.2}],
    }]}}


@router.get(
    "/brands/{brand}/reputation",
    response_model=Reputation,
    response_model_by_alias=True,
    summary="A brand's reputation: volume, sentiment, emotion, purposes, complaint themes, voices",
    description="Compared with the period of equal length just before. Volume, sentiment, emotion, purpose and "
    "complaint counts (and the series) come from the hourly rollup when `from`, `to` and `interval` are whole "
    "UTC hours (header `X-Earshot-Source`); complaint themes and influential authors always from the mentions. "
    "Spam is left out.",
)
async def brand_reputation(
    response: Response,
    brand: str = Path(..., pattern=BRAND_ID, description="Brand id from brands.yaml"),
    since: UtcTime | None = Query(None, alias="from", description="Default: 24 h before 'to'"),
    until: UtcTime | None = Query(None, alias="to", description="Default: now, rounded up to the hour"),
    interval: str = Query("1h", description="Series bucket width: <n>m, <n>h or <n>d"),
    source: Source = Query("auto", description=SOURCE_DESCRIPTION),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Reputation:
    since, until = default_range(since, until, interval, datetime.now(timezone.utc))
    check_buckets(since, until, interval)
    before = since - (until - since)
    series, used_now = await read_counts(es, settings, [brand], since, until, interval, False, source)
    previous_series, used_before = await read_counts(es, settings, [brand], before, since, None, False, source)
    searches = []
    for start, end in ((since, until), (before, since)):
        searches += [{"index": settings.mentions_alias, "ignore_unavailable": True, "allow_no_indices": True},
                     reputation_extras_body(brand, start, end, settings.spam_threshold)]
    extras = [parse_reputation_extras(checked(r)) for r in (await es.msearch(searches=searches))["responses"]]
    periods = [(since, until), (before, since)]
    asked = [(i, extra.pop("author_handles")) for i, extra in enumerate(extras)]
    for i, _ in asked:
        extras[i]["influential_authors"] = []
    asked = [(i, handles) for i, handles in asked if handles]
    if asked:
        searches = []
        for i, handles in asked:
            searches += [{"index": settings.mentions_alias, "ignore_unavailable": True, "allow_no_indices": True},
                         authors_body(brand, *periods[i], settings.spam_threshold, handles)]
        answers = (await es.msearch(searches=searches))["responses"]
        for (i, handles), answer in zip(asked, answers):
            extras[i]["influential_authors"] = parse_authors(checked(answer), handles)
    current = {"from": since, "to": until, **mix(series_totals(series)[brand]), **extras[0]}
    previous = {"from": before, "to": since, **mix(series_totals(previous_series)[brand]), **extras[1]}
    used = used_now if used_now == used_before else "+".join(sorted({*used_now.split("+"), *used_before.split("+")}))
    response.headers[SOURCE_HEADER] = used
    return Reputation(brand=brand, interval=interval, since=since, until=until, source=used,
                      current=Period(**current), previous=Period(**previous), deltas=Deltas(**deltas(current, previous)),
                      series=[SeriesPoint(**point) for point in sentiment_series(series, brand)])
