"""Run a live connector: fetch batches, publish them to Kafka, then save the checkpoint.

The order is the whole guarantee: a batch's checkpoint is saved only after Kafka acknowledged
every record of it (``acks=all``, idempotent producer), so a crash or restart resumes after the
last acknowledged batch: nothing is skipped. The worst case is re-fetching the records of one
batch, whose ids are stable, so the index still holds them once.

SIGTERM/SIGINT stop the connector between batches (a batch in flight is finished first, a fetch
in progress is abandoned: its checkpoint was not saved).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from connectors.base import Batch, LiveSource, Outgoing
from connectors.checkpoint import CheckpointStore
from connectors.polite import Counters
from pipeline.worker.dead_letters import dead_letter, encode_dead_letter
from pipeline.worker.retry import backoff_delay
from pipeline.schema import deletion_record
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def encode_live(out: Outgoing, now: datetime) -> bytes:
    """The bytes a live connector publishes for one record (``ingested_at`` = now)."""
    if out.unparsed is not None:
        return out.unparsed
    if out.deleted:
        record = out.record or {}
        notice = deletion_record(out.key, str(record.get("source") or out.key.split(":", 1)[0]), now,
                                 record.get("reason"))
        return json.dumps(notice, separators=(",", ":")).encode("utf-8")
    record = dict(out.record or {})
    record.setdefault("created_at", now.isoformat())
    record["ingested_at"] = now.isoformat()
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class KafkaPublisher:
    """aiokafka producer for ``mentions.raw``; ``publish`` returns once Kafka has every record."""

    def __init__(self, settings: Settings, client_id: str = "earshot-connector"):
        self.settings = settings
        self.client_id = client_id
        self.producer = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, client_id=self.client_id, acks="all",
            enable_idempotence=True, linger_ms=5, max_request_size=4 * 1024 * 1024,
            # A broker restart must not fail the batch: retry sends for up to 10 minutes.
            request_timeout_ms=30_000, retry_backoff_ms=500,
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def publish(self, items: list[Outgoing], counters: Counters | None = None) -> None:
        """Send every item (too-large ones to the DLQ, with the reason) and wait for all acks."""
        assert self.producer is not None, "start() first"
        counters = counters or Counters()
        now = datetime.now(timezone.utc)
        futures = []
        for out in items:
            value = encode_live(out, now)
            key = out.key.encode("utf-8")
            if len(value) > self.settings.max_message_bytes:
                letter = dead_letter(stage="connector", reason=f"record of {len(value)} bytes exceeds the "
                                     f"{self.settings.max_message_bytes}-byte message limit", payload=value,
                                     failed_at=now, mention_id=out.key)
                futures.append(await self.producer.send(self.settings.topic_dlq, key=key,
                                                        value=encode_dead_letter(letter)))
                counters.dead_lettered += 1
            else:
                futures.append(await self.producer.send(self.settings.topic_raw, key=key, value=value))
                if out.deleted:
                    counters.deleted += 1
                else:
                    counters.published += 1
        if futures:
            await asyncio.gather(*futures)  # raises if Kafka refused any: then nothing is checkpointed


async def publish_until_acknowledged(publisher: KafkaPublisher, items: list[Outgoing], counters: Counters,
                                     stop: asyncio.Event, settings: Settings) -> bool:
    """Publish one batch, retrying with capped exponential backoff while Kafka refuses or cannot
    be reached (a broker restart outlasting the client's own 30 s of retries); False if ``stop``
    was set first. Re-sending a batch is safe: mention ids are keys and the index is by id."""
    from aiokafka.errors import KafkaError

    attempt = 0
    while True:
        attempt_counts = Counters()  # so a retried batch is counted once
        try:
            await publisher.publish(items, attempt_counts)
        except (KafkaError, asyncio.TimeoutError) as exc:
            attempt += 1
            counters.errors += 1
            counters.retries += 1
            delay = backoff_delay(attempt, base_s=settings.connector_backoff_base_s, cap_s=settings.connector_backoff_cap_s)
            log.warning("Kafka did not acknowledge a batch of %d (%r); retrying in %.1f s", len(items), exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return False
            except asyncio.TimeoutError:
                continue
        counters.published += attempt_counts.published
        counters.deleted += attempt_counts.deleted
        counters.dead_lettered += attempt_counts.dead_lettered
        return True


@dataclass
class RunReport:
    batches: int
    counters: dict[str, Any]
    seconds: float


async def run_live(source: LiveSource, settings: Settings, *, stop: asyncio.Event | None = None,
                   store: CheckpointStore | None = None, publisher: KafkaPublisher | None = None,
                   counters: Counters | None = None, max_batches: int | None = None) -> RunReport:
    """Run ``source`` until it ends, ``stop`` is set, or ``max_batches`` were published."""
    stop = stop or asyncio.Event()
    store = store or CheckpointStore(settings.checkpoints)
    counters = counters or getattr(source, "counters", None) or Counters()
    own_publisher = publisher is None
    publisher = publisher or KafkaPublisher(settings, client_id=f"earshot-connector-{source.name}")
    if own_publisher:
        await publisher.start()
    started = time.monotonic()
    batches = source.batches(store.load(source.name)).__aiter__()
    done = 0
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set() and (max_batches is None or done < max_batches):
            fetch = asyncio.ensure_future(batches.__anext__())
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not fetch.done():  # told to stop while waiting for the platform
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
                break
            try:
                batch: Batch = fetch.result()
            except StopAsyncIteration:
                break
            if batch.items and not await publish_until_acknowledged(publisher, batch.items, counters, stop, settings):
                break  # told to stop while Kafka was away: the checkpoint stays before this batch
            if batch.checkpoint is not None:
                store.save(source.name, batch.checkpoint)
            counters.batches += 1
            done += 1
            if batch.items:
                log.info("%s: published %d records (%s)", source.name, len(batch.items), counters.as_dict())
    finally:
        stopping.cancel()
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # noqa: BLE001 - closing a generator that was cancelled mid-fetch
                pass
        if own_publisher:
            await publisher.stop()
    return RunReport(batches=done, counters=counters.as_dict(), seconds=time.monotonic() - started)


def run_until_signalled(source: LiveSource, settings: Settings, **kwargs: Any) -> RunReport:
    """``run_live`` in its own event loop, stopping cleanly on SIGTERM or SIGINT."""

    async def main() -> RunReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        report = await run_live(source, settings, stop=stop, **kwargs)
        log.info("%s stopped after %d batches: %s", source.name, report.batches, report.counters)
        return report

    return asyncio.run(main())
