"""Per-brand counts per interval, read from the raw mentions or from the hourly rollup. Pure.

Both sources answer the same question, so they yield the same ``Series``: for each bucket start
(or ``None`` for the whole range) and each requested brand, a ``Counts``. Only mentions that are
not spam are counted on the rollup; the raw path honours ``max_spam`` (None: count everything).

Which source (``plan_reads``): the rollup stores whole UTC hours, so it can answer a request only
when ``from``, ``to`` and the interval are whole hours and spam is left out. With ``source=auto``
the hours before the current one come from the rollup, checked against a cheap raw count per brand
(the caller falls back to raw on any difference: late mentions, a rollup not yet run), and the
current hour, which the worker rolls up every few seconds, always comes from the raw mentions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from api.queries import MAX_BUCKETS, BadQuery, bucket_starts, interval_seconds, time_range
from models.tasks import PURPOSES
from pipeline.store.mappings import EMOTIONS
from pipeline.store.rollup import SENTIMENTS, count_aggs, hour_of

Source = Literal["auto", "rollup", "raw"]
HOUR_S = 3600


@dataclass
class Counts:
    """What was said about one brand in one bucket (mentions that are not spam unless asked)."""

    volume: int = 0
    voices: int = 0
    complaints: int = 0
    sentiment: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SENTIMENTS, 0))
    emotion: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0))
    purposes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PURPOSES, 0))

    def add(self, other: Counts) -> Counts:
        return Counts(
            volume=self.volume + other.volume, voices=self.voices + other.voices,
            complaints=self.complaints + other.complaints,
            sentiment={k: self.sentiment[k] + other.sentiment[k] for k in SENTIMENTS},
            emotion={k: self.emotion[k] + other.emotion[k] for k in EMOTIONS},
            purposes={k: self.purposes[k] + other.purposes[k] for k in PURPOSES},
        )


# bucket start (None: the whole range) -> brand -> counts
Series = dict[datetime | None, dict[str, Counts]]


@dataclass(frozen=True)
class ReadPlan:
    """Which part of [since, until) to read from the rollup and which from the raw mentions."""

    rollup: tuple[datetime, datetime] | None
    raw: tuple[datetime, datetime] | None
    check: bool  # compare the rollup's volumes with a raw count before trusting them

    @property
    def label(self) -> str:
        return "+".join(name for name, part in (("rollup", self.rollup), ("raw", self.raw)) if part)


def _whole_hour(moment: datetime) -> bool:
    return moment.timestamp() % HOUR_S == 0


def rollup_eligible(since: datetime, until: datetime, interval: str | None, include_spam: bool) -> bool:
    """Can the hourly rollup answer this request exactly?"""
    whole_interval = interval is None or interval_seconds(interval) % HOUR_S == 0
    return not include_spam and whole_interval and _whole_hour(since) and _whole_hour(until)


def plan_reads(since: datetime, until: datetime, interval: str | None, include_spam: bool, source: Source,
               now: datetime) -> ReadPlan:
    if source == "raw":
        return ReadPlan(None, (since, until), False)
    eligible = rollup_eligible(since, until, interval, include_spam)
    if source == "rollup":
        if not eligible:
            raise BadQuery("source=rollup needs whole UTC hours for 'from' and 'to', an interval of whole hours "
                           "and include_spam=false")
        return ReadPlan((since, until), None, False)
    if not eligible:
        return ReadPlan(None, (since, until), False)
    split = hour_of(now)  # the current hour is still filling: read it raw
    if split <= since:
        return ReadPlan(None, (since, until), False)
    if until <= split:
        return ReadPlan((since, until), None, True)
    return ReadPlan((since, split), (split, until), True)


def default_range(since: datetime | None, until: datetime | None, interval: str | None, now: datetime,
                  span: timedelta = timedelta(hours=24)) -> tuple[datetime, datetime]:
    """``from``/``to`` with defaults: ``to`` = now, rounded up to the next whole hour when the interval
    is whole hours (so the default range can come from the rollup); ``from`` = ``to`` - ``span``."""
    if until is None:
        until = now
        if interval is None or interval_seconds(interval) % HOUR_S == 0:
            floor = hour_of(now)
            until = floor if floor == now else floor + timedelta(hours=1)
    until = _aware(until)
    since = _aware(since) if since else until - span
    if until <= since:
        raise BadQuery("'from' must be before 'to'")
    return since, until


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def check_buckets(since: datetime, until: datetime, interval: str) -> None:
    step = interval_seconds(interval)
    if (until - since).total_seconds() / step > MAX_BUCKETS:
        raise BadQuery(f"more than {MAX_BUCKETS} buckets requested: widen the interval or narrow the range")


def _histogram(field_name: str, interval: str, since: datetime, until: datetime, sub: dict[str, Any]) -> dict[str, Any]:
    return {"by_time": {
        "date_histogram": {
            "field": field_name, "fixed_interval": interval, "min_doc_count": 0,
            # Bounds are inclusive in ES; the last bucket must start before ``until``.
            "extended_bounds": {"min": since.isoformat(), "max": (until - timedelta(milliseconds=1)).isoformat()},
        },
        "aggs": sub,
    }}


def not_spam(max_spam: float | None) -> list[dict[str, Any]]:
    if max_spam is None:
        return []
    return [{"bool": {"must_not": {"range": {"spam.score": {"gte": max_spam}}}}}]


def raw_counts_body(brands: list[str], since: datetime, until: datetime, interval: str | None,
                    max_spam: float | None) -> dict[str, Any]:
    """Counts per brand (per interval) from the mentions index."""
    per_brand = {"brand": {"terms": {"field": "brands", "include": sorted(brands), "size": len(brands)},
                           "aggs": count_aggs()}}
    return {
        "size": 0,
        "query": {"bool": {"filter": [{"terms": {"brands": sorted(brands)}}, *not_spam(max_spam),
                                      *time_range("created_at", since, until)]}},
        "aggs": _histogram("created_at", interval, since, until, per_brand) if interval else per_brand,
    }


_ROLLUP_FIELDS = (("volume", "volume"), ("voices", "voices"), ("complaints", "complaints"),
                  *((f"sentiment_{s}", f"sentiment.{s}") for s in SENTIMENTS),
                  *((f"emotion_{e}", f"emotion.{e}") for e in EMOTIONS),
                  *((f"purposes_{p}", f"purposes.{p}") for p in PURPOSES))


def rollup_counts_body(brands: list[str], since: datetime, until: datetime, interval: str | None) -> dict[str, Any]:
    """The same counts, summed from the hourly rollup documents."""
    per_brand = {"brand": {"terms": {"field": "brand", "include": sorted(brands), "size": len(brands)},
                           "aggs": {name: {"sum": {"field": path}} for name, path in _ROLLUP_FIELDS}}}
    return {
        "size": 0,
        "query": {"bool": {"filter": [{"terms": {"brand": sorted(brands)}}, *time_range("hour", since, until)]}},
        "aggs": _histogram("hour", interval, since, until, per_brand) if interval else per_brand,
    }


def raw_volume_check_body(brands: list[str], since: datetime, until: datetime, max_spam: float) -> dict[str, Any]:
    """Mentions per brand over [since, until): what the rollup's volumes must add up to."""
    return {
        "size": 0,
        "query": {"bool": {"filter": [{"terms": {"brands": sorted(brands)}}, *not_spam(max_spam),
                                      *time_range("created_at", since, until)]}},
        "aggs": {"brand": {"terms": {"field": "brands", "include": sorted(brands), "size": len(brands)}}},
    }


