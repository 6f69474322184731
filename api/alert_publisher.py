"""Publishes the alert changes people make through the API (ack, resolve) to the alerts topic,
so that SSE clients and webhooks see them like the detector's.

The Kafka producer is started on first use, not at start-up: the API starts and serves while
Kafka is down. A change that cannot be published is still stored in Elasticsearch; the failure
is logged and reported to the caller, and the producer is retried on the next change.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.settings import Settings

log = logging.getLogger("earshot.api.alerts")


class AlertPublisher:
    def __init__(self, settings: Settings, timeout_s: float = 5.0):
        """``timeout_s``: longest a route waits for Kafka (start-up or acknowledgement), s."""
        self.settings = settings
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def publish(self, alert: dict[str, Any]) -> bool:
        """Send ``alert`` keyed by its id and wait for Kafka's acknowledgement; False if it failed."""
        value = json.dumps(alert, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            producer = await self._started()
            await asyncio.wait_for(producer.send_and_wait(self.settings.topic_alerts, value=value,
                                                          key=alert["id"].encode("utf-8")), self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - Kafka down or slow: the change is stored, say so and go on
            log.warning("alert %s v%s stored but not published to %s: %r", alert["id"], alert["version"],
                        self.settings.topic_alerts, exc)
            return False
        return True

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:  # two concurrent first requests must not start two producers
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                            request_timeout_ms=int(self.timeout_s * 1000))
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
