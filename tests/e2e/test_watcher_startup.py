"""The spike watcher survives records that are waiting before its own topics exist.

A fresh namespace: mentions sit on ``mentions.by-brand`` before the watcher has ever run, so
its tables' changelog topics do not exist yet. On a busy machine that once killed the watcher
(``PartitionsMismatch: changelog has 0 partitions``). Now ``earshot spikes`` creates them, and
waits for them to be led, before Faust starts: the watcher must come up, count every waiting
record, and stay up, with its changelogs partitioned like its source topic.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from bench.harness import Worker
from pipeline.settings import Settings
from tests.conftest import isolated_env

pytestmark = [pytest.mark.services, pytest.mark.e2e]

WAITING = 200  # records on the by-brand topic before the watcher starts


def counted(worker: Worker) -> float:
    """``earshot_mentions_in_total{agent="watch_brands"}`` from the watcher's /metrics."""
    for line in httpx.get(worker.metrics_url, timeout=5).text.splitlines():
        if line.startswith('earshot_mentions_in_total{agent="watch_brands"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_watcher_starts_on_waiting_records_with_no_changelog_yet(test_env, tmp_path):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient

    from pipeline.worker.topics import ensure_topics

    env = isolated_env("wst")
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})
    ensure_topics(settings)  # the mention worker's topics, as a running worker would leave them
    now = time.time()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for i in range(WAITING):
        brand = ("united", "delta", "jetblue", "southwest")[i % 4]
        record = {"brand": brand, "ts": now - 3600 + i * 10, "id": f"wst-{i}", "text": "waiting"}
        producer.send(settings.topic_by_brand, key=brand.encode(), value=json.dumps(record).encode())
    producer.flush(30)
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    changelogs = {f"{settings.app_id}-spikes-brand-minutes-changelog", f"{settings.app_id}-spikes-spike-watch-changelog"}
    assert not changelogs & set(admin.list_topics()), "the namespace is not fresh"

    watcher = Worker(env, tmp_path / "spikes.log", "spikes")
    watcher.start()
    try:
        deadline = time.monotonic() + 120
        while counted(watcher) < WAITING and time.monotonic() < deadline:
            assert watcher.alive(), watcher.tail()
            time.sleep(1)
        assert counted(watcher) == WAITING, watcher.tail()
        time.sleep(3)  # past the first changelog writes and commits
        assert watcher.alive(), watcher.tail()
        described = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(sorted(changelogs))}
        assert described == {name: settings.topic_partitions for name in changelogs}
        assert "PartitionsMismatch" not in (tmp_path / "spikes.log").read_text(errors="replace")
    finally:
        watcher.stop()
        admin.close()
