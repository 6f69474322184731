"""Scale-out on one machine: two mention workers and two spike watchers split the partitions;
kill -9 one of each and the survivors take over with nothing lost, the spike watcher's tables
(minute counts, detector baselines) restored from their changelog topics.

The proof that the tables came back: the brand's 40-hour history reached only the watcher that
is killed; the burst is replayed after the kill. The survivor can raise the spike only with
that history (a brand raises nothing before ``EARSHOT_DETECTOR_WARMUP_H`` hours of it), and it
can have it only from the changelog.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench.faults import DRILL_MENTIONS, Index, burst_rows, corpus_rows, quiet_history, replay_file, write_jsonl
from bench.harness import Worker
from pipeline.settings import Settings
from tests.conftest import isolated_env

pytestmark = [pytest.mark.services, pytest.mark.e2e]

ES = "http://127.0.0.1:9200"


def assigned(worker: Worker, topic: str, timeout_s: float = 120) -> set[int]:
    """Partitions of ``topic`` the worker's consumer holds, from its own ``/metrics``."""
    text = httpx.get(worker.metrics_url, timeout=timeout_s).text
    return {int(sample.labels["partition"]) for family in text_string_to_metric_families(text)
            if family.name == "earshot_consumer_lag" for sample in family.samples
            if sample.labels.get("topic") == topic}


def wait_for_split(workers: list[Worker], topic: str, partitions: int, timeout_s: float = 180) -> list[set[int]]:
    """Wait until the workers hold disjoint, non-empty shares covering every partition."""
    deadline = time.monotonic() + timeout_s
    while True:
        shares = [assigned(w, topic) for w in workers]
        union = set().union(*shares)
        if union == set(range(partitions)) and sum(map(len, shares)) == partitions and all(shares):
            return shares
        assert time.monotonic() < deadline, f"{topic} not split across {len(workers)} workers: {shares}"
        time.sleep(2)


def diagnose(worker: Worker) -> str:
    """The worker's own counters, for a failure message."""
    try:
        text = httpx.get(worker.metrics_url, timeout=30).text
    except httpx.HTTPError as exc:
        return repr(exc)
    return "\n".join(line for line in text.splitlines()
                     if line.startswith(("earshot_consumer_lag", "earshot_mentions_in", "earshot_mentions_out")))


def partition_of(bootstrap: str, topic: str, key: bytes) -> int:
    """The partition holding records keyed ``key`` (read back from the topic)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        for record in consumer:
            if record.key == key:
                return record.partition
    finally:
        consumer.close()
    raise AssertionError(f"no record keyed {key!r} in {topic}")


def test_survivors_take_over_partitions_and_tables_after_kill_9(test_env, tmp_path):
    env = {**isolated_env("-scale"), "EARSHOT_DETECTOR_WARMUP_H": "24"}
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # The crash drill's shape (bench/faults.py): 40 hours of quiet, then 40 minutes of burst.
    history = write_jsonl(tmp_path / "history.jsonl", quiet_history(now - timedelta(minutes=40), hours=40))
    tail_rows = sorted(burst_rows(now, minutes=40, per_minute=30) + corpus_rows(now, 1000, hours=0.6, seed=4),
                       key=lambda r: r["created_at"])
    tail = write_jsonl(tmp_path / "tail.jsonl", tail_rows)
    mentions = Index(ES, settings.mentions_alias)
    alerts = Index(ES, settings.alerts_index)
    query = DRILL_MENTIONS
    workers = [Worker(env, tmp_path / f"worker{n}.log") for n in (1, 2)]
    watchers = [Worker(env, tmp_path / f"spikes{n}.log", "spikes") for n in (1, 2)]
    try:
        for process in workers + watchers:
            process.start()
        raw_shares = wait_for_split(workers, settings.topic_raw, settings.topic_partitions)
        wait_for_split(watchers, settings.topic_by_brand, settings.topic_partitions)

        replay_file(env, tmp_path / "history.jsonl")
        deadline = time.monotonic() + 420
        while mentions.count(query) < len(history):
            assert time.monotonic() < deadline and all(w.alive() for w in workers + watchers), workers[0].tail()
            time.sleep(1)
        time.sleep(8)  # the by-brand stream and the watchers' table updates trail indexing
        united = partition_of(settings.kafka_bootstrap, settings.topic_by_brand, b"united")
        holder = next(w for w in watchers if united in assigned(w, settings.topic_by_brand))
        survivor = next(w for w in watchers if w is not holder)
        assert united not in assigned(survivor, settings.topic_by_brand)
        assert alerts.count() <= 0, "the quiet history raised an alert"

        holder.stop(signal.SIGKILL)  # the watcher holding @united's minutes and baselines
        wait_for_split([survivor], settings.topic_by_brand, settings.topic_partitions)

        replay_file(env, tmp_path / "tail.jsonl")
        target = len(history) + len(tail) // 3
        while mentions.count(query) < target:
            assert time.monotonic() < deadline + 300, workers[0].tail()
            time.sleep(0.3)
        workers[0].stop(signal.SIGKILL)  # a mention worker dies mid-stream too
        indexed_at_kill = mentions.count(query)
        assert indexed_at_kill < len(history) + len(tail), "the tail was indexed before the kill"
        wait_for_split([workers[1]], settings.topic_raw, settings.topic_partitions)

        expected = history | tail
        while mentions.count(query) < len(expected):
            assert time.monotonic() < deadline + 900 and workers[1].alive(), workers[1].tail()
            time.sleep(1)
        alert_deadline = time.monotonic() + 120
        while not alerts.sources({"term": {"brand": "united"}}):
            assert time.monotonic() < alert_deadline and survivor.alive(), \
                f"no alert for the burst after the takeover:\n{diagnose(survivor)}\n{survivor.tail()}"
            time.sleep(1)
        time.sleep(5)
    finally:
        for process in watchers + workers:
            process.stop()
    ids = mentions.ids(query)
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    united_alerts = alerts.sources({"term": {"brand": "united"}})
    by_signal: dict[str, set[str]] = {}
    for alert in united_alerts:
        by_signal.setdefault(alert["signal"], set()).add(alert["id"])
    print(f"raw partitions split {raw_shares}; killed with {indexed_at_kill}/{len(expected)} indexed; "
          f"alerts {[(a['signal'], a['status'], a['observed'], a['expected']) for a in united_alerts]}")
    assert by_signal and all(len(v) == 1 for v in by_signal.values()), by_signal
    assert any(a["observed"] > a["expected"] for a in united_alerts)
