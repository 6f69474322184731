"""The earshot worker: one Faust app, its topics, and its agents, declared in one place.

    mentions.raw --validate+enrich--> mentions.enriched --index--> Elasticsearch
         \\                                  \\      \\
          `--> mentions.dlq (bad records)     \\      `--> mentions.dlq (refused by ES)
                                               `--rekey--> mentions.by-brand (key: brand)
                                                              |
                       windowed table brand-minutes (1 min, event time) + table spike-watch
                                                              |
                                           watch_brands --> alerts --index--> ES alerts index
                                                                  `--notify--> webhooks (DLQ: alerts.webhooks.dlq)

Delivery is at-least-once: each agent works in batches (``stream.take``), and Faust acks a
batch's offsets only after the agent body has finished with it, i.e. after the enriched
records were delivered to Kafka (``validate_and_enrich``) or the bulk write succeeded
(``index_mentions``). A crash replays the uncommitted tail; ids make that idempotent.

Run with ``earshot worker`` (see ``pipeline/cli.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import faust
from elasticsearch import ApiError

from pipeline.brand_watch import BrandWatch, brand_mentions, count_into, watch_config
from pipeline.deadletter import dead_letter, encode_dead_letter
from pipeline.retry import retry_until_done
from pipeline.schema import Mention, Rejection, parse_mention
from pipeline.settings import get_settings
from pipeline.sink import MentionSink, RefusedDocument, ensure_mentions_layout, make_es_client

log = logging.getLogger("earshot.worker")
settings = get_settings()
# One INFO line per bulk request drowns the worker's own log.
logging.getLogger("elastic_transport").setLevel(logging.WARNING)

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    autodiscover=False,
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=1.0,  # seconds: small window of re-processing after a crash
    broker_session_timeout=settings.kafka_session_timeout_s,
    producer_acks=-1,  # wait for the in-sync replicas: an acked record survives a broker loss
    web_host="127.0.0.1",
    web_port=settings.worker_web_port,
    web_enabled=True,
)

# Payloads are bytes we (de)serialise ourselves, so a malformed record reaches our validator
# (and the DLQ) instead of crashing Faust's deserialiser.
raw_topic = app.topic(settings.topic_raw, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
enriched_topic = app.topic(
    settings.topic_enriched, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
dlq_topic = app.topic(settings.topic_dlq, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class BrandMention(faust.Record, serializer="json", include_metadata=False):
    """One (enriched mention, brand) pair on ``mentions.by-brand``, or a clock tick (``tick``)."""

    brand: str
    ts: float  # created_at, epoch seconds: the event time the brand's minutes are counted in
    id: str = ""
    tick: bool = False
    negative: bool = False
    complaint: bool = False
    risk: bool = False
    spam: bool = False
    text: str = ""
    author: str | None = None
    url: str | None = None
    engagement: int = 0
    sentiment: str | None = None


# Keyed by brand, so one brand's records, minutes and detector state live in one partition.
by_brand_topic = app.topic(settings.topic_by_brand, key_type=str, value_type=BrandMention, key_serializer="raw")
alerts_topic = app.topic(settings.topic_alerts, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")
webhooks_dlq_topic = app.topic(settings.topic_webhooks_dlq, key_type=bytes, value_type=bytes, key_serializer="raw",
                               value_serializer="raw")

# [volume, negative, complaint, risk, last offset counted] per brand and minute of event time;
# changelogged, so a restarted worker closes its minutes with the counts it had, and skips the
# records it counted before the crash (see brand_watch.count_into).
brand_minutes = (
    app.Table("brand-minutes", default=list, partitions=settings.topic_partitions, key_type=str)
    .tumbling(60.0, expires=timedelta(hours=6))
    .relative_to_field(BrandMention.ts)
)
# BrandWatch.to_state() per brand (JSON text): detector baselines, next minute to close, incidents.
spike_watch = app.Table("spike-watch", default=None, partitions=settings.topic_partitions, key_type=str,
                        value_type=str)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@lru_cache(maxsize=1)
def get_enricher():
    """Load the brand matcher, the models and the routing rules once per worker process."""
    from pipeline.enrich import load_mention_enricher

    return load_mention_enricher(settings)


async def deliver(topic, records: list[tuple[bytes | None, bytes]]) -> None:
    """Send records and wait until Kafka has acknowledged all of them.

    While Kafka refuses or times out, the whole set is sent again after a backoff (consumers
    de-duplicate by mention id), so the source batch is never acked before its output is stored.
    """

    async def send_all() -> None:
        futures = [await topic.send(key=key, value=value) for key, value in records]
        await asyncio.gather(*futures)

    await retry_until_done(send_all, what=f"sending {len(records)} records to {topic}")


async def send_dead_letters(letters: list[tuple[bytes | None, dict[str, Any]]]) -> None:
    """Publish dead letters and wait until Kafka has them (before the source batch is acked)."""
    await deliver(dlq_topic, [(key, encode_dead_letter(letter)) for key, letter in letters])


def exit_without_commit(agent: str, size: int) -> None:
    """A bug escaped an agent mid-batch. Faust's ``take_events`` would ack the batch anyway and
    the next commit would skip it, so stop the process before that: the batch is replayed on restart."""
    log.critical("%s failed on a batch of %d; exiting without committing its offsets", agent, size, exc_info=True)
    logging.shutdown()
    os._exit(70)


def split_valid(events: list[Any], now: datetime) -> tuple[list[Mention], list[tuple[bytes | None, dict[str, Any]]]]:
    """Validate a batch of raw events: (mentions, dead letters)."""
    skew = timedelta(seconds=settings.max_future_skew_s)
    mentions: list[Mention] = []
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
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                    ),
                )
            )
        elif result.id not in seen:  # the same id twice in one batch: keep the first
            seen.add(result.id)
            mentions.append(result)
    return mentions, letters


async def wait_for_layout(es, sink_settings) -> None:
    """Install the index template, retrying with backoff while Elasticsearch is unreachable."""
    await retry_until_done(lambda: ensure_mentions_layout(es, sink_settings),
                           what="installing the index template", cap_s=sink_settings.index_retry_max_s)


@app.agent(raw_topic)
async def validate_and_enrich(stream):
    """Validate raw mentions, enrich the good ones in batches, dead-letter the bad ones."""
    enricher = await asyncio.get_running_loop().run_in_executor(None, get_enricher)
    async for events in stream.take_events(settings.enrich_batch_size, within=settings.enrich_batch_window_s):
        try:
            await enrich_batch(enricher, events)
        except Exception:  # noqa: BLE001 - never let Faust ack a batch whose output is not stored
            exit_without_commit("validate_and_enrich", len(events))


async def enrich_batch(enricher, events: list[Any]) -> None:
    """One batch of raw events: enriched mentions to mentions.enriched, bad ones to the DLQ."""
    now = _now()
    mentions, letters = split_valid(events, now)
    enriched = []
    if mentions:
        # The forward pass is CPU-bound: run it off the event loop so heartbeats go on.
        loop = asyncio.get_running_loop()
        enriched, failed = await loop.run_in_executor(None, enricher.enrich_isolating, mentions, now)
        letters.extend(
            (m.id.encode(), dead_letter(stage="enrich", reason=f"enrichment failed: {exc!r}"[:1000],
                                        payload=m.model_dump(mode="json"), failed_at=now, mention_id=m.id))
            for m, exc in failed
        )
    await deliver(enriched_topic, [(m.id.encode("utf-8"), _json_bytes(m.to_document())) for m in enriched])
    if letters:
        await send_dead_letters(letters)
        log.info("dead-lettered %d records: %s", len(letters), letters[0][1]["reason"])


@app.agent(enriched_topic)
async def rekey_by_brand(stream):
    """Re-key each enriched mention by brand (one record per brand named) for counting."""
    async for events in stream.take_events(settings.index_batch_size, within=settings.index_batch_window_s):
        try:
            records = []
            for event in events:
                try:
                    document = json.loads(event.value)
                    records += [(r["brand"], BrandMention(**r)) for r in brand_mentions(document)]
                except (ValueError, KeyError, TypeError):
                    continue  # unreadable: index_mentions dead-letters it with the reason
            await deliver(by_brand_topic, records)
        except Exception:  # noqa: BLE001
            exit_without_commit("rekey_by_brand", len(events))


# Watches of the brands this worker's partitions hold (rebuilt from spike-watch after a restart).
_watches: dict[str, BrandWatch] = {}
_SAVE_EVERY_MINUTES = 15  # event-time minutes between state snapshots (and at every alert)
_unsaved: dict[str, int] = {}
_event_time = {"max": 0.0}  # the furthest event time this worker has seen, any brand (epoch s)
_last_record: dict[str, float] = {}  # brand -> time.monotonic() of its last mention here


def get_watch(brand: str) -> BrandWatch:
    watch = _watches.get(brand)
    if watch is None:
        router = get_enricher().routing
        tz = get_enricher().brands.timezone(brand)
        teams = {s: router.alert_teams(brand, s) for s in ("volume", "negative", "complaint", "risk")}
        config = watch_config(settings.detector_lateness_s, settings.alert_min_severity, settings.detector_warmup_h)
        saved = spike_watch.get(brand)
        watch = (BrandWatch.from_state(brand, json.loads(saved), tz, teams, config) if saved
                 else BrandWatch(brand, tz, teams, config))
        _watches[brand] = watch
    return watch


def watch_one(record: BrandMention, offset: int) -> list[dict[str, Any]]:
    """Count one record (at ``offset`` of its partition) in its minute, close the minutes it
    makes due, return alert documents."""
    watch = get_watch(record.brand)
    if record.tick:
        due = watch.advance(record.ts)
    else:
        _event_time["max"] = max(_event_time["max"], record.ts)
        _last_record[record.brand] = time.monotonic()
        counted = count_into(brand_minutes[record.brand].value(), record.asdict(), offset)
        if counted is not None:  # None: replayed after a crash, already in the minute
            brand_minutes[record.brand] = counted
        due = watch.note(record.asdict())
    alerts = []
    window = brand_minutes.table.window
    for minute in due:
        alerts += watch.close(minute, brand_minutes[record.brand][window.current(minute)])
    if due:
        _unsaved[record.brand] = _unsaved.get(record.brand, 0) + len(due)
    if alerts or _unsaved.get(record.brand, 0) >= _SAVE_EVERY_MINUTES:
        spike_watch[record.brand] = json.dumps(watch.to_state(), separators=(",", ":"))
        _unsaved[record.brand] = 0
    return alerts


@app.agent(by_brand_topic)
async def watch_brands(stream):
    """Per brand: count minutes in event time, run the spike detectors, publish alerts."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, get_enricher)  # brands and routing (shared with enrichment)
    async for event in stream.events():
        try:
            alerts = watch_one(event.value, event.message.offset)
            if alerts:
                await publish_alerts(await alert_sink().write(alerts))
        except Exception:  # noqa: BLE001 - never let Faust ack a record whose alerts are not stored
            exit_without_commit("watch_brands", 1)


