"""The earshot spike watcher: its own Faust app (process and consumer group), fed by the mention
worker's ``mentions.by-brand`` topic.

    mentions.by-brand --watch_brands--> (brand-minutes: windowed table, 1 min, event time;
                                         spike-watch: each brand's detector state)
                      --> ES alerts index --> alerts topic --notify_webhooks--> webhooks (pages)
                                                                  |--> digest book --send_digests--> webhooks
                                                                  `--> alerts.webhooks.dlq

It is a separate app because it has tables: after a crash, Faust's table recovery runs before
the streams resume, and with faust-streaming 0.15 we saw a restarted app with tables
occasionally leave a stream partition unconsumed. Keeping tables out of the mention worker keeps
every accepted mention's path free of that; here, a stalled partition delays alerts of the
brands in it until the next restart, and the counts it holds are never double-counted.

Run with ``earshot spikes`` (see ``cli/main.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from pipeline.alerts.explain import own_terms
from pipeline.alerts.records import SEVERITIES
from pipeline.alerts.incidents import SIGNALS, BrandWatch, count_into, watch_config
from pipeline.alerts.severity import level
from pipeline.alerts.webhooks import DigestBook
from pipeline.enrich.brands import BrandMatcher
from pipeline.worker.dead_letters import encode_dead_letter
from pipeline.metrics import MENTIONS_IN, count_out, watch_open_alerts
from pipeline.worker.retry import retry_until_done
from pipeline.enrich.routing import RoutingRules
from pipeline.settings import get_settings
from pipeline.store.mention_sink import make_es_client
from pipeline.worker.streams import BrandMention, deliver, finishing, json_bytes, make_app

log = logging.getLogger("earshot.spikes")
settings = get_settings()
logging.getLogger("elastic_transport").setLevel(logging.WARNING)

app = make_app(f"{settings.app_id}-spikes", settings, settings.spikes_web_port)

# Keyed by brand, so one brand's records, minutes and detector state live in one partition.
by_brand_topic = app.topic(settings.topic_by_brand, key_type=str, value_type=BrandMention, key_serializer="raw")
alerts_topic = app.topic(settings.topic_alerts, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")
webhooks_dlq_topic = app.topic(settings.topic_webhooks_dlq, key_type=bytes, value_type=bytes, key_serializer="raw",
                               value_serializer="raw")

# [volume, negative, complaint, risk, last offset counted] per brand and minute of event time;
# changelogged, so a restarted watcher closes its minutes with the counts it had, and skips the
# records it counted before the crash (see incidents.count_into).
brand_minutes = (
    app.Table("brand-minutes", default=list, partitions=settings.topic_partitions, key_type=str)
    .tumbling(60.0, expires=timedelta(hours=6))
    .relative_to_field(BrandMention.ts)
)
# BrandWatch.to_state() per brand (JSON text): detector baselines, next minute to close, incidents.
spike_watch = app.Table("spike-watch", default=None, partitions=settings.topic_partitions, key_type=str,
                        value_type=str)


@lru_cache(maxsize=1)
def brands_and_routing() -> tuple[BrandMatcher, RoutingRules]:
    """The brands (time zones) and the routing rules (alert teams), read once per process."""
    return BrandMatcher.from_yaml(settings.brands_file), RoutingRules.from_yaml(settings.routing_file)


# Watches of the brands this watcher's partitions hold (rebuilt from spike-watch after a restart).
_watches: dict[str, BrandWatch] = {}
_SAVE_EVERY_MINUTES = 15  # event-time minutes between state snapshots (and at every alert)
_unsaved: dict[str, int] = {}
_event_time = {"max": 0.0}  # the furthest event time this watcher has seen, any brand (epoch s)
_last_record: dict[str, float] = {}  # brand -> time.monotonic() of its last mention here


def get_watch(brand: str) -> BrandWatch:
    watch = _watches.get(brand)
    if watch is None:
        brands, router = brands_and_routing()
        tz = brands.timezone(brand)
        teams = {s: router.alert_teams(brand, s) for s in SIGNALS}
        config = watch_config(settings.detector_lateness_s, settings.alert_min_severity, settings.detector_warmup_h,
                              page_min_score=level(settings.alert_brand_min_severity.get(brand, 1)),
                              quiet_s=settings.alert_quiet_s)
        spec = next((b for b in brands.specs if b.id == brand), None)
        own = own_terms(brand, *([spec.name, *spec.aliases, *spec.handles, *spec.hashtags, *spec.cashtags]
                                 if spec else []))
        saved = spike_watch.get(brand)
        watch = (BrandWatch.from_state(brand, json.loads(saved), tz, teams, config, own) if saved
                 else BrandWatch(brand, tz, teams, config, own=own))
        _watches[brand] = watch
    return watch


def open_alerts() -> dict[str, int]:
    """Open incidents of the brands this watcher holds, by severity band: sent (version > 0) and
    not resolved by the detector. Brands are counted once their watch is loaded again after a
    restart (at their first record); a person's resolve in the API is not seen here."""
    counts: dict[str, int] = {}
    for watch in list(_watches.values()):
        incident = watch.incident
        if incident is not None and incident.version > 0 and incident.status != "resolved":
            counts[incident.severity] = counts.get(incident.severity, 0) + 1
    return counts


