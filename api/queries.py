"""Elasticsearch query bodies for the API, built from validated parameters. Pure functions.

User text only ever reaches ES as a value inside a query object (``simple_query_string``
``query``, ``term`` values), never concatenated into query DSL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator

INTERVAL = re.compile(r"^([1-9]\d{0,3})([mhd])$")
_INTERVAL_S = {"m": 60, "h": 3600, "d": 86400}
MAX_BUCKETS = 2000


class BadQuery(ValueError):
    pass


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)  # no social post is older
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def utc_time(value: datetime) -> datetime:
    """A time parameter in UTC (a naive one is taken as UTC), within [EARLIEST, LATEST).

    Why: Elasticsearch refuses UTC offsets beyond +-18:00 (ISO 8601 allows +-23:59), a naive and
    an aware time do not compare, and the routes' range arithmetic (default ranges, previous
    periods, hours rounded up) must stay within Python's years 1..9999."""
    try:
        utc = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)")
    return utc


UtcTime = Annotated[datetime, AfterValidator(utc_time)]  # the type of every from/to query parameter


@dataclass(frozen=True)
class MentionFilter:
    q: str | None = None
    brand: str | None = None
    sentiment: str | None = None
    lang: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    max_spam: float | None = None  # leave out mentions with spam.score >= this (None: keep all)
    listening: dict[str, Any] | None = None  # a listening query compiled by pipeline.listening
    tagged: str | None = None  # id of a stored listening query the stream tagged mentions with


def filter_clauses(f: MentionFilter) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    if f.brand:
        clauses.append({"term": {"brands": f.brand}})
    if f.sentiment:
        clauses.append({"term": {"sentiment.label": f.sentiment}})
    if f.lang:
        clauses.append({"term": {"lang": f.lang}})
    if f.source:
        clauses.append({"term": {"source": f.source}})
    if f.tagged:
        clauses.append({"term": {"queries": f.tagged}})
    if f.max_spam is not None:
        # must_not, not a range: mentions indexed before spam scoring (no score) stay in.
        clauses.append({"bool": {"must_not": {"range": {"spam.score": {"gte": f.max_spam}}}}})
    clauses.extend(time_range("created_at", f.since, f.until))
    return clauses


def time_range(field: str, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """[since, until) on ``field`` as zero or one ``range`` clause."""
    rng: dict[str, str] = {}
    if since:
        rng["gte"] = since.isoformat()
    if until:
        rng["lt"] = until.isoformat()
    return [{"range": {field: rng}}] if rng else []


def search_body(f: MentionFilter, size: int, search_after: list[Any] | None) -> dict[str, Any]:
    """Newest first, ties broken by id (ES refuses to sort on _id), highlights on text."""
    must: list[dict[str, Any]] = []
    if f.q:
        must.append(
            {
                "simple_query_string": {
                    "query": f.q,
                    "fields": ["text", "author.display_name"],
                    "default_operator": "and",
                    # No regex/fuzzy/slop operators from users: cheap, predictable queries.
                    "flags": "AND|OR|NOT|PHRASE|PRECEDENCE|WHITESPACE|PREFIX|ESCAPE",
                }
            }
        )
    if f.listening:
        must.append(f.listening)  # compiled from the parsed query: user text only as values
    body: dict[str, Any] = {
        "size": size,
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filter_clauses(f)}},
        "sort": [{"created_at": {"order": "desc"}}, {"id": {"order": "desc"}}],
        "track_total_hits": True,
        # 384 floats per post that no reader of a result list needs (``/similar`` uses them in ES).
        "_source": {"excludes": ["embedding"]},
    }
    if f.q or f.listening:
        body["highlight"] = {
            "fields": {"text": {"number_of_fragments": 0}},
            "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"],
            "encoder": "html",  # escape the post's own markup; only our <mark> tags are HTML
        }
    if search_after is not None:
        body["search_after"] = search_after
    return body


@dataclass(frozen=True)
class AlertFilter:
    brand: str | None = None
    status: str | None = None
    severities: tuple[str, ...] = ()
    signal: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def alert_search_body(f: AlertFilter, size: int, search_after: list[Any] | None) -> dict[str, Any]:
    """Alerts matching ``f`` (``since``/``until`` on ``updated_at``), newest updated first, ties by id."""
    clauses: list[dict[str, Any]] = [{"term": {field: value}} for field, value in
                                     (("brand", f.brand), ("status", f.status), ("signal", f.signal)) if value]
    if f.severities:
        clauses.append({"terms": {"severity": list(f.severities)}})
    clauses.extend(time_range("updated_at", f.since, f.until))
    body: dict[str, Any] = {
        "size": size,
        "query": {"bool": {"filter": clauses}},
        "sort": [{"updated_at": {"order": "desc"}}, {"id": {"order": "desc"}}],
        "track_total_hits": True,
    }
    if search_after is not None:
        body["search_after"] = search_after
    return body


def interval_seconds(interval: str) -> int:
    match = INTERVAL.match(interval)
    if not match:
        raise BadQuery("interval must look like 5m, 1h or 1d (a number then m, h or d)")
    return int(match[1]) * _INTERVAL_S[match[2]]


def trend_body(f: MentionFilter, interval: str, since: datetime, until: datetime) -> dict[str, Any]:
    """Volume per interval, split by sentiment label, over [since, until)."""
    step = interval_seconds(interval)
    if until <= since:
        raise BadQuery("'from' must be before 'to'")
    buckets = (until - since).total_seconds() / step
    if buckets > MAX_BUCKETS:
        raise BadQuery(f"{int(buckets)} buckets requested; at most {MAX_BUCKETS}: widen the interval or narrow the range")
    # Bounds are inclusive in ES; the last bucket must start before ``until``.
    last = (until - timedelta(milliseconds=1)).isoformat()
    return {
        "size": 0,
        "query": {"bool": {"filter": filter_clauses(f)}},
        "aggs": {
            "volume": {
                "date_histogram": {
                    "field": "created_at",
                    "fixed_interval": interval,
                    "min_doc_count": 0,
                    "extended_bounds": {"min": since.isoformat(), "max": last},
                },
                "aggs": {
                    "sentiment": {"terms": {"field": "sentiment.label", "size": 3}},
                    # A copy-paste campaign is one voice with many echoes.
                    "voices": {"filter": {"bool": {"must_not": {"exists": {"field": "duplicate_of"}}}}},
                },
            }
        },
    }


def bucket_starts(since: datetime, until: datetime, interval: str) -> list[datetime]:
    """Bucket start times ES's ``fixed_interval`` histogram uses over [since, until): multiples
    of the interval since the epoch (used to return an all-zero trend before any data exists)."""
    step = interval_seconds(interval)
    first = int(since.timestamp()) // step * step
    starts = []
    t = first
    while t < until.timestamp():
        starts.append(datetime.fromtimestamp(t, tz=since.tzinfo))
        t += step
    return starts