@lru_cache(maxsize=1)
def alert_sink():
    from pipeline.alert_sink import AlertSink

    return AlertSink(make_es_client(settings), settings)


async def publish_alerts(stored: list[dict[str, Any]]) -> None:
    """Put alerts, as stored (people's changes merged in), on the alerts topic, keyed by alert id
    like the API's changes, for the SSE streams and the webhooks."""
    if not stored:
        return
    await deliver(alerts_topic, [(a["id"].encode(), _json_bytes(a)) for a in stored])
    log.info("alerts: %s", ", ".join(f"{a['brand']}/{a['signal']} {a['last_change']} {a['severity']} "
                                     f"v{a['version']}" for a in stored))


# Changes a webhook is told about; updates and acknowledgements reach the SSE stream only.
PUSHED_CHANGES = frozenset({"opened", "escalated", "reopened", "resolved"})


@app.agent(alerts_topic)
async def notify_webhooks(stream):
    """POST pushed alert changes to the registered webhooks; failures after the last retry go to
    the webhooks dead-letter topic. Offsets are acked once every delivery ended either way."""
    import httpx

    from pipeline.webhook_delivery import WebhookRegistry, deliver as post_to_hooks

    es = make_es_client(settings)
    registry = WebhookRegistry(es, settings)
    async with httpx.AsyncClient() as client:
        async for events in stream.take_events(100, within=0.2):
            try:
                alerts = [json.loads(e.value) for e in events]
                pushed = [a for a in alerts if a.get("last_change") in PUSHED_CHANGES]
                if not pushed:
                    continue
                hooks = await retry_until_done(registry.hooks, what="loading webhooks")
                results = await asyncio.gather(*(post_to_hooks(a, hooks, client, settings) for a in pushed))
                letters = [(alert["id"].encode(), encode_dead_letter(letter))
                           for alert, result in zip(pushed, results) for letter in result]
                if letters:
                    await deliver(webhooks_dlq_topic, letters)
            except Exception:  # noqa: BLE001
                exit_without_commit("notify_webhooks", len(events))


