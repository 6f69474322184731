"""One Kafka producer per API process, started on first use (the API serves while Kafka is down).

Routes that publish (alert changes, ``POST /v1/ingest``) share it. ``acks=all`` with idempotence:
a send that returned is in the topic on every in-sync replica.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from pipeline.settings import Settings


class LazyProducer:
    def __init__(self, settings: Settings, timeout_s: float = 5.0):
        """``timeout_s``: longest a route waits for Kafka (start-up or acknowledgement), s."""
        self.settings = settings
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def started(self) -> AIOKafkaProducer:
        async with self._lock:  # two concurrent first requests must not start two producers
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                            enable_idempotence=True, max_request_size=4 * 1024 * 1024,
                                            request_timeout_ms=int(self.timeout_s * 1000))
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send_all(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Send ``(topic, key, value)`` records and wait for every acknowledgement (or raise)."""
        producer = await self.started()
        futures = [await producer.send(topic, key=key, value=value) for topic, key, value in records]
        if futures:
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
