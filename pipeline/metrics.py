"""Prometheus metrics of every earshot process, defined once (names are a dashboard's contract).

The worker and the spike watcher serve them on their Faust web server (``serve_metrics``, at
``/metrics`` on ``EARSHOT_WORKER_WEB_PORT`` / ``EARSHOT_SPIKES_WEB_PORT``), the API on its own
``/metrics`` (``api/metrics.py``). Each process has its own registry contents: a counter that a
process never touches is exported with no samples there.

Names (all in the default registry):

    earshot_mentions_in_total{agent}                records an agent took from its topic
    earshot_mentions_out_total{agent,outcome}       what became of them (enriched, rejected, indexed, ...)
    earshot_consumer_lag{app,topic,partition}       highwater - committed offset, per assigned partition
    earshot_partition_stalled{app,topic,partition}  1 while a partition's lag grows and nothing of it is read
    earshot_enrich_batch_seconds / _batch_size      model enrichment per batch (s, mentions)
    earshot_es_bulk_seconds{operation}              one Elasticsearch bulk request (s)
    earshot_es_bulk_failures_total{reason}          whole-request failures and per-item errors
    earshot_dlq_total{stage}                        dead letters, by the stage that refused the record
    earshot_open_alerts{severity}                   incidents the spike watcher has open
    earshot_webhook_failures_total{final}           failed webhook attempts (final="true": dead-lettered)
    earshot_http_requests_total{method,route,status}, earshot_http_request_seconds{route}   (the API)

Outcomes per agent (a batch is counted once it is done; ``in`` = the sum of the outcomes, except
for the agents that fan out):

    enrich_and_index      (the worker's one agent, on mentions.raw; in = enriched + rejected + deleted + dropped)
                          enriched | rejected (dead-lettered at validation or enrichment) |
                          deleted (notices applied and passed on) |
                          dropped (an id twice in one batch, or deleted within its batch);
                          of the enriched: indexed | refused (by Elasticsearch, dead-lettered) |
                          withheld (re-posted after its deletion notice in one batch: not indexed);
                          fan-out: echoes (echo counts written) | by_brand (records written: one per brand named)
    watch_brands          alerts (alert versions stored and published)
    notify_webhooks       pushed (alert changes sent to the hooks that want them)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.logs import record_context

log = logging.getLogger(__name__)
disable_created_metrics()  # no *_created series: they double the exposition and no dashboard reads them

MENTIONS_IN = Counter("earshot_mentions_in_total", "Records an agent took from its topic.", ["agent"])
MENTIONS_OUT = Counter("earshot_mentions_out_total", "What an agent made of its records, by outcome.",
                       ["agent", "outcome"])
ENRICH_BATCH_SECONDS = Histogram("earshot_enrich_batch_seconds", "Model enrichment of one batch, s.",
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ENRICH_BATCH_SIZE = Histogram("earshot_enrich_batch_size", "Mentions per enrichment batch.",
                              buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
ES_BULK_SECONDS = Histogram("earshot_es_bulk_seconds", "One Elasticsearch bulk request, s (failed ones too).",
                            ["operation"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ES_BULK_FAILURES = Counter(
    "earshot_es_bulk_failures_total",
    "Bulk requests that failed as a whole (unreachable, retryable_status, refused) and items that failed "
    "(item_retryable, item_refused).",
    ["reason"],
)
DLQ = Counter("earshot_dlq_total", "Dead letters written, by the stage that refused the record.", ["stage"])
OPEN_ALERTS = Gauge("earshot_open_alerts", "Incidents the spike watcher has open (sent, not resolved).",
                    ["severity"])
WEBHOOK_FAILURES = Counter("earshot_webhook_failures_total",
                           "Failed webhook delivery attempts; final=\"true\": given up, dead-lettered.", ["final"])
HTTP_REQUESTS = Counter("earshot_http_requests_total", "API requests, by route template and status.",
                        ["method", "route", "status"])
HTTP_REQUEST_SECONDS = Histogram("earshot_http_request_seconds", "API request duration until the response "
                                 "ended, s (an SSE stream: its whole life).", ["route"])


def count_out(agent: str, **outcomes: int) -> None:
    """Add ``outcome=n`` to ``earshot_mentions_out_total``, skipping zeros."""
    for outcome, n in outcomes.items():
        if n:
            MENTIONS_OUT.labels(agent, outcome).inc(n)


def exposition() -> tuple[bytes, str]:
    """The text exposition of the default registry, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- consumer lag -------------------------------------------------------------------------------

def partition_lag(highwater: int | None, committed: int | None, read: int | None) -> int | None:
    """Records of a partition the group has not committed yet: ``highwater - committed``.

    Offsets follow Kafka: ``highwater`` and ``committed`` are the *next* offset (to be written,
    to be read); ``read`` is the last offset handed to the agents. Without a commit yet, the
    consumed position (``read + 1``) stands in, and with nothing read either, the log start
    (``auto_offset_reset=earliest``; taken as 0). None when the highwater is not known yet (no
    fetch answered since the assignment): no sample rather than a made-up one."""
    if highwater is None:
        return None
    position = committed if committed is not None else (read + 1 if read is not None else 0)
    return max(highwater - position, 0)


def consumer_lags(consumer: Any) -> Iterator[tuple[str, int, int]]:
    """``(topic, partition, lag)`` for each partition assigned to a started Faust consumer."""
    for topic, partition, lag, _read in consumer_positions(consumer):
        yield topic, partition, lag