_QUIET_WALL_S = 30.0  # wall-clock seconds without a record before a brand counts as quiet


@app.timer(interval=10.0)
async def tick_quiet_brands() -> None:
    """Close the minutes of brands that went quiet while others talk: send each a clock tick at
    the worker's furthest event time (through the topic, so the tick is processed in order and
    in the partition that owns the brand's state). Only brands with no record for
    ``_QUIET_WALL_S`` of wall time: a brand whose partition merely lags behind others in a
    backlog still receives records, and must not have its minutes closed under them."""
    now, wall = _event_time["max"], time.monotonic()
    for brand, watch in list(_watches.items()):
        quiet = wall - _last_record.get(brand, wall) >= _QUIET_WALL_S
        if quiet and now - watch.watermark > settings.detector_lateness_s + 60:
            await by_brand_topic.send(key=brand, value=BrandMention(brand=brand, ts=now, tick=True))


@app.agent(enriched_topic)
async def index_mentions(stream):
    """Bulk-index enriched mentions; offsets are acked only after the bulk succeeded."""
    from pipeline.alert_sink import ensure_alerts_layout

    es = make_es_client(settings)
    await wait_for_layout(es, settings)
    await retry_until_done(lambda: ensure_alerts_layout(es, settings), what="installing the alerts indices",
                           cap_s=settings.index_retry_max_s)
    sink = MentionSink(es, settings)
    try:
        async for events in stream.take_events(settings.index_batch_size, within=settings.index_batch_window_s):
            try:
                await index_batch(sink, events)
            except Exception:  # noqa: BLE001 - never let Faust ack a batch that is not stored
                exit_without_commit("index_mentions", len(events))
    finally:
        await es.close()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")  # NaN/Infinity would fail the whole bulk request


