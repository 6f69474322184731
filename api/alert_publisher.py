"""Publishes the alert changes people make through the API (ack, resolve) to the alerts topic,
so that SSE clients and webhooks see them like the detector's.

The Kafka producer is started on first use, not at start-up: the API starts and serves while
Kafka is down. A change that cannot be published is still stored in Elasticsearch; the failure
is logged and reported to the caller, and the producer is retried on the next change.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from api.kafka import LazyProducer

log = logging.getLogger("earshot.api.alerts")


class AlertPublisher:
    def __init__(self, producer: LazyProducer):
        self.producer = producer
        self.settings = producer.settings

    async def publish(self, alert: dict[str, Any]) -> bool:
        """Send ``alert`` keyed by its id and wait for Kafka's acknowledgement; False if it failed."""
        value = json.dumps(alert, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            await self.producer.send_all([(self.settings.topic_alerts, alert["id"].encode("utf-8"), value)])
        except Exception as exc:  # noqa: BLE001 - Kafka down or slow: the change is stored, say so and go on
            log.warning("alert %s v%s stored but not published to %s: %r", alert["id"], alert["version"],
                        self.settings.topic_alerts, exc)
            return False
        return True
