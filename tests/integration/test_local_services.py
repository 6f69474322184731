"""deploy/local/services.sh: `up` is idempotent, and a service that cannot start is named with its log."""

from __future__ import annotations

import os
import subprocess
import time

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
