"""Right to erasure: remove one mention, or everything by one author, from everywhere we hold it.

Everywhere means: every monthly mention index; the example posts alerts embed (text, author
handle: stripped, the incident stays); the triage state of each erased mention (``<prefix>-triage``,
whose history may quote the post); and the worker's near-duplicate memory, via a deletion
notice (``{"op": "delete"}``, the same record a connector sends when a platform deletes a post)
keyed by the mention id on ``mentions.raw``. The notice also follows the post through
``mentions.enriched`` to the index, so a worker re-reading older offsets deletes it again.

What this cannot reach: Kafka's logs keep the raw record (text and author) until the topic's
retention (``log.retention.hours``) expires it, and a worker that re-reads that record *after* the
notice would index it again; keep the raw topic's retention short. Backups and snapshots of the
indices are out of reach too.

The minimal Elasticsearch has no delete-by-query: ids are found with ``search_after`` paging,
index by index (so each hit's concrete index is known), then deleted by id with bulk requests.
Planning (queries, bulk actions, what to strip from an alert) is pure; the rest is a thin shell.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch

from pipeline.alerts.sink import change_alert
from pipeline.schema import deletion_record
from pipeline.settings import Settings

log = logging.getLogger(__name__)
PAGE = 1000  # hits per search page and deletions per bulk request

# (topic, key, value) records -> returns once Kafka has them all (api.kafka.LazyProducer.send_all).
Publish = Callable[[list[tuple[str, bytes, bytes]]], Awaitable[None]]


@dataclass(frozen=True)
class AuthorRef:
    """An author on one platform: ``platform`` is the mention's ``source``."""

    platform: str
    handle: str

    @classmethod
    def parse(cls, value: str) -> AuthorRef:
        """``PLATFORM:HANDLE``, e.g. ``bluesky:alice.bsky.social`` or ``x:@alice``."""
        platform, sep, handle = value.partition(":")
        if not sep or not platform.strip() or not handle.strip():
            raise ValueError(f"expected PLATFORM:HANDLE, got {value!r}")
        return cls(platform.strip(), handle.strip())

    @property
    def bare_handle(self) -> str:
        return self.handle.lstrip("@")

    def owns(self, handle: str | None) -> bool:
        """Is ``handle`` this author's, spelled with or without '@', in any case? (Handles are
        case-insensitive on the platforms we read; erasing too little is the worse error.)"""
        return handle is not None and handle.lstrip("@").lower() == self.bare_handle.lower()

    def handle_query(self, field: str) -> dict[str, Any]:
        """ES query: ``field`` (a keyword) holds this handle, as ``owns`` decides."""
        return {"bool": {"should": [{"term": {field: {"value": value, "case_insensitive": True}}}
                                    for value in (self.bare_handle, "@" + self.bare_handle)],
                         "minimum_should_match": 1}}


@dataclass(frozen=True)
class ErasureTarget:
    mention_id: str | None = None
    author: AuthorRef | None = None

    def __post_init__(self) -> None:
        if (self.mention_id is None) == (self.author is None):
            raise ValueError("erase either one mention id or one author")

    def describe(self) -> str:
        return f"mention {self.mention_id}" if self.mention_id else f"author {self.author.platform}:{self.author.handle}"


def mention_query(target: ErasureTarget) -> dict[str, Any]:
    """The ES query matching every stored mention of ``target``."""
    if target.mention_id is not None:
        return {"term": {"id": target.mention_id}}
    return {"bool": {"filter": [{"term": {"source": target.author.platform}},
                                target.author.handle_query("author.handle")]}}


