"""Hourly rollup of mention counts per brand: the index ``<prefix>-rollup-hourly``.

One document per (brand, UTC hour), id ``<brand>|<hour ISO>``, holding what trends, reputation and
share of voice count: ``volume`` (mentions not scored as spam), ``spam`` (left out as spam),
``voices`` (not near-copies), ``complaints``, and the ``sentiment``, ``emotion`` and ``purposes``
mixes, all over the mentions that are not spam (``spam.score < spam_threshold``, or unscored).

A rollup document is always *recomputed* from the mentions index, never incremented: rolling an
hour up twice, or after a crash replayed a batch, writes the same numbers. Documents are written
with an external version = the time the computation started (ms), so when two workers roll up the
same hour the later snapshot wins whatever order their writes land in.

The builders and ``rollup_documents`` are pure; ``rollup_hours`` and ``ensure_rollup_layout`` are
the shell (Elasticsearch I/O).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, BadRequestError

from models.tasks import PURPOSES
from pipeline.store.mappings import EMOTIONS
from pipeline.settings import Settings

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
SENTIMENTS = ("negative", "neutral", "positive")
MAX_HOURS_PER_QUERY = 168  # one week of hours per aggregation request
PAGE = 1000  # composite buckets (brand x hour) per page

_COUNT = {"type": "integer"}
ROLLUP_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "brand": {"type": "keyword"},
        "hour": {"type": "date"},
        "volume": _COUNT,
        "spam": _COUNT,
        "voices": _COUNT,
        "complaints": _COUNT,
        "sentiment": {"properties": {s: _COUNT for s in SENTIMENTS}},
        "emotion": {"properties": {e: _COUNT for e in EMOTIONS}},
        "purposes": {"properties": {p: _COUNT for p in PURPOSES}},
        "spam_threshold": {"type": "float"},
        "computed_at": {"type": "date"},
    },
}


def hour_of(moment: datetime) -> datetime:
    """The UTC hour ``moment`` falls in (its start)."""
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.replace(minute=0, second=0, microsecond=0)


def hours_between(since: datetime, until: datetime) -> list[datetime]:
    """Every UTC hour that overlaps [since, until)."""
    hours, hour = [], hour_of(since)
    while hour < until:
        hours.append(hour)
        hour += HOUR
    return hours


def rollup_id(brand: str, hour: datetime) -> str:
    return f"{brand}|{hour_of(hour).isoformat()}"


def hour_ranges(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of hours as [start, end) ranges, at most ``MAX_HOURS_PER_QUERY`` hours each."""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in sorted({hour_of(h) for h in hours}):
        if ranges and ranges[-1][1] == hour and (hour - ranges[-1][0]) < MAX_HOURS_PER_QUERY * HOUR:
            ranges[-1] = (ranges[-1][0], hour + HOUR)
        else:
            ranges.append((hour, hour + HOUR))
    return ranges


def _not_spam(spam_threshold: float) -> dict[str, Any]:
    # must_not, as in the API's trend: mentions indexed before spam scoring (no score) count.
    return {"bool": {"must_not": {"range": {"spam.score": {"gte": spam_threshold}}}}}


def count_aggs() -> dict[str, Any]:
    """Sub-aggregations counting one cell's mentions: voices, complaints, sentiment/emotion/purpose mixes."""
    return {
        "voices": {"filter": {"bool": {"must_not": {"exists": {"field": "duplicate_of"}}}}},
        "complaints": {"filter": {"term": {"complaint.label": True}}},
        "sentiment": {"terms": {"field": "sentiment.label", "size": len(SENTIMENTS)}},
        "emotion": {"terms": {"field": "emotion.label", "size": len(EMOTIONS)}},
        "purposes": {"terms": {"field": "purposes", "size": len(PURPOSES)}},
    }


