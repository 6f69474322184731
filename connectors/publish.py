"""Publish a source's records to ``mentions.raw`` at a chosen rate, keyed by mention id.

The producer is idempotent with ``acks=all`` (kafka-python's defaults, stated here anyway),
and ``publish`` returns only after Kafka acknowledged every record: what it reports as
published is in the topic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from connectors.base import Outgoing, Source
from connectors.replay import Timeline
from pipeline.worker.dead_letters import dead_letter, encode_dead_letter
from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class PublishReport:
    published: int = 0  # records sent (to mentions.raw, or to the DLQ when too large)
    dead_lettered: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0


def make_producer(settings: Settings):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="earshot-connector",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
        max_request_size=4 * 1024 * 1024,
    )


def encode(out: Outgoing, created_at: datetime, ingested_at: datetime) -> bytes:
    if out.unparsed is not None:
        return out.unparsed
    record: dict[str, Any] = dict(out.record or {})
    record.setdefault("created_at", created_at.isoformat())
    record["ingested_at"] = ingested_at.isoformat()
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def publish(
    source: Source,
    settings: Settings,
    *,
    rate: float | None = None,
    timeline: Timeline | None = None,
    progress: bool = True,
    total: int | None = None,
    on_sent: Callable[[str, float], None] | None = None,
    producer=None,
) -> PublishReport:
    """Send every record of ``source`` to ``mentions.raw``; ``rate`` in mentions/s (None = max).

    ``on_sent(mention_id, ingested_at_epoch_s)`` is called for each record (benchmarks time them).
    """
    from tqdm import tqdm

    timeline = timeline or Timeline()
    own_producer = producer is None
    producer = producer or make_producer(settings)
    report = PublishReport()
    futures = []
    bar = tqdm(total=total, unit="mention", desc=f"replay {source.name}", disable=not progress, smoothing=0.1)
    started = time.monotonic()
    try:
        for i, out in enumerate(source.records()):
            if rate:
                # Pace against the schedule (not per-message sleeps) so the average rate holds.
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            now = datetime.now(timezone.utc)
            value = encode(out, timeline.at(i, now), now)
            if len(value) > settings.max_message_bytes:
                # Kafka would refuse it; keep it (truncated, and saying so) in the dead-letter topic.
                letter = dead_letter(stage="connector", reason=f"record of {len(value)} bytes exceeds the "
                                     f"{settings.max_message_bytes}-byte message limit", payload=value,
                                     failed_at=now, mention_id=out.key)
                futures.append(producer.send(settings.topic_dlq, key=out.key.encode("utf-8"),
                                             value=encode_dead_letter(letter)))
                report.dead_lettered += 1
            else:
                futures.append(producer.send(settings.topic_raw, key=out.key.encode("utf-8"), value=value))
            if on_sent:
                on_sent(out.key, now.timestamp())
            report.published += 1
            bar.update(1)
            if len(futures) >= 10_000:
                _wait_all(producer, futures)
        _wait_all(producer, futures)
    finally:
        bar.close()
        if own_producer:
            producer.close(timeout=30)
    report.seconds = time.monotonic() - started
    return report


def _wait_all(producer, futures: list) -> None:
    """Flush and raise if Kafka refused any record (nothing is reported published that is not)."""
    producer.flush(timeout=120)
    for future in futures:
        future.get(timeout=120)
    futures.clear()
