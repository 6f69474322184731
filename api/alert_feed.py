"""The live alert feed of one API process: one Kafka consumer fanned out to every SSE client.

The consumer reads every partition of the alerts topic without a consumer group, from the end
(a live stream, not a replay: history is ``GET /v1/alerts``), and copies each alert into the
bounded queue of every client whose filter it passes. A client whose queue is full is too slow:
it is dropped (its stream ends and it may reconnect) rather than let memory grow without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from pipeline.worker.retry import backoff_delay
from pipeline.settings import Settings
from pipeline.alerts.webhooks import SEVERITY_RANK, alert_matches

log = logging.getLogger("earshot.api.alerts")


@dataclass(eq=False)
class Subscription:
    """One SSE client: its filter and its queue; ``None`` in the queue means "you were dropped"."""

    brands: frozenset[str]
    min_severity: str
    queue: asyncio.Queue[dict[str, Any] | None] = field(repr=False)


class AlertFeed:
    def __init__(self, settings: Settings, queue_size: int = 256, retry_cap_s: float = 30.0):
        """``queue_size``: alerts buffered per client before it counts as too slow and is dropped."""
        self.settings = settings
        self.queue_size = queue_size
        self.retry_cap_s = retry_cap_s
        self.subscribers: set[Subscription] = set()

    def subscribe(self, brands: frozenset[str], min_severity: str) -> Subscription:
        sub = Subscription(brands, min_severity, asyncio.Queue(maxsize=self.queue_size))
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def fan_out(self, alert: dict[str, Any]) -> None:
        """Copy ``alert`` to every subscriber that wants it; drop those that are full."""
        for sub in list(self.subscribers):
            if not alert_matches(alert, sub.brands, sub.min_severity):
                continue
            try:
                sub.queue.put_nowait(alert)
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        self.unsubscribe(sub)
        while not sub.queue.empty():  # make room for the end-of-stream marker
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)
        log.warning("SSE client dropped: %d alerts unread (brands=%s)", self.queue_size, sorted(sub.brands))

    async def run(self) -> None:
        """Consume the alerts topic until cancelled, reconnecting with backoff; never raises
        because Kafka is down (the API serves the rest meanwhile)."""
        failures = 0
        while True:
            consumer = AIOKafkaConsumer(
                self.settings.topic_alerts,
                bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=None,  # no group: every API process gets every partition
                enable_auto_commit=False,
                auto_offset_reset="latest",
                metadata_max_age_ms=10_000,  # notice the topic soon if the worker creates it later
            )
            try:
                await consumer.start()
                failures = 0
                log.info("alert feed consuming %s", self.settings.topic_alerts)
                async for record in consumer:
                    self._consume(record.value, record.partition, record.offset)
            except Exception as exc:  # noqa: BLE001 - Kafka down or gone: retry, keep the API up
                failures += 1
                log.warning("alert feed: Kafka unavailable (%r); retrying", exc)
            finally:
                await consumer.stop()
            await asyncio.sleep(backoff_delay(max(failures, 1), cap_s=self.retry_cap_s))

    def _consume(self, value: bytes | None, partition: int, offset: int) -> None:
        try:
            alert = json.loads(value or b"")
            if not isinstance(alert, dict) or not {"id", "version", "brand"} <= alert.keys() \
                    or alert.get("severity") not in SEVERITY_RANK:
                raise ValueError("not an alert object")
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("alert feed: skipping unreadable record %s[%d]@%d: %s",
                        self.settings.topic_alerts, partition, offset, exc)
            return
        self.fan_out(alert)