def rollup_aggregation_body(start: datetime, end: datetime, spam_threshold: float,
                            after: dict[str, Any] | None = None) -> dict[str, Any]:
    """Search body: mentions created in [start, end) that name a brand, per (hour, brand) cell."""
    composite: dict[str, Any] = {
        "size": PAGE,
        "sources": [
            {"hour": {"date_histogram": {"field": "created_at", "fixed_interval": "1h"}}},
            {"brand": {"terms": {"field": "brands"}}},
        ],
    }
    if after:
        composite["after"] = after
    return {
        "size": 0,
        "query": {"bool": {"filter": [
            {"range": {"created_at": {"gte": start.isoformat(), "lt": end.isoformat()}}},
            {"exists": {"field": "brands"}},
        ]}},
        "aggs": {"cells": {"composite": composite, "aggs": {
            "spam": {"filter": {"range": {"spam.score": {"gte": spam_threshold}}}},
            "counted": {"filter": _not_spam(spam_threshold), "aggs": count_aggs()},
        }}},
    }


def _by_key(terms_agg: dict[str, Any], keys: Iterable[str]) -> dict[str, int]:
    found = {b["key"]: b["doc_count"] for b in terms_agg.get("buckets", [])}
    return {k: int(found.get(k, 0)) for k in keys}


def empty_rollup(brand: str, hour: datetime, spam_threshold: float, computed_at: datetime) -> dict[str, Any]:
    """The rollup document of a cell with no mentions (written over one whose mentions were deleted)."""
    return {
        "brand": brand, "hour": hour_of(hour).isoformat(), "volume": 0, "spam": 0, "voices": 0, "complaints": 0,
        "sentiment": dict.fromkeys(SENTIMENTS, 0), "emotion": dict.fromkeys(EMOTIONS, 0),
        "purposes": dict.fromkeys(PURPOSES, 0), "spam_threshold": spam_threshold,
        "computed_at": computed_at.isoformat(),
    }


def rollup_documents(buckets: list[dict[str, Any]], spam_threshold: float,
                     computed_at: datetime) -> dict[str, dict[str, Any]]:
    """Rollup documents by id from composite buckets of ``rollup_aggregation_body``."""
    documents: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        hour = datetime.fromtimestamp(bucket["key"]["hour"] / 1000, tz=timezone.utc)
        brand = bucket["key"]["brand"]
        counted = bucket["counted"]
        doc = empty_rollup(brand, hour, spam_threshold, computed_at)
        doc.update(
            volume=counted["doc_count"],
            spam=bucket["spam"]["doc_count"],
            voices=counted["voices"]["doc_count"],
            complaints=counted["complaints"]["doc_count"],
            sentiment=_by_key(counted["sentiment"], SENTIMENTS),
            emotion=_by_key(counted["emotion"], EMOTIONS),
            purposes=_by_key(counted["purposes"], PURPOSES),
        )
        documents[rollup_id(brand, hour)] = doc
    return documents


def rollup_bulk_operations(index: str, documents: dict[str, dict[str, Any]], version: int) -> list[dict[str, Any]]:
    """Bulk ``index`` operations, externally versioned: an older computation never overwrites a newer one."""
    operations: list[dict[str, Any]] = []
    for doc_id, doc in sorted(documents.items()):
        operations.append({"index": {"_index": index, "_id": doc_id, "version": version, "version_type": "external"}})
        operations.append(doc)
    return operations


# -- the shell -------------------------------------------------------------------------------------

class RollupError(RuntimeError):
    pass


async def ensure_rollup_layout(es, settings: Settings) -> None:
    """Create the rollup index, or add new fields to its mapping."""
    if await es.indices.exists(index=settings.rollup_index):
        await es.indices.put_mapping(index=settings.rollup_index, properties=ROLLUP_MAPPINGS["properties"])
        return
    try:
        await es.indices.create(index=settings.rollup_index, mappings=ROLLUP_MAPPINGS, settings={
            "number_of_shards": 1, "number_of_replicas": settings.index_replicas,
            "refresh_interval": settings.index_refresh_interval})
    except BadRequestError as exc:  # another process created it first
        if "resource_already_exists" not in str(exc):
            raise


