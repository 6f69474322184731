"""The earshot mention worker: one Faust app, its topics, and its agents, declared in one place.

    mentions.raw --validate+enrich--> mentions.enriched --index--> Elasticsearch
         \\                                  \\      \\
          `--> mentions.dlq (bad records)     \\      `--> mentions.dlq (refused by ES)
                                               `--rekey--> mentions.by-brand (key: brand)
                                                           -> the spike watcher (pipeline/alerts/watcher.py)

Delivery is at-least-once: each agent works in batches (``stream.take``), and Faust acks a
batch's offsets only after the agent body has finished with it, i.e. after the enriched
records were delivered to Kafka (``validate_and_enrich``) or the bulk write succeeded
(``index_mentions``). A crash replays the uncommitted tail; ids make that idempotent.

This app has no tables, so restarting it involves no table recovery. Run with
``earshot worker`` (see ``cli/main.py``).
"""

from __future__ import annotations

import asyncio
import json
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
from pipeline.worker.streams import BrandMention, deliver, finishing, json_bytes, make_app

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


# Keyed by brand, so one brand's records land in one partition of the spike watcher.
by_brand_topic = app.topic(settings.topic_by_brand, key_type=str, value_type=BrandMention, key_serializer="raw")


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


def split_valid(events: list[Any], now: datetime) -> tuple[list[Mention | Deletion], list[tuple[bytes | None, dict[str, Any]]]]:
    """Validate a batch of raw events: (mentions and deletion notices in order, dead letters)."""
    skew = timedelta(seconds=settings.max_future_skew_s)
    mentions: list[Mention | Deletion] = []
    letters: list[tuple[bytes | None, dict[str, Any]]] = []
    seen: set[str] = set()
    for event in events:
        message = event.message
        result = parse_mention(event.value, now=now, max_text_bytes=settings.max_text_bytes, max_future_skew=skew)
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


@app.agent(raw_topic)
async def validate_and_enrich(stream):
    """Validate raw mentions, enrich the good ones in batches, dead-letter the bad ones."""
    enricher = await asyncio.get_running_loop().run_in_executor(None, get_enricher)
    es = make_es_client(settings)
    try:
        # Tag consistently from the first mention: wait for the queries (ES may still be starting).
        await retry_until_done(lambda: refresh_queries(es), what="loading listening queries",
                               cap_s=settings.index_retry_max_s)
        await retry_until_done(lambda: warm_near_duplicates(es), what="warming the near-duplicate index",
                               cap_s=settings.index_retry_max_s)
    finally:
        await es.close()
    async for events in stream.take_events(settings.enrich_batch_size, within=settings.enrich_batch_window_s):
        with finishing("validate_and_enrich", events):
            await enrich_batch(enricher, events)


async def enrich_batch(enricher, events: list[Any]) -> None:
    """One batch of raw events: enriched mentions to mentions.enriched, bad ones to the DLQ."""
    now = _now()
    valid, letters = split_valid(events, now)
    mentions = [m for m in valid if isinstance(m, Mention)]
    deletions = [d for d in valid if isinstance(d, Deletion)]
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
    echo_counts = noise.mark(enriched, now)
    # Control records after the mentions, keyed by the mention they change, so each stays behind
    # that mention on its partition: echo counts (onto first posts), then deletions.
    echo_records = [(c.id.encode("utf-8"), json_bytes({"op": "echoes", "id": c.id, "created_at": c.created_at.isoformat(),
                                                       "echoes": c.echoes})) for c in echo_counts]
    await deliver(enriched_topic, [(m.id.encode("utf-8"), json_bytes(m.to_document())) for m in enriched]
                  + echo_records + [(d.id.encode("utf-8"), json_bytes(d.model_dump(mode="json"))) for d in deletions])
    if letters:
        await send_dead_letters(letters)
        log.info("dead-lettered %d records: %s", len(letters), letters[0][1]["reason"])
    # dropped: the second copy of an id in one batch, or a mention deleted within its batch
    MENTIONS_IN.labels("validate_and_enrich").inc(len(events))
    count_out("validate_and_enrich", enriched=len(enriched), rejected=len(letters), deleted=len(deletions),
              dropped=len(events) - len(enriched) - len(letters) - len(deletions))


@app.agent(enriched_topic)
async def rekey_by_brand(stream):
    """Re-key each enriched mention by brand (one record per brand named) for counting."""
    async for events in stream.take_events(settings.index_batch_size, within=settings.index_batch_window_s):
        with finishing("rekey_by_brand", events):
            records = []
            for event in events:
                try:
                    document = json.loads(event.value)
                    records += [(r["brand"], BrandMention(**r)) for r in brand_mentions(document)]
                except (ValueError, KeyError, TypeError):
                    continue  # unreadable: index_mentions dead-letters it with the reason
            await deliver(by_brand_topic, records)
            MENTIONS_IN.labels("rekey_by_brand").inc(len(events))
            count_out("rekey_by_brand", by_brand=len(records))