def delete_actions(hits: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Bulk ``delete`` operations for ``(concrete index, id)`` hits."""
    return [{"delete": {"_index": index, "_id": doc_id}} for index, doc_id in hits]


def strip_examples(alert: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The alert without the example mentions ``keep`` rejects; None if none are rejected."""
    examples = alert.get("mentions") or []
    kept = [m for m in examples if keep(m)]
    if len(kept) == len(examples):
        return None
    return {**alert, "mentions": kept}


def erased_example(target: ErasureTarget, erased_ids: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Predicate: is this alert example one of ``target``'s? By id (the mentions just deleted,
    or the one named), or by author handle on the platform (also catches examples whose mention
    is no longer indexed, e.g. dropped by retention). Ids are ``<platform>:<native id>``."""
    ids = set(erased_ids) | ({target.mention_id} if target.mention_id else set())
    author = target.author

    def erased(example: dict[str, Any]) -> bool:
        if example.get("id") in ids:
            return True
        return bool(author and author.owns(example.get("author"))
                    and str(example.get("id", "")).startswith(f"{author.platform}:"))

    return erased


@dataclass
class ErasureReport:
    target: str
    mentions_deleted: int = 0
    alerts_changed: int = 0
    alert_examples_removed: int = 0
    deletion_notices: int = 0
    triage_deleted: int = 0  # triage states (people's notes on the post) removed
    mention_ids: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"mentions_deleted": self.mentions_deleted, "alerts_changed": self.alerts_changed,
                "alert_examples_removed": self.alert_examples_removed, "deletion_notices": self.deletion_notices}


class ErasureIncomplete(RuntimeError):
    """Some deletions failed; erasure is idempotent, so running it again finishes the job."""


async def find_mentions(es: AsyncElasticsearch, settings: Settings, query: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(concrete index, id, source)`` of every stored mention matching ``query``, in every
    monthly index (refreshed first, so what was indexed a moment ago is found too)."""
    pattern = settings.mentions_index_pattern
    indices = await es.indices.get(index=pattern, allow_no_indices=True, ignore_unavailable=True)
    if not indices:
        return []
    await es.indices.refresh(index=pattern, allow_no_indices=True, ignore_unavailable=True)
    found: list[tuple[str, str, str]] = []
    for index in sorted(indices):  # within one index ids are unique, so they page cleanly
        search_after = None
        while True:
            kwargs: dict[str, Any] = {"search_after": search_after} if search_after else {}
            response = await es.search(index=index, query=query, size=PAGE, sort=[{"id": "asc"}],
                                       source_includes=["id", "source"], track_total_hits=False, **kwargs)
            hits = response["hits"]["hits"]
            found += [(hit["_index"], hit["_id"], hit["_source"].get("source") or "") for hit in hits]
            if len(hits) < PAGE:
                break
            search_after = hits[-1]["sort"]
    return found


async def delete_mentions(es: AsyncElasticsearch, settings: Settings, hits: list[tuple[str, str]]) -> int:
    """Bulk-delete ``(index, id)`` hits; how many were deleted. Raises ``ErasureIncomplete``."""
    deleted, failed = 0, []
    for start in range(0, len(hits), PAGE):
        response = await es.bulk(operations=delete_actions(hits[start:start + PAGE]))
        for item in response["items"]:
            result = item["delete"]
            status = int(result.get("status", 500))
            if status < 300:
                deleted += 1
            elif status != 404:  # 404: gone already (a deletion notice got there first)
                failed.append(f"{result.get('_index')}/{result.get('_id')}: {status}")
    if hits:
        await es.indices.refresh(index=settings.mentions_index_pattern, allow_no_indices=True, ignore_unavailable=True)
    if failed:
        raise ErasureIncomplete(f"{len(failed)} deletions failed ({'; '.join(failed[:5])}); run the erasure again")
    return deleted


async def delete_triage(es: AsyncElasticsearch, settings: Settings, mention_ids: list[str]) -> int:
    """Delete the triage documents (``_id`` = mention id) of ``mention_ids``; how many existed.
    Raises ``ErasureIncomplete``."""
    if not mention_ids or not await es.indices.exists(index=settings.triage_index):
        return 0
    deleted, failed = 0, []
    for start in range(0, len(mention_ids), PAGE):
        response = await es.bulk(operations=delete_actions(
            (settings.triage_index, mention_id) for mention_id in mention_ids[start:start + PAGE]))
        for item in response["items"]:
            status = int(item["delete"].get("status", 500))
            if status < 300:
                deleted += 1
            elif status != 404:  # 404: nobody triaged that mention
                failed.append(f"{item['delete'].get('_id')}: {status}")
    if failed:
        raise ErasureIncomplete(f"{len(failed)} triage deletions failed ({'; '.join(failed[:5])}); run the erasure again")
    return deleted


async def strip_alerts(es: AsyncElasticsearch, settings: Settings, query: dict[str, Any],
                       erased: Callable[[dict[str, Any]], bool]) -> tuple[int, int]:
    """Remove the examples ``erased`` accepts from the alerts ``query`` matches, each with a
    conditional write (``change_alert``), so a concurrent detector update or ack is not lost.
    Returns (alerts changed, examples removed)."""
    if not await es.indices.exists(index=settings.alerts_index):
        return 0, 0
    await es.indices.refresh(index=settings.alerts_index)
    alert_ids: list[str] = []
    search_after = None
    while True:
        kwargs: dict[str, Any] = {"search_after": search_after} if search_after else {}
        response = await es.search(index=settings.alerts_index, query=query, size=PAGE, sort=[{"id": "asc"}],
                                   source_includes=["id"], track_total_hits=False, **kwargs)
        hits = response["hits"]["hits"]
        alert_ids += [hit["_id"] for hit in hits]
        if len(hits) < PAGE:
            break
        search_after = hits[-1]["sort"]
    changed = removed = 0
    for alert_id in alert_ids:
        before: list[int] = []

        def without_erased(alert: dict[str, Any]) -> dict[str, Any] | None:
            before[:] = [len(alert.get("mentions") or [])]
            return strip_examples(alert, lambda m: not erased(m))

        result = await change_alert(es, settings, alert_id, without_erased)
        if result and result[1]:
            changed += 1
            removed += before[0] - len(result[0]["mentions"])
    return changed, removed


def alert_query(target: ErasureTarget, erased_ids: set[str]) -> dict[str, Any]:
    """Alerts that may embed an example of ``target`` (``erased_example`` decides exactly)."""
    ids = sorted(erased_ids | ({target.mention_id} if target.mention_id else set()))
    should: list[dict[str, Any]] = [{"terms": {"mentions.id": ids}}] if ids else []
    if target.author:
        should.append(target.author.handle_query("mentions.author"))
    return {"bool": {"should": should, "minimum_should_match": 1}}


async def strip_old_alert_examples(es: AsyncElasticsearch, settings: Settings, cutoff: datetime) -> int:
    """Retention for alerts: strip example posts created before ``cutoff``; alerts changed."""
    limit = cutoff.isoformat()
    changed, _ = await strip_alerts(es, settings, {"range": {"mentions.created_at": {"lt": limit}}},
                                    lambda m: datetime.fromisoformat(str(m.get("created_at"))) < cutoff)
    return changed


async def erase(es: AsyncElasticsearch, settings: Settings, target: ErasureTarget, now: datetime,
                publish: Publish | None = None) -> ErasureReport:
    """Erase ``target`` everywhere (see the module docstring); idempotent, so safe to re-run.

    The deletion notices go out first: a worker that is just enriching one of the posts then
    deletes it behind us instead of indexing it after our search. ``publish`` None skips them
    (no Kafka: the index and alerts are still cleaned)."""
    report = ErasureReport(target=target.describe())
    hits = await find_mentions(es, settings, mention_query(target))
    ids = sorted({doc_id for _, doc_id, _ in hits})
    if publish is not None:
        sources = {doc_id: source for _, doc_id, source in hits}
        if target.mention_id and target.mention_id not in sources:  # maybe still in flight
            sources[target.mention_id] = target.mention_id.split(":", 1)[0][:64]
        records = [(settings.topic_raw, mention_id.encode("utf-8"),
                    json.dumps(deletion_record(mention_id, source or "erasure", now, "erasure"),
                               separators=(",", ":")).encode("utf-8"))
                   for mention_id, source in sorted(sources.items())]
        await publish(records)
        report.deletion_notices = len(records)
    report.mentions_deleted = await delete_mentions(es, settings, [(index, doc_id) for index, doc_id, _ in hits])
    report.mention_ids = ids
    report.triage_deleted = await delete_triage(
        es, settings, sorted(set(ids) | ({target.mention_id} if target.mention_id else set())))
    report.alerts_changed, report.alert_examples_removed = await strip_alerts(
        es, settings, alert_query(target, set(ids)), erased_example(target, set(ids)))
    log.info("erasure of %s: %s", report.target, json.dumps(report.counts()))
    return report


@asynccontextmanager
async def kafka_publisher(settings: Settings) -> AsyncIterator[Publish]:
    """A ``Publish`` over its own producer (for the CLI; the API shares its ``LazyProducer``)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()

    async def publish(records: list[tuple[str, bytes, bytes]]) -> None:
        futures = [await producer.send(topic, key=key, value=value) for topic, key, value in records]
        await asyncio.gather(*futures)

    try:
        yield publish
    finally:
        await producer.stop()