def consumer_positions(consumer: Any) -> Iterator[tuple[str, int, int, int | None]]:
    """``(topic, partition, lag, last offset read)`` for each partition assigned to a started
    Faust consumer.

    Faust keeps the committed and read offsets per partition (``_committed_offset``,
    ``_read_offset``: no public accessor in faust-streaming 0.15) and the highwater comes from
    the Kafka client's last fetch (``consumer.highwater(tp)``, no request made)."""
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    read: Mapping[Any, int | None] = getattr(consumer, "_read_offset", {})
    for tp in sorted(consumer.assignment()):
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - revoked between assignment() and here
            continue
        # .get: these are defaultdicts, and a scrape must not add keys to Faust's state
        lag = partition_lag(highwater, committed.get(tp), read.get(tp))
        if lag is not None:
            yield tp.topic, tp.partition, lag, read.get(tp)


PartitionKey = tuple[str, int]


@dataclass
class StallWatch:
    """Finds partitions whose consumer went idle while their lag grows: records keep arriving,
    none is read (the table-recovery stall seen with faust-streaming 0.15, a hung agent, a
    backend that blocks every batch). Pure: samples and the clock come in.

    A partition is *stalled* once its last-read offset has not moved for ``idle_s`` seconds
    while its lag rose above what it was when reading stopped. Reading again ends the stall."""

    idle_s: float = 60.0
    # per partition: (last read offset, lag when it was last seen moving, since when idle)
    _idle: dict[PartitionKey, tuple[int | None, int, float]] = field(default_factory=dict)
    stalled: set[PartitionKey] = field(default_factory=set)

    def observe(self, now_s: float, samples: Iterable[tuple[str, int, int, int | None]]
                ) -> tuple[list[tuple[PartitionKey, int, int, float]], list[PartitionKey]]:
        """Take one sample per assigned partition; return (newly stalled as (key, lag then, lag
        now, idle seconds), recovered keys). Partitions no longer assigned are forgotten."""
        seen: set[PartitionKey] = set()
        new, recovered = [], []
        for topic, partition, lag, read in samples:
            key = (topic, partition)
            seen.add(key)
            last = self._idle.get(key)
            if last is None or last[0] != read:  # first sight, or it read something: moving
                self._idle[key] = (read, lag, now_s)
                if key in self.stalled:
                    self.stalled.discard(key)
                    recovered.append(key)
                continue
            _, lag_then, since = last
            if key not in self.stalled and lag > lag_then and now_s - since >= self.idle_s:
                self.stalled.add(key)
                new.append((key, lag_then, lag, now_s - since))
        for key in set(self._idle) - seen:
            del self._idle[key]
            if key in self.stalled:
                self.stalled.discard(key)
                recovered.append(key)
        return new, recovered


STALLED = Gauge("earshot_partition_stalled", "1 while a partition's lag grows and its consumer reads nothing "
                "of it (for EARSHOT_STALL_S seconds); 0 once it reads again.", ["app", "topic", "partition"])


class ConsumerLagCollector(Collector):
    """``earshot_consumer_lag``, computed at scrape time from each watched Faust app's consumer.
    Never raises: before the consumer started (or during a rebalance) it exports what it can."""

    def __init__(self) -> None:
        self.apps: dict[str, Any] = {}

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Declared here so that registering does not call collect() (i.e. touch the apps) at import.
        return [self._family()]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = self._family()
        for name, app in list(self.apps.items()):
            consumer = getattr(app, "_consumer", None)  # app.consumer would create one before the start
            if consumer is None:
                continue
            try:
                for topic, partition, lag in consumer_lags(consumer):
                    family.add_metric([name, topic, str(partition)], lag)
            except Exception as exc:  # noqa: BLE001 - a scrape must never fail (not started, rebalancing)
                log.debug("consumer lag of %s not available: %r", name, exc)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("earshot_consumer_lag", "Records not yet committed by the consumer group: "
                                 "highwater - committed offset, per assigned partition.",
                                 labels=["app", "topic", "partition"])


CONSUMER_LAG = ConsumerLagCollector()
REGISTRY.register(CONSUMER_LAG)


def serve_metrics(app: Any, name: str, stall_s: float = 60.0) -> None:
    """Serve the registry at ``/metrics`` on a Faust app's web server, export its consumer lag
    under ``app=name``, and watch its partitions for stalls (``StallWatch``) every 10 s: a stall
    is logged as a warning and exported as ``earshot_partition_stalled``."""
    CONSUMER_LAG.apps[name] = app
    watch = StallWatch(idle_s=stall_s)

    @app.timer(interval=10.0)
    async def watch_for_stalls() -> None:
        consumer = getattr(app, "_consumer", None)
        if consumer is None:
            return
        try:
            samples = list(consumer_positions(consumer))
        except Exception as exc:  # noqa: BLE001 - rebalancing: sample again next time
            log.debug("positions of %s not available: %r", name, exc)
            return
        new, recovered = watch.observe(time.monotonic(), samples)
        for (topic, partition), lag_then, lag_now, idle in new:
            log.warning("%s: partition %s[%d] is stalled: nothing read for %.0f s while its lag grew from %d to %d",
                        name, topic, partition, idle, lag_then, lag_now,
                        extra=record_context(topic=topic, partition=partition))
            STALLED.labels(name, topic, str(partition)).set(1)
        for topic, partition in recovered:
            log.info("%s: partition %s[%d] is read again", name, topic, partition)
            STALLED.labels(name, topic, str(partition)).set(0)

    @app.page("/metrics")
    async def metrics(view, request):  # noqa: ARG001 - Faust's view signature
        body, content_type = exposition()
        return view.bytes(body, headers={"Content-Type": content_type})


def watch_open_alerts(open_by_severity: Callable[[], Mapping[str, int]], severities: Iterable[str]) -> None:
    """Export ``earshot_open_alerts{severity}`` from ``open_by_severity()``, read at scrape time."""
    for severity in severities:
        OPEN_ALERTS.labels(severity).set_function(lambda s=severity: open_by_severity().get(s, 0))
