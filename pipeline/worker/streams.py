"""What earshot's two Faust apps share: the app settings, the by-brand record, and the rules
for acknowledging only what is done.

``pipeline/worker/app.py`` is the mention worker (validate, enrich, index, re-key by brand: no tables);
``pipeline/alerts/watcher.py`` is the spike watcher (windowed and changelogged tables, alerts,
webhooks). They run as separate processes and consumer groups: a restart of the watcher (table
recovery) never touches the consumption of mentions.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust

from pipeline.logs import faust_logging_config, record_context
from pipeline.metrics import serve_metrics
from pipeline.worker.retry import retry_until_done
from pipeline.settings import Settings
from pipeline.worker.wire import json_bytes  # noqa: F401 - the wire format, re-exported for both apps

log = logging.getLogger("earshot.worker")


class LedTable(faust.Table):
    """A Faust table that takes a changelog with 0 partitions in the consumer's metadata for
    what it is: metadata not in yet (a topic just created), not a mismatch. Faust 0.15 raises
    ``PartitionsMismatch`` at the first write then, and the agent's process exits. ``cli``
    creates every changelog before the app starts, so this should not happen; if metadata
    still lags, the check is skipped for that write and made again at the next one (a real
    mismatch, both counts known, still raises). Overrides a private method of faust-streaming
    0.15's ``Collection``: checked by tests/unit/test_topics.py."""

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        if not self.app.consumer.topic_partitions(self.changelog_topic_name):
            return  # None or 0: not known yet; not cached as verified, so checked again later
        super()._verify_source_topic_partitions(source_topic)


def make_app(app_id: str, settings: Settings, web_port: int) -> faust.App:
    """A Faust app with earshot's delivery settings, logging in ``settings.log_format`` and
    serving Prometheus metrics at ``/metrics`` on its web port."""
    datadir = settings.home / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        Table=LedTable,
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        # Faust's local state folder (table snapshots, leader files) under earshot's state folder,
        # not in whatever the working directory is.
        datadir=str(datadir).replace("{", "{{").replace("}", "}}"),  # Faust format()s it
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,  # seconds: small window of re-processing after a crash
        broker_session_timeout=settings.kafka_session_timeout_s,
        producer_acks=-1,  # wait for the in-sync replicas: an acked record survives a broker loss
        # Let a batch's records gather into a few produce requests (socket writes were most of the
        # worker's Kafka CPU in bench/profile.py); seconds, at most this much added latency.
        producer_linger=0.005,
        web_host=settings.web_host,
        web_port=web_port,
        web_enabled=True,
        logging_config=faust_logging_config(settings.log_format),
    )
    serve_metrics(app, app_id, settings.stall_s)
    return app


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


async def deliver(topic, records: list[tuple[Any, Any]]) -> None:
    """Send records and wait until Kafka has acknowledged all of them.

    While Kafka refuses or times out, the whole set is sent again after a backoff (consumers
    de-duplicate by id), so the source batch is never acked before its output is stored.
    """

    async def send_all() -> None:
        futures = [await topic.send(key=key, value=value) for key, value in records]
        await asyncio.gather(*futures)

    await retry_until_done(send_all, what=f"sending {len(records)} records to {topic}")


def hold_back(events: list[Any]) -> None:
    """Keep Faust from acknowledging events the agent did not finish with.

    ``stream.take_events`` acks its batch in a ``finally``, even when the agent was cancelled
    mid-batch (a SIGTERM, a rebalance): the next commit would then skip records whose output was
    never delivered. A message already marked acked is not acked again, so it stays out of the
    consumer's acked offsets, the commit stops before it, and the batch is read again after the
    restart (duplicates are harmless: ids make every write idempotent)."""
    for event in events:
        event.message.acked = True


def exit_without_commit(agent: str, size: int) -> None:
    """A bug escaped an agent mid-batch. Faust's ``take_events`` would ack the batch anyway and
    the next commit would skip it, so stop the process before that: the batch is replayed on restart."""
    log.critical("%s failed on a batch of %d; exiting without committing its offsets", agent, size, exc_info=True)
    logging.shutdown()
    os._exit(70)


@contextmanager
def finishing(agent: str, events: list[Any]) -> Iterator[None]:
    """Wrap an agent's work on ``events``: Faust must not acknowledge them unless it completed.

    Cancelled mid-way (a SIGTERM, a rebalance): ``hold_back`` and let the cancellation through.
    A bug: ``exit_without_commit``. Either way the events are read again after the restart."""
    try:
        yield
    except asyncio.CancelledError:
        hold_back(events)
        log_replay_positions(agent, events, logging.INFO, "cancelled mid-batch: held back")
        raise
    except Exception:  # noqa: BLE001 - never let Faust ack what was not finished
        log_replay_positions(agent, events, logging.CRITICAL, "failed mid-batch")
        exit_without_commit(agent, len(events))


def log_replay_positions(agent: str, events: list[Any], level: int, what: str) -> None:
    """One log line per partition of an unfinished batch, at its lowest offset: where the
    records will be read again from (``topic``, ``partition``, ``offset`` fields)."""
    first: dict[tuple[str, int], int] = {}
    for event in events:
        message = event.message
        key = (message.topic, message.partition)
        first[key] = min(first.get(key, message.offset), message.offset)
    for (topic, partition), offset in sorted(first.items()):
        log.log(level, "%s %s; %s[%d] is read again from offset %d", agent, what, topic, partition, offset,
                extra=record_context(topic=topic, partition=partition, offset=offset, agent=agent))
