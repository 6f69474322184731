"""The earshot mention worker: one Faust app, its topics, and its agents, declared in one place.

    mentions.raw --enrich_and_index--> Elasticsearch (bulk, idempotent ids)
         |                        `--> mentions.enriched (the enriched documents, for other readers)
         |                        `--> mentions.by-brand (key: brand) -> the spike watcher
         `--> mentions.dlq (bad records, and documents refused by ES)

One agent does it all per batch taken from ``mentions.raw`` (validate, enrich, tag, mark
noise, then the writes): each mention crosses Faust once, is encoded once, and the batch is
acked only after Kafka acknowledged every record produced from it and Elasticsearch stored or
refused (dead-lettered) every document. A crash replays the uncommitted tail; ids make that
idempotent (delivery is at-least-once).

It replaces three agents (validate+enrich -> mentions.enriched -> index, and -> rekey) that
moved every mention through Faust three times; ``bench/profile.py`` measures the two layouts
against each other (the former one from the git revision before the change).

This app has no tables, so restarting it involves no table recovery. Run with
``earshot worker`` (see ``cli/main.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from elasticsearch import ApiError

from pipeline.alerts.incidents import brand_mentions
from pipeline.worker.dead_letters import dead_letter, encode_dead_letter
from pipeline.metrics import ENRICH_BATCH_SECONDS, ENRICH_BATCH_SIZE, MENTIONS_IN, count_out
from pipeline.enrich.near_dup import NearDuplicateIndex
from pipeline.enrich.noise import EchoCount, NoiseControl
from pipeline.store.query_store import load_queries, seed_from_brands
from pipeline.listening.tagger import QueryTagger
from pipeline.worker.retry import retry_until_done
from pipeline.store.rollup import hour_of, hours_between, hours_of_mentions, rollup_hours
from pipeline.schema import Deletion, EnrichedMention, Mention, Rejection, parse_mention
from pipeline.settings import get_settings
from pipeline.store.mention_sink import MentionSink, RefusedDocument, ensure_mentions_layout, make_es_client
from pipeline.worker.streams import deliver, finishing, make_app
from pipeline.worker.wire import json_bytes, json_loads

log = logging.getLogger("earshot.worker")
settings = get_settings()
# One INFO line per bulk request drowns the worker's own log.
logging.getLogger("elastic_transport").setLevel(logging.WARNING)

app = make_app(settings.app_id, settings, settings.worker_web_port)

# Payloads are bytes we (de)serialise ourselves, so a malformed record reaches our validator
# (and the DLQ) instead of crashing Faust's deserialiser.
raw_topic = app.topic(settings.topic_raw, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
enriched_topic = app.topic(
    settings.topic_enriched, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
dlq_topic = app.topic(settings.topic_dlq, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


# Keyed by brand, so one brand's records land in one partition of the spike watcher. Values are
# encoded here (``by_brand_record``) as the JSON the watcher reads as a ``BrandMention``.
by_brand_topic = app.topic(settings.topic_by_brand, key_type=bytes, value_type=bytes, key_serializer="raw",
                           value_serializer="raw")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@lru_cache(maxsize=1)
def get_enricher():
    """Load the brand matcher, the models and the routing rules once per worker process."""
    from pipeline.enrich.enricher import load_mention_enricher

    return load_mention_enricher(settings)


async def send_dead_letters(letters: list[tuple[bytes | None, dict[str, Any]]]) -> None:
    """Publish dead letters and wait until Kafka has them (before the source batch is acked)."""
    await deliver(dlq_topic, [(key, encode_dead_letter(letter)) for key, letter in letters])


def decoded(value: Any) -> Any:
    """A raw payload parsed with the wire codec, or as it came when that fails: ``parse_mention``
    then parses it again and says why it is bad, in the same words as ever."""
    try:
        return json_loads(value)
    except (ValueError, TypeError):  # not JSON, not UTF-8, NaN, too deep, or no bytes at all
        return value


def split_valid(events: list[Any], now: datetime, sources: dict[str, Any] | None = None
                ) -> tuple[list[Mention | Deletion], list[tuple[bytes | None, dict[str, Any]]]]:
    """Validate a batch of raw events: (mentions and deletion notices in order, dead letters).
    ``sources``, if given, gets mention id -> message for each mention kept."""
    skew = timedelta(seconds=settings.max_future_skew_s)
    mentions: list[Mention | Deletion] = []
    letters: list[tuple[bytes | None, dict[str, Any]]] = []
    seen: set[str] = set()
    for event in events:
        message = event.message
        result = parse_mention(decoded(event.value), now=now, max_text_bytes=settings.max_text_bytes,
                               max_future_skew=skew)
        if isinstance(result, Rejection):
            letters.append(
                (
                    message.key,
                    dead_letter(
                        stage="validate",
                        reason=result.reason,
                        payload=event.value,
                        failed_at=now,
                        mention_id=result.mention_id,
                        **source_position(message),
                    ),
                )
            )
        elif isinstance(result, Deletion):
            mentions = [m for m in mentions if m.id != result.id]  # deleted before it was enriched
            seen.discard(result.id)
            mentions.append(result)
        elif result.id not in seen:  # the same id twice in one batch: keep the first
            seen.add(result.id)
            mentions.append(result)
            if sources is not None:
                sources[result.id] = message
    return mentions, letters


async def wait_for_layout(es, sink_settings) -> None:
    """Install the index template, retrying with backoff while Elasticsearch is unreachable."""
    await retry_until_done(lambda: ensure_mentions_layout(es, sink_settings),
                           what="installing the index template", cap_s=sink_settings.index_retry_max_s)


tagger = QueryTagger()
noise = NoiseControl(NearDuplicateIndex(max_items=settings.near_dup_max_posts,
                                        max_age_s=settings.near_dup_window_h * 3600))


async def refresh_queries(es) -> None:
    """Load the stored listening queries (seeding them from brands.yaml on a first start)."""
    await seed_from_brands(es, settings, _now())
    tagger.update(await load_queries(es, settings))


async def warm_near_duplicates(es) -> None:
    """Remember the first posts indexed recently, so copies of them still link after a restart."""
    since = _now() - timedelta(hours=settings.near_dup_window_h)
    firsts = await MentionSink(es, settings).recent_firsts(since, settings.near_dup_max_posts)
    for mention_id, fingerprint, created_at, echoes in reversed(firsts):  # oldest first: evicted first
        noise.near_dups.remember(mention_id, int(fingerprint, 16), created_at.timestamp(), echoes)
    log.info("near-duplicate index warmed with %d first posts", len(firsts))


@app.timer(settings.queries_refresh_s)
async def reload_queries() -> None:
    """Pick up query changes made through /v1/queries, without a restart."""
    if not tagger.loaded:
        return  # the enrichment agent does the first load
    es = make_es_client(settings)
    try:
        tagger.update(await load_queries(es, settings))
    except Exception as exc:  # noqa: BLE001 - keep tagging with the queries we have
        log.warning("could not refresh listening queries: %r", exc)
    finally:
        await es.close()


if settings.retention_days:
    @app.timer(3600.0, on_leader=True)
    async def enforce_retention() -> None:
        """Drop mention indices past EARSHOT_RETENTION_DAYS, hourly, on one worker of the group."""
        from pipeline.store.retention import apply_retention

        es = make_es_client(settings)
        try:
            report = await apply_retention(es, settings, _now())
            if report.dropped:
                log.info("retention: dropped %s", ", ".join(report.dropped))
        except Exception as exc:  # noqa: BLE001 - try again at the next tick
            log.warning("retention run failed: %r", exc)
        finally:
            await es.close()


# UTC hours whose mentions changed since the last rollup (pipeline/store/rollup.py recomputes them whole).
dirty_hours: set[datetime] = set()


@app.timer(settings.rollup_interval_s)
async def roll_up_dirty_hours() -> None:
    """Recompute the hourly rollup of the hours this worker indexed into (idempotent: from the index)."""
    if not dirty_hours:
        return
    hours = set(dirty_hours)
    dirty_hours.clear()
    es = make_es_client(settings)
    try:
        await rollup_hours(es, settings, hours)
    except Exception as exc:  # noqa: BLE001 - ES busy or down: roll them up at the next tick
        dirty_hours.update(hours)
        log.warning("rollup of %d hours failed, will retry: %r", len(hours), exc)
    finally:
        await es.close()


async def prepare_enrichment(es) -> Any:
    """Load the models, the listening queries and the near-duplicate memory (retrying while ES starts)."""
    enricher = await asyncio.get_running_loop().run_in_executor(None, get_enricher)
    # Tag consistently from the first mention: wait for the queries (ES may still be starting).
    await retry_until_done(lambda: refresh_queries(es), what="loading listening queries",
                           cap_s=settings.index_retry_max_s)
    await retry_until_done(lambda: warm_near_duplicates(es), what="warming the near-duplicate index",
                           cap_s=settings.index_retry_max_s)
    return enricher


def mark_recent_hours_dirty() -> None:
    """Hours indexed just before a crash may not have been rolled up: recompute the recent ones."""
    now = _now()
    dirty_hours.update(hours_between(now - timedelta(hours=settings.rollup_startup_h), now))


async def enrich_valid(enricher, mentions: list[Mention], deletions: list[Deletion], now: datetime,
                       letters: list[tuple[bytes | None, dict[str, Any]]]) -> tuple[list[EnrichedMention], list[EchoCount]]:
    """Enrich validated mentions (whole batch, one model call), tag them with the listening
    queries and mark their noise fields; mentions the enricher fails on become dead letters
    (appended to ``letters``). Returns (enriched mentions, echo counts of first posts)."""
    for deletion in deletions:  # a deleted post must not become the first post of later copies
        noise.near_dups.forget(deletion.id)
    enriched: list[EnrichedMention] = []
    if mentions:
        # The forward pass is CPU-bound: run it off the event loop so heartbeats go on.
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        enriched, failed = await loop.run_in_executor(None, enricher.enrich_isolating, mentions, now)
        ENRICH_BATCH_SECONDS.observe(time.perf_counter() - started)
        ENRICH_BATCH_SIZE.observe(len(mentions))
        letters.extend(
            (m.id.encode(), dead_letter(stage="enrich", reason=f"enrichment failed: {exc!r}"[:1000],
                                        payload=m.model_dump(mode="json"), failed_at=now, mention_id=m.id))
            for m, exc in failed
        )
        for m in enriched:
            m.queries = tagger.tag(m)
    return enriched, noise.mark(enriched, now)


def echo_record(count: EchoCount) -> tuple[bytes, bytes]:
    """The ``{"op": "echoes"}`` control record of a first post's echo count on mentions.enriched."""
    return count.id.encode("utf-8"), json_bytes({"op": "echoes", "id": count.id,
                                                 "created_at": count.created_at.isoformat(), "echoes": count.echoes})