async def _cells(es, settings: Settings, start: datetime, end: datetime) -> list[dict[str, Any]]:
    buckets: list[dict[str, Any]] = []
    after = None
    while True:
        body = rollup_aggregation_body(start, end, settings.spam_threshold, after)
        response = await es.search(index=settings.mentions_alias, ignore_unavailable=True, allow_no_indices=True,
                                   **body)
        cells = response.get("aggregations", {}).get("cells")
        if not cells:
            return buckets
        buckets += cells["buckets"]
        after = cells.get("after_key")
        if not after or len(cells["buckets"]) < PAGE:
            return buckets


async def _stored_nonzero(es, settings: Settings, start: datetime, end: datetime) -> set[tuple[str, datetime]]:
    """(brand, hour) of rollup documents in [start, end) that count something."""
    found: set[tuple[str, datetime]] = set()
    search_after = None
    while True:
        kwargs: dict[str, Any] = {"search_after": search_after} if search_after else {}
        response = await es.search(
            index=settings.rollup_index, ignore_unavailable=True, allow_no_indices=True, size=PAGE,
            query={"bool": {"filter": [{"range": {"hour": {"gte": start.isoformat(), "lt": end.isoformat()}}}],
                            "should": [{"range": {"volume": {"gt": 0}}}, {"range": {"spam": {"gt": 0}}}],
                            "minimum_should_match": 1}},
            source_includes=["brand", "hour"], sort=[{"hour": "asc"}, {"brand": "asc"}], **kwargs)
        hits = response["hits"]["hits"]
        found |= {(h["_source"]["brand"], hour_of(datetime.fromisoformat(h["_source"]["hour"]))) for h in hits}
        if len(hits) < PAGE:
            return found
        search_after = hits[-1]["sort"]


async def rollup_hours(es, settings: Settings, hours: Iterable[datetime], now: datetime | None = None) -> int:
    """Recompute and overwrite the rollup documents of ``hours`` (every brand); returns documents written.

    The mentions index is refreshed first, so mentions the caller has just indexed are counted.
    Cells that no longer have mentions (deleted) are written as zeros.
    """
    now = now or datetime.now(timezone.utc)
    version = int(now.timestamp() * 1000)
    await es.indices.refresh(index=settings.mentions_alias, ignore_unavailable=True, allow_no_indices=True)
    written = 0
    for start, end in hour_ranges(hours):
        documents = rollup_documents(await _cells(es, settings, start, end), settings.spam_threshold, now)
        for brand, hour in await _stored_nonzero(es, settings, start, end):
            documents.setdefault(rollup_id(brand, hour), empty_rollup(brand, hour, settings.spam_threshold, now))
        if not documents:
            continue
        response = await es.bulk(operations=rollup_bulk_operations(settings.rollup_index, documents, version))
        # 409: a newer computation of that cell is already stored, which is what we want.
        failed = [item["index"] for item in response["items"] if item["index"].get("status", 500) >= 300
                  and item["index"].get("status") != 409]
        if failed:
            raise RollupError(f"{len(failed)} rollup documents refused, e.g. {failed[0].get('error')}")
        written += len(documents)
    return written


async def hours_of_mentions(es, settings: Settings, mention_ids: list[str]) -> set[datetime]:
    """The hours of the stored mentions ``mention_ids`` (before they are deleted: their cells change)."""
    if not mention_ids:
        return set()
    try:
        response = await es.search(index=settings.mentions_alias, ignore_unavailable=True, allow_no_indices=True,
                                   query={"ids": {"values": mention_ids}}, size=len(mention_ids),
                                   source_includes=["created_at"])
    except (ESConnectionError, ConnectionTimeout, ApiError) as exc:
        # The deletion goes ahead; those hours keep counting the post until rolled up again (earshot rollup).
        log.warning("could not look up the hours of %d deleted mentions: %r", len(mention_ids), exc)
        return set()
    return {hour_of(datetime.fromisoformat(h["_source"]["created_at"])) for h in response["hits"]["hits"]}