@app.agent(enriched_topic)
async def index_mentions(stream):
    """Bulk-index enriched mentions; offsets are acked only after the bulk succeeded."""
    es = make_es_client(settings)
    await wait_for_layout(es, settings)
    # Hours indexed just before a crash may not have been rolled up: recompute the recent ones.
    now = _now()
    dirty_hours.update(hours_between(now - timedelta(hours=settings.rollup_startup_h), now))
    sink = MentionSink(es, settings)
    try:
        async for events in stream.take_events(settings.index_batch_size, within=settings.index_batch_window_s):
            with finishing("index_mentions", events):
                await index_batch(sink, events)
    finally:
        await es.close()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")  # NaN/Infinity would fail the whole bulk request


def read_enriched(event: Any, now: datetime) -> tuple[dict[str, Any], datetime] | str | EchoCount | dict[str, Any]:
    """An enriched record as (document, created_at), a deletion notice's mention id, a first
    post's echo count, or a dead letter saying why it is unreadable."""
    try:
        document = json.loads(event.value, parse_constant=_refuse_constant)
        if not isinstance(document, dict) or not isinstance(document.get("id"), str):
            raise ValueError("not an object with a string 'id'")
        if document.get("op") == "delete":
            return document["id"]
        if document.get("op") == "echoes":
            return EchoCount(document["id"], datetime.fromisoformat(document["created_at"]), int(document["echoes"]))
        return document, datetime.fromisoformat(document["created_at"])
    except (ValueError, KeyError, TypeError) as exc:
        return dead_letter(stage="index", reason=f"unreadable enriched record: {exc}", payload=event.value,
                           failed_at=now, **source_position(event.message))


def source_position(message: Any | None) -> dict[str, Any]:
    """``topic``, ``partition``, ``offset`` of a message (for ``dead_letter``), or {} if unknown."""
    return {} if message is None else {"topic": message.topic, "partition": message.partition, "offset": message.offset}


async def index_batch(sink, events: list[Any]) -> None:
    """One batch of enriched events into Elasticsearch; what ES refuses for good, to the DLQ."""
    now = _now()
    batch, letters, deleted = [], [], []
    echoes: dict[str, EchoCount] = {}
    sources: dict[str, Any] = {}  # mention id -> its message, for a refused document's dead letter
    for event in events:
        read = read_enriched(event, now)
        if isinstance(read, tuple):
            batch.append(read)
            sources[read[0]["id"]] = event.message
        elif isinstance(read, EchoCount):
            echoes[read.id] = read  # the latest count wins
        elif isinstance(read, str):  # a deletion notice: drop it from this batch, then from the index
            batch = [(doc, at) for doc, at in batch if doc["id"] != read]
            deleted.append(read)
        else:
            letters.append((event.message.key, read))
    try:
        refused = await sink.write(batch)
    except ApiError as exc:  # e.g. 401/400 for the whole request: keep the data in the DLQ
        log.error("bulk write failed for good for %d documents: %s", len(batch), exc)
        refused = [RefusedDocument(doc["id"], f"bulk failed: {exc!r}"[:1000], doc) for doc, _ in batch]
    letters.extend(
        (r.mention_id.encode(), dead_letter(stage="index", reason=r.reason, payload=r.document,
                                            failed_at=now, mention_id=r.mention_id,
                                            **source_position(sources.get(r.mention_id))))
        for r in refused
    )
    if echoes:
        await sink.set_echoes([(c.id, c.created_at, c.echoes) for c in echoes.values() if c.id not in deleted])
    dirty_hours.update(hour_of(created_at) for _, created_at in batch)
    if deleted:
        dirty_hours.update(await hours_of_mentions(sink.es, settings, deleted))
        removed = await sink.delete(deleted)
        log.info("deletion notices: %d ids, %d documents removed", len(deleted), removed)
    if letters:
        await send_dead_letters(letters)
    # dropped: a document deleted within its batch, or an echo count superseded by a later one
    MENTIONS_IN.labels("index_mentions").inc(len(events))
    count_out("index_mentions", indexed=len(batch) - len(refused), rejected=len(letters), deleted=len(deleted),
              echoes=len(echoes), dropped=len(events) - len(batch) + len(refused) - len(letters) - len(deleted)
              - len(echoes))