def deletion_notice(deletion: Deletion) -> tuple[bytes, bytes]:
    """A deletion notice passed on to mentions.enriched, keyed by the mention it removes."""
    return deletion.id.encode("utf-8"), json_bytes(deletion.model_dump(mode="json"))


def by_brand_record(record: dict[str, Any]) -> tuple[bytes, bytes]:
    """One ``brand_mentions`` record as (key, value) for mentions.by-brand: keyed by brand, with
    every ``BrandMention`` field, so the spike watcher reads it as the record Faust would write."""
    return record["brand"].encode("utf-8"), json_bytes({"tick": False, **record})


async def index_documents(sink, documents: list[tuple[dict[str, Any], datetime]],
                          encoded: dict[str, bytes] | None = None) -> list[RefusedDocument]:
    """Bulk-write documents; those ES refuses for good (or a request refused whole) come back."""
    try:
        return await sink.write(documents, encoded)
    except ApiError as exc:  # e.g. 401/400 for the whole request: keep the data in the DLQ
        log.error("bulk write failed for good for %d documents: %s", len(documents), exc)
        return [RefusedDocument(doc["id"], f"bulk failed: {exc!r}"[:1000], doc) for doc, _ in documents]


def refused_letters(refused: list[RefusedDocument], now: datetime,
                    sources: dict[str, Any]) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Dead letters (stage ``index``) for documents ES refused, with the position of their source message."""
    return [(r.mention_id.encode(), dead_letter(stage="index", reason=r.reason, payload=r.document, failed_at=now,
                                                mention_id=r.mention_id,
                                                **source_position(sources.get(r.mention_id))))
            for r in refused]


async def apply_echoes_and_deletions(sink, echoes: list[EchoCount], deleted: list[str]) -> int:
    """After the batch's documents are stored: echo counts onto first posts (not onto posts
    deleted in the same batch), then the deletions, marking the hours they leave dirty.
    Returns how many echo counts were written."""
    gone = set(deleted)
    counts = [(c.id, c.created_at, c.echoes) for c in echoes if c.id not in gone]
    if counts:
        await sink.set_echoes(counts)
    if deleted:
        dirty_hours.update(await hours_of_mentions(sink.es, settings, deleted))
        removed = await sink.delete(deleted)
        log.info("deletion notices: %d ids, %d documents removed", len(deleted), removed)
    return len(counts)


async def enrich_and_index(stream):
    """Validate, enrich, index and re-key batches of raw mentions; a batch is acked only after
    all its writes (Kafka and Elasticsearch) were acknowledged."""
    es = make_es_client(settings)
    try:
        enricher = await prepare_enrichment(es)
        await wait_for_layout(es, settings)
        mark_recent_hours_dirty()
        sink = MentionSink(es, settings)
        async for events in stream.take_events(settings.enrich_batch_size, within=settings.enrich_batch_window_s):
            with finishing("enrich_and_index", events):
                await process_batch(enricher, sink, events)
    finally:
        await es.close()


async def process_batch(enricher, sink, events: list[Any]) -> None:
    """One batch of raw events, start to end: every output written and acknowledged on return."""
    now = _now()
    sources: dict[str, Any] = {}  # mention id -> its raw message, for a refused document's dead letter
    valid, letters = split_valid(events, now, sources)
    mentions = [m for m in valid if isinstance(m, Mention)]
    deletions = [d for d in valid if isinstance(d, Deletion)]
    enriched, echo_counts = await enrich_valid(enricher, mentions, deletions, now, letters)
    deleted = [d.id for d in deletions]
    gone = set(deleted)
    documents = [m.to_document() for m in enriched]
    encoded = {doc["id"]: json_bytes(doc) for doc in documents}  # once, for Kafka and for the bulk
    # Echo counts, then deletions, after the mentions, keyed by the mention they change (as ever on this topic).
    enriched_records = ([(doc["id"].encode("utf-8"), encoded[doc["id"]]) for doc in documents]
                        + [echo_record(c) for c in echo_counts] + [deletion_notice(d) for d in deletions])
    brand_records = [by_brand_record(r) for doc in documents for r in brand_mentions(doc)]
    # A re-post after its own deletion notice in one batch stays deleted, as the notices come last.
    to_index = [(doc, m.created_at) for doc, m in zip(documents, enriched) if doc["id"] not in gone]
    refused, *_ = await asyncio.gather(
        index_documents(sink, to_index, encoded),
        deliver(enriched_topic, enriched_records),
        deliver(by_brand_topic, brand_records),
    )
    echoes = await apply_echoes_and_deletions(sink, echo_counts, deleted)
    dirty_hours.update(hour_of(created_at) for _, created_at in to_index)
    letters.extend(refused_letters(refused, now, sources))
    if letters:
        await send_dead_letters(letters)
        log.info("dead-lettered %d records: %s", len(letters), letters[0][1]["reason"])
    rejected = len(letters) - len(refused)  # at validation or enrichment
    MENTIONS_IN.labels("enrich_and_index").inc(len(events))
    # in = enriched + rejected + deleted + dropped; indexed + refused + withheld = enriched
    count_out("enrich_and_index", enriched=len(enriched), rejected=rejected, deleted=len(deletions),
              dropped=len(events) - len(enriched) - rejected - len(deletions),
              indexed=len(to_index) - len(refused), refused=len(refused), withheld=len(enriched) - len(to_index),
              echoes=echoes, by_brand=len(brand_records))


enrich_and_index = app.agent(raw_topic, name="enrich_and_index")(enrich_and_index)



def source_position(message: Any | None) -> dict[str, Any]:
    """``topic``, ``partition``, ``offset`` of a message (for ``dead_letter``), or {} if unknown."""
    return {} if message is None else {"topic": message.topic, "partition": message.partition, "offset": message.offset}
