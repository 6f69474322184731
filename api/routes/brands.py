"""Brand trends: mention volume per interval, split by sentiment."""

from __future__ import annotations

from datetime import datetime, timezone

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from api.auth.scopes import TRENDS_READ
from api.analytics.reader import read_counts
from api.analytics.series import Source, check_buckets, default_range, plan_reads
from api.deps import get_app_settings, get_es, require
from api.queries import MentionFilter, UtcTime, bucket_starts, trend_body
from api.routes.mentions import BRAND_ID
from api.routes.reputation import SOURCE_DESCRIPTION, SOURCE_HEADER
from pipeline.settings import Settings

router = APIRouter(tags=["brands"], dependencies=[Depends(require(TRENDS_READ))])


class TrendBucket(BaseModel):
    start: datetime = Field(..., description="Bucket start (UTC); the bucket spans one interval.")
    total: int
    voices: int = Field(..., description="Mentions that are not near-copies of an earlier one (echoes left out).")
    negative: int
    neutral: int
    positive: int


class Trend(BaseModel):
    brand: str
    interval: str
    since: datetime = Field(..., alias="from")
    until: datetime = Field(..., alias="to")
    total: int
    buckets: list[TrendBucket]

    model_config = {"populate_by_name": True}


@router.get(
    "/brands/{brand}/trend",
    response_model=Trend,
    response_model_by_alias=True,
    summary="Mention volume per interval by sentiment",
)
async def brand_trend(
    answer: Response,
    brand: str = Path(..., pattern=BRAND_ID, description="Brand id from brands.yaml"),
    since: UtcTime | None = Query(None, alias="from", description="Default: 24 h before 'to'"),
    until: UtcTime | None = Query(None, alias="to", description="Default: now (rounded up to the hour for an "
                                   "interval of whole hours)"),
    interval: str = Query("1h", description="Bucket width: <n>m, <n>h or <n>d"),
    include_spam: bool = Query(False, description="Count mentions scored as spam (left out by default)."),
    source: Source = Query("auto", description=SOURCE_DESCRIPTION),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Trend:
    since, until = default_range(since, until, interval, datetime.now(timezone.utc))
    if plan_reads(since, until, interval, include_spam, source, datetime.now(timezone.utc)).rollup:
        check_buckets(since, until, interval)
        series, used = await read_counts(es, settings, [brand], since, until, interval, include_spam, source)
        answer.headers[SOURCE_HEADER] = used
        rolled = [TrendBucket(start=start, total=c[brand].volume, voices=c[brand].voices, **c[brand].sentiment)
                  for start, c in sorted(series.items())]
        return Trend(brand=brand, interval=interval, since=since, until=until,
                     total=sum(b.total for b in rolled), buckets=rolled)
    answer.headers[SOURCE_HEADER] = "raw"
    max_spam = None if include_spam else settings.spam_threshold
    body = trend_body(MentionFilter(brand=brand, since=since, until=until, max_spam=max_spam), interval, since, until)
    response = await es.search(index=settings.mentions_alias, ignore_unavailable=True, allow_no_indices=True, **body)
    if "aggregations" not in response:  # nothing indexed yet: an all-zero trend, not an error
        zero = [TrendBucket(start=t, total=0, voices=0, negative=0, neutral=0, positive=0)
                for t in bucket_starts(since, until, interval)]
        return Trend(brand=brand, interval=interval, since=since, until=until, total=0, buckets=zero)
    buckets = []
    for bucket in response["aggregations"]["volume"]["buckets"]:
        by_label = {b["key"]: b["doc_count"] for b in bucket["sentiment"]["buckets"]}
        buckets.append(
            TrendBucket(
                start=datetime.fromtimestamp(bucket["key"] / 1000, tz=timezone.utc),
                total=bucket["doc_count"],
                voices=bucket["voices"]["doc_count"],
                negative=by_label.get("negative", 0),
                neutral=by_label.get("neutral", 0),
                positive=by_label.get("positive", 0),
            )
        )
    return Trend(brand=brand, interval=interval, since=since, until=until,
                 total=sum(b.total for b in buckets), buckets=buckets)