watch_open_alerts(open_alerts, SEVERITIES)


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
    """Per brand: count minutes in event time, run the spike detectors, store and publish alerts."""
    from pipeline.alerts.sink import ensure_alerts_layout

    await asyncio.get_running_loop().run_in_executor(None, brands_and_routing)
    # The watcher writes the alerts, so it installs their index (also done by the API and setup).
    await retry_until_done(lambda: ensure_alerts_layout(alert_sink().es, settings),
                           what="installing the alerts indices", cap_s=settings.index_retry_max_s)
    async for event in stream.events():
        with finishing("watch_brands", [event]):
            alerts = watch_one(event.value, event.message.offset)
            if alerts:
                stored = await alert_sink().write(alerts)
                await publish_alerts(stored)
                count_out("watch_brands", alerts=len(stored))
            MENTIONS_IN.labels("watch_brands").inc()


@lru_cache(maxsize=1)
def alert_sink():
    from pipeline.alerts.sink import AlertSink

    return AlertSink(make_es_client(settings), settings)


async def publish_alerts(stored: list[dict[str, Any]]) -> None:
    """Put alerts, as stored (people's changes merged in), on the alerts topic, keyed by alert id
    like the API's changes, for the SSE streams and the webhooks."""
    if not stored:
        return
    await deliver(alerts_topic, [(a["id"].encode(), json_bytes(a)) for a in stored])
    log.info("alerts: %s", ", ".join(f"{a['brand']}/{'+'.join(s['signal'] for s in a.get('signals') or []) or a['signal']}"
                                     f" {a['last_change']} {a.get('severity_score')}/10 {a['severity']} "
                                     f"v{a['version']} page={(a.get('paging') or {}).get('reason')}" for a in stored))


# Changes that may page a webhook (``webhooks.route`` decides); the rest reach the SSE stream only.
PUSHED_CHANGES = frozenset({"opened", "escalated", "reopened", "resolved"})
# What notify_webhooks keeps between alerts: the incidents that opened below each hook's
# threshold since its last digest (in memory: a restart loses one period's digest, never a page).
_digests = DigestBook()
_digest_period = {"start": datetime.now(timezone.utc)}


@lru_cache(maxsize=1)
def webhook_registry():
    from pipeline.alerts.delivery import WebhookRegistry

    return WebhookRegistry(make_es_client(settings), settings)


@lru_cache(maxsize=1)
def http_client():
    import httpx

    return httpx.AsyncClient()


@app.agent(alerts_topic)
async def notify_webhooks(stream):
    """POST the alert versions that page (``webhooks.route``) to the registered webhooks, and note
    those that opened below a hook's threshold for its digest; failures after the last retry go
    to the webhooks dead-letter topic. Offsets are acked once every delivery ended either way."""
    from pipeline.alerts.delivery import deliver as post_to_hooks

    registry = webhook_registry()
    async for events in stream.take_events(100, within=0.2):
        with finishing("notify_webhooks", events):
            MENTIONS_IN.labels("notify_webhooks").inc(len(events))
            alerts = [json.loads(e.value) for e in events]
            hooks = await retry_until_done(registry.hooks, what="loading webhooks")
            if not hooks:
                continue
            results = await asyncio.gather(*(post_to_hooks(a, hooks, http_client(), settings, digests=_digests)
                                             for a in alerts))
            count_out("notify_webhooks", pushed=sum(a.get("last_change") in PUSHED_CHANGES for a in alerts))
            letters = [(alert["id"].encode(), encode_dead_letter(letter))
                       for alert, result in zip(alerts, results) for letter in result]
            if letters:
                await deliver(webhooks_dlq_topic, letters)


@app.timer(interval=settings.alert_digest_s)
async def send_digests() -> None:
    """Every EARSHOT_ALERT_DIGEST_S: one message per hook listing the incidents that opened below
    its paging threshold in the period (none when there were none)."""
    from pipeline.alerts.delivery import deliver_digests

    due = _digests.take()
    start, end = _digest_period["start"], datetime.now(timezone.utc)
    _digest_period["start"] = end
    if not due:
        return
    hooks = await retry_until_done(webhook_registry().hooks, what="loading webhooks")
    letters = await deliver_digests(due, hooks, start, end, http_client(), settings)
    log.info("digests: %s", ", ".join(f"{hook_id} ({len(entries)} incidents)" for hook_id, entries in due.items()))
    if letters:
        await deliver(webhooks_dlq_topic, [(f"digest:{letter['payload']['webhook_id']}".encode(),
                                            encode_dead_letter(letter)) for letter in letters])


_QUIET_WALL_S = 30.0  # wall-clock seconds without a record before a brand counts as quiet


@app.timer(interval=10.0)
async def tick_quiet_brands() -> None:
    """Close the minutes of brands that went quiet while others talk: send each a clock tick at
    the watcher's furthest event time (through the topic, so the tick is processed in order and
    in the partition that owns the brand's state). Only brands with no record for
    ``_QUIET_WALL_S`` of wall time: a brand whose partition merely lags behind others in a
    backlog still receives records, and must not have its minutes closed under them."""
    now, wall = _event_time["max"], time.monotonic()
    for brand, watch in list(_watches.items()):
        quiet = wall - _last_record.get(brand, wall) >= _QUIET_WALL_S
        if quiet and now - watch.watermark > settings.detector_lateness_s + 60:
            await by_brand_topic.send(key=brand, value=BrandMention(brand=brand, ts=now, tick=True))
