"""The live-connector runtime keeps a batch until Kafka acknowledges it: a broker away for
longer than the client's own retries is waited out, and nothing is checkpointed meanwhile."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaTimeoutError

from connectors.base import Batch, Outgoing
from connectors.checkpoint import CheckpointStore
from connectors.polite import Counters
from connectors.runner import run_live
from pipeline.settings import Settings


class FlakyKafka:
    """Refuses the first ``failures`` publishes (as a broker that is away), then keeps records."""

    def __init__(self, failures: int):
        self.failures, self.kept, self.attempts = failures, [], 0

    async def publish(self, items, counters):
        self.attempts += 1
        counters.published += len(items)  # counted before the acks, as the real publisher does
        if self.attempts <= self.failures:
            raise KafkaTimeoutError("broker away")
        self.kept += [out.key for out in items]


class TwoBatches:
    name = "flaky-test"

    async def batches(self, checkpoint):
        for n in range((checkpoint or {}).get("done", 0), 2):
            yield Batch(items=[Outgoing(key=f"t:{n}:{k}", record={"id": f"t:{n}:{k}"}) for k in range(3)],
                        checkpoint={"done": n + 1})


def test_a_refused_batch_is_retried_until_acknowledged_and_counted_once(tmp_path):
    settings = Settings(connector_backoff_base_s=0.01, connector_backoff_cap_s=0.02)
    kafka, store, counters = FlakyKafka(failures=3), CheckpointStore(tmp_path), Counters()
    asyncio.run(run_live(TwoBatches(), settings, store=store, publisher=kafka, counters=counters))
    assert kafka.kept == [f"t:{n}:{k}" for n in range(2) for k in range(3)]
    assert kafka.attempts == 5 and counters.retries == 3
    assert counters.published == 6  # not 15: refused attempts are not counted as published
    assert store.load("flaky-test") == {"done": 2}


def test_stopping_while_kafka_is_away_keeps_the_checkpoint_before_the_batch(tmp_path):
    settings = Settings(connector_backoff_base_s=5, connector_backoff_cap_s=5)
    kafka, store = FlakyKafka(failures=100), CheckpointStore(tmp_path)

    async def go():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        await asyncio.wait_for(run_live(TwoBatches(), settings, store=store, publisher=kafka, stop=stop), 10)

    asyncio.run(go())
    assert kafka.kept == [] and store.load("flaky-test") is None
