"""Every topic a process uses exists, with every partition led, before the process consumes.

Faust declares its own topics (table changelogs, the assignor's leader topic) lazily while it
starts, and checks a table's changelog against its source topic when the first record arrives.
On a busy machine the first record could arrive before the broker's metadata showed the new
changelog's partitions: the table raised ``PartitionsMismatch (changelog has 0 partitions)`` and
the spike watcher exited. So no process waits for a topic to appear: ``cli`` creates every topic
the process will touch, earshot's and Faust's internal ones, with the configuration Faust would
give them, and waits until the broker reports all their partitions with a leader, before the
app starts. Faust then finds them existing and only uses them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.settings import Settings
from pipeline.worker.retry import backoff_delay

log = logging.getLogger("earshot.topics")


@dataclass(frozen=True)
class TopicSpec:
    """One topic as it must exist: name, partitions, replicas and topic-level config."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def earshot_topics(settings: Settings) -> list[TopicSpec]:
    """The topics earshot's processes read and write (connectors, worker, watcher, API)."""
    names = [settings.topic_raw, settings.topic_enriched, settings.topic_dlq, settings.topic_by_brand,
             settings.topic_alerts, settings.topic_webhooks_dlq]
    return [TopicSpec(n, settings.topic_partitions, settings.topic_replication) for n in names]


def faust_config(retention_s: float | None, compacting: bool | None, deleting: bool | None) -> dict[str, str]:
    """The topic config Faust's aiokafka driver gives a topic it declares (``_topic_config``)."""
    config: dict[str, str] = {}
    policy = [name for name, on in (("compact", compacting), ("delete", deleting)) if on]
    if policy:
        config["cleanup.policy"] = ",".join(policy)
    if retention_s:
        config["retention.ms"] = str(int(retention_s * 1000))
    return config


def faust_internal_topics(app: Any) -> list[TopicSpec]:
    """The topics a Faust ``app`` declares by itself while starting: each table's changelog and
    the leader assignor's topic (1 partition)."""
    replication = app.conf.topic_replication_factor
    specs = [TopicSpec(f"{app.conf.id}-__assignor-__leader", 1, replication)]
    for table in app.tables.values():
        topic = table.changelog_topic
        retention = topic.retention
        seconds = retention.total_seconds() if hasattr(retention, "total_seconds") else retention
        extra = {k: str(v) for k, v in (topic.config or {}).items()}
        specs.append(TopicSpec(topic.get_topic_name(), topic.partitions or app.conf.topic_partitions,
                               topic.replicas or replication,
                               {**faust_config(seconds, topic.compacting, topic.deleting), **extra}))
    return specs


def missing_or_unled(described: Iterable[dict[str, Any]], specs: Iterable[TopicSpec]) -> list[str]:
    """Topics of ``specs`` that ``describe_topics`` does not yet show whole: absent, with an
    error, with fewer partitions than wanted, or with a partition that has no leader. Pure."""
    # kafka-python 3 spells them name/leader_id (the Metadata API's own names), 2.x topic/leader.
    seen = {d.get("name", d.get("topic")): d for d in described}
    pending = []
    for spec in specs:
        d = seen.get(spec.name)
        partitions = (d or {}).get("partitions") or []
        if (d is None or d.get("error_code", 0) != 0 or len(partitions) < spec.partitions
                or any(p.get("leader_id", p.get("leader", -1)) < 0 for p in partitions)):
            pending.append(spec.name)
    return pending


def ensure_topics(settings: Settings, extra: Iterable[TopicSpec] = (), wait_s: float = 120.0) -> None:
    """Create earshot's topics (and ``extra``) where missing, then wait until the broker shows
    every one with all its partitions led. Raises ``TimeoutError`` after ``wait_s`` seconds."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    specs = earshot_topics(settings) + list(extra)
    deadline = time.monotonic() + wait_s
    admin = admin_client(settings, wait_s)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config)
                   for s in specs if s.name not in existing]
        for topic in missing:  # one at a time: one already made by another process fails alone
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
        attempt = 0
        while True:
            try:
                pending = missing_or_unled(admin.describe_topics([s.name for s in specs]), specs)
            except KafkaError as exc:  # a broker busy or electing: ask again
                pending = [f"(describe failed: {exc!r})"]
            if not pending:
                return
            attempt += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready after {wait_s:.0f} s: {', '.join(pending)}")
            log.info("waiting for topics: %s", ", ".join(pending))
            time.sleep(min(backoff_delay(attempt, base_s=0.1, cap_s=2.0), max(0.0, deadline - time.monotonic())))
    finally:
        admin.close()


def admin_client(settings: Settings, wait_s: float = 60.0):
    """A topic admin client; waits up to ``wait_s`` for a broker that is starting or busy (a
    process started right beside a broker restart must not give up on its first try)."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + wait_s
    attempt = 0
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="earshot-admin")
        except KafkaError:
            attempt += 1
            if time.monotonic() + 1 > deadline:
                raise
            time.sleep(min(backoff_delay(attempt, cap_s=5.0), max(0.0, deadline - time.monotonic())))