def _terms(agg: dict[str, Any], keys: tuple[str, ...]) -> dict[str, int]:
    found = {b["key"]: b["doc_count"] for b in agg.get("buckets", [])}
    return {k: int(found.get(k, 0)) for k in keys}


def _raw_counts(bucket: dict[str, Any]) -> Counts:
    return Counts(volume=bucket["doc_count"], voices=bucket["voices"]["doc_count"],
                  complaints=bucket["complaints"]["doc_count"], sentiment=_terms(bucket["sentiment"], SENTIMENTS),
                  emotion=_terms(bucket["emotion"], EMOTIONS), purposes=_terms(bucket["purposes"], PURPOSES))


def _rollup_counts(bucket: dict[str, Any]) -> Counts:
    def total(name: str) -> int:
        return int(round(bucket[name]["value"] or 0))

    return Counts(volume=total("volume"), voices=total("voices"), complaints=total("complaints"),
                  sentiment={s: total(f"sentiment_{s}") for s in SENTIMENTS},
                  emotion={e: total(f"emotion_{e}") for e in EMOTIONS},
                  purposes={p: total(f"purposes_{p}") for p in PURPOSES})


def empty_series(brands: list[str], since: datetime, until: datetime, interval: str | None) -> Series:
    starts: list[datetime | None] = list(bucket_starts(since, until, interval)) if interval else [None]
    return {start: {brand: Counts() for brand in brands} for start in starts}


def parse_counts(response: dict[str, Any], kind: Literal["raw", "rollup"], brands: list[str], since: datetime,
                 until: datetime, interval: str | None) -> Series:
    """The ``Series`` of a ``raw_counts_body`` or ``rollup_counts_body`` answer; every (bucket, brand) present."""
    series = empty_series(brands, since, until, interval)
    aggs = response.get("aggregations")
    if not aggs:  # no index yet: all zero
        return series
    read = _raw_counts if kind == "raw" else _rollup_counts
    if interval is None:
        outer = [(None, aggs)]
    else:
        outer = [(datetime.fromtimestamp(b["key"] / 1000, tz=timezone.utc), b) for b in aggs["by_time"]["buckets"]]
    for start, bucket in outer:
        if start not in series:
            continue  # outside the requested buckets (cannot happen with extended_bounds and the filter)
        for inner in bucket["brand"]["buckets"]:
            if inner["key"] in series[start]:
                series[start][inner["key"]] = read(inner)
    return series


def parse_volume_check(response: dict[str, Any], brands: list[str]) -> dict[str, int]:
    found = {b["key"]: b["doc_count"] for b in response.get("aggregations", {}).get("brand", {}).get("buckets", [])}
    return {brand: int(found.get(brand, 0)) for brand in brands}


def series_totals(series: Series) -> dict[str, Counts]:
    """Each brand's counts over every bucket."""
    totals: dict[str, Counts] = {}
    for per_brand in series.values():
        for brand, counts in per_brand.items():
            totals[brand] = totals[brand].add(counts) if brand in totals else counts
    return totals


def merge_series(a: Series, b: Series) -> Series:
    """Bucket-wise sum of two series over the same buckets and brands (rollup hours + raw hours)."""
    return {start: {brand: counts.add(b[start][brand]) for brand, counts in per_brand.items()}
            for start, per_brand in a.items()}