def read_enriched(event: Any, now: datetime) -> tuple[dict[str, Any], datetime] | dict[str, Any]:
    """An enriched record as (document, created_at), or a dead letter saying why it is unreadable."""
    try:
        document = json.loads(event.value, parse_constant=_refuse_constant)
        if not isinstance(document, dict) or not isinstance(document.get("id"), str):
            raise ValueError("not an object with a string 'id'")
        return document, datetime.fromisoformat(document["created_at"])
    except (ValueError, KeyError, TypeError) as exc:
        message = event.message
        return dead_letter(stage="index", reason=f"unreadable enriched record: {exc}", payload=event.value,
                           failed_at=now, topic=message.topic, partition=message.partition, offset=message.offset)


async def index_batch(sink, events: list[Any]) -> None:
    """One batch of enriched events into Elasticsearch; what ES refuses for good, to the DLQ."""
    now = _now()
    batch, letters = [], []
    for event in events:
        read = read_enriched(event, now)
        if isinstance(read, tuple):
            batch.append(read)
        else:
            letters.append((event.message.key, read))
    try:
        refused = await sink.write(batch)
    except ApiError as exc:  # e.g. 401/400 for the whole request: keep the data in the DLQ
        log.error("bulk write failed for good for %d documents: %s", len(batch), exc)
        refused = [RefusedDocument(doc["id"], f"bulk failed: {exc!r}"[:1000], doc) for doc, _ in batch]
    letters.extend(
        (r.mention_id.encode(), dead_letter(stage="index", reason=r.reason, payload=r.document,
                                            failed_at=now, mention_id=r.mention_id))
        for r in refused
    )
    if letters:
        await send_dead_letters(letters)
