"""deploy/local/services.sh: `up` is idempotent, and a service that cannot start is named with its log."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from bench.harness import REPO, SERVICES

pytestmark = pytest.mark.services


def run_services_sh(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SERVICES), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_up_when_already_running_is_a_fast_no_op(services):
    started = time.monotonic()
    result = run_services_sh("up")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert "kafka: already running" in result.stderr and "es: already running" in result.stderr


def test_a_broker_that_cannot_start_fails_up_with_the_log_file_named(services, tmp_path):
    home = tmp_path / "home"
    cache = os.environ.get("EARSHOT_CACHE", str(REPO / ".earshot" / "cache"))  # reuse the downloads
    # An initial heap above the maximum: the JVM refuses to start, as a broken install would.
    result = run_services_sh("up", "kafka", EARSHOT_HOME=str(home), EARSHOT_CACHE=cache,
                      EARSHOT_KAFKA_PORT="19092", EARSHOT_KAFKA_CONTROLLER_PORT="19093",
                      EARSHOT_KAFKA_HEAP_OPTS="-Xms2g -Xmx1g")
    try:
        assert result.returncode != 0
        assert "ERROR: kafka:" in result.stderr
        assert str(home / "kafka" / "logs" / "kafkaServer.out") in result.stderr
    finally:
        run_services_sh("down", "kafka", EARSHOT_HOME=str(home), EARSHOT_CACHE=cache)


def test_topics_and_indices_survive_down_and_up(services, tmp_path):
    """A second, private pair of services on other ports: write, restart, read back."""
    import shutil

    import httpx
    from kafka import KafkaConsumer, KafkaProducer

    home = tmp_path / "home"
    cache = os.environ.get("EARSHOT_CACHE", str(REPO / ".earshot" / "cache"))
    # As root, ES runs as 'nobody', who cannot enter pytest's private tmp folder: services.sh then
    # keeps the node's files under EARSHOT_ES_BASE (default /var/tmp/earshot-es-<hash>).
    es_base = Path("/var/tmp") / f"earshot-es-test-{uuid.uuid4().hex[:8]}"
    env = dict(EARSHOT_HOME=str(home), EARSHOT_CACHE=cache, EARSHOT_KAFKA_PORT="19092",
               EARSHOT_KAFKA_CONTROLLER_PORT="19093", EARSHOT_ES_PORT="19200", EARSHOT_ES_BASE=str(es_base))
    es = "http://127.0.0.1:19200"
    try:
        assert run_services_sh("up", **env).returncode == 0
        producer = KafkaProducer(bootstrap_servers="127.0.0.1:19092")
        producer.send("restart-check", key=b"k", value=b"kept").get(timeout=60)
        producer.close()
        assert httpx.put(f"{es}/restart-check/_doc/1?refresh=true", json={"kept": True}, timeout=60).status_code == 201

        assert run_services_sh("down", **env).returncode == 0
        assert run_services_sh("status", **env).returncode != 0
        assert run_services_sh("up", **env).returncode == 0

        consumer = KafkaConsumer("restart-check", bootstrap_servers="127.0.0.1:19092",
                                 auto_offset_reset="earliest", consumer_timeout_ms=10_000)
        assert [(m.key, m.value) for m in consumer] == [(b"k", b"kept")]
        consumer.close()
        assert httpx.get(f"{es}/restart-check/_doc/1", timeout=60).json()["_source"] == {"kept": True}
    finally:
        run_services_sh("down", **env)
        shutil.rmtree(es_base, ignore_errors=True)
