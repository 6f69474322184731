"""End to end: a quiet history, then a burst of angry mentions -> one alert on the live SSE stream
and at a registered webhook within 60 s of the burst's first mention; nothing while it was quiet.

Everything is real: ``earshot replay`` publishes to Kafka, a real ``earshot worker`` enriches
and re-keys by brand, a real ``earshot spikes`` counts minutes in its windowed table and runs
the detector, Elasticsearch stores the alert, the API (uvicorn) streams it and posts it, signed, to a loopback receiver.
Time is compressed: 40 hours of history are published at once with their own ``created_at``,
and the worker's detector needs only 24 of them to warm up (``EARSHOT_DETECTOR_WARMUP_H``).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from bench.faults import burst_rows, quiet_history
from bench.harness import Worker
from pipeline.settings import Settings
from pipeline.alerts.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import create_api_key, isolated_env
from tests.e2e.test_pipeline_e2e import es_count, wait_for_count
from tests.servers import Receiver, serve

pytestmark = [pytest.mark.services, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
HISTORY_H = 40
SECRET = "whsec_e2e_spikes"


def history(now: datetime) -> list[dict]:
    """About one ``@united`` mention a minute with a daily rhythm, from ``HISTORY_H`` hours ago to
    15 min ago (the generator the fault drills use too)."""
    return quiet_history(now, hours=HISTORY_H)


def burst(now: datetime, minutes: int = 8, per_minute: int = 25) -> list[dict]:
    """``per_minute`` angry mentions a minute for the last ``minutes`` minutes (the quiet rate is
    about one)."""
    return burst_rows(now, minutes=minutes, per_minute=per_minute)


def replay_file(env: dict[str, str], path: Path) -> None:
    subprocess.run([sys.executable, "-m", "cli.main", "replay", "--no-progress", "--file", str(path),
                    "--source", "e2e"], cwd=REPO, env={**os.environ, **env}, check=True, timeout=300)


class SSEListener(threading.Thread):
    """Reads ``/v1/alerts/stream`` and records each alert event with its arrival time."""

    def __init__(self, url: str, headers: dict[str, str]):
        super().__init__(daemon=True)
        self.url, self.headers, self.events, self.connected = url, headers, queue.Queue(), threading.Event()

    def run(self):
        with httpx.stream("GET", self.url, headers=self.headers, timeout=httpx.Timeout(10, read=None)) as response:
            self.connected.set()
            data = None
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data = line[5:].strip()
                elif line == "" and data:
                    self.events.put((time.monotonic(), json.loads(data)))
                    data = None


@pytest.fixture(scope="module")
def spike_env(test_env):
    return {**isolated_env("spk"), "EARSHOT_DETECTOR_WARMUP_H": "24"}


@pytest.fixture(scope="module")
def spike_worker(spike_env, tmp_path_factory):
    """The mention worker and the spike watcher of this test's namespace."""
    logs = tmp_path_factory.mktemp("spike-worker")
    worker, watcher = Worker(spike_env, logs / "worker.log"), Worker(spike_env, logs / "spikes.log", "spikes")
    worker.start()
    watcher.start()
    yield worker
    watcher.stop()
    worker.stop()


def test_a_burst_reaches_sse_and_webhook_within_a_minute_and_the_quiet_part_raises_nothing(
        spike_env, spike_worker, tmp_path):
    from api.main import create_app

    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in spike_env.items()})
    now = datetime.now(timezone.utc).replace(microsecond=0)
    quiet, angry = history(now), burst(now)
    (tmp_path / "quiet.jsonl").write_text("".join(json.dumps(r) + "\n" for r in quiet))
    (tmp_path / "burst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in angry))
    receiver = Receiver(204)
    crisis = {"Authorization": f"Bearer {create_api_key(settings, 'crisis')}"}  # alerts and webhooks
    try:
        with serve(create_app(settings)) as api:
            r = httpx.post(f"{api}/v1/webhooks", headers=crisis,
                           json={"url": receiver.url, "secret": SECRET, "brands": ["united"]})
            assert r.status_code == 201, r.text
            listener = SSEListener(f"{api}/v1/alerts/stream?brand=united", crisis)
            listener.start()
            assert listener.connected.wait(10)

            replay_file(spike_env, tmp_path / "quiet.jsonl")
            wait_for_count(settings.mentions_alias, {"prefix": {"id": "e2e:quiet-"}}, len(quiet), spike_worker)
            time.sleep(5)  # the by-brand stream trails indexing by a moment
            assert listener.events.empty(), f"the quiet part raised {listener.events.get()[1]}"
            assert es_count(settings.alerts_index) == 0
            assert receiver.arrived.empty()

            started = time.monotonic()
            replay_file(spike_env, tmp_path / "burst.jsonl")
            arrived, alert = listener.events.get(timeout=90)
            sse_latency = arrived - started
            delivered, headers, body = receiver.arrived.get(timeout=max(1.0, 90 - (time.monotonic() - started)))
            webhook_latency = delivered - started
    finally:
        receiver.close()
    print(f"burst -> SSE {sse_latency:.1f} s, -> webhook {webhook_latency:.1f} s; {alert['signal']} "
          f"{alert['severity']} observed {alert['observed']} expected {alert['expected']}; "
          f"terms {[t['term'] for t in alert['terms'][:5]]}")
    assert sse_latency <= 60 and webhook_latency <= 60
    assert alert["brand"] == "united" and alert["signal"] in ("volume", "negative", "complaint")
    assert alert["status"] in ("open", "escalated") and alert["observed"] > alert["expected"]
    assert alert["mentions"] and all(m["id"].startswith("e2e:burst-") for m in alert["mentions"])
    assert {"engine", "fire", "evacuated", "smoke", "cabin", "runway", "terrifying"} & \
           {t["term"] for t in alert["terms"]}
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=time.time())
    hooked = json.loads(body)["alert"]
    assert hooked["brand"] == "united" and hooked["last_change"] in ("opened", "escalated", "reopened")


def test_a_worker_killed_mid_burst_updates_the_same_alerts_after_its_restart(test_env, tmp_path):
    """kill -9 (worker and watcher) right after the first alert is stored, restart: the replayed
    tail is counted once and re-raises the same incidents, so each (brand, signal) still has
    exactly one alert id."""
    env = {**isolated_env("spkcrash"), "EARSHOT_DETECTOR_WARMUP_H": "24"}
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})
    now = datetime.now(timezone.utc).replace(microsecond=0)
    quiet, angry = history(now - timedelta(minutes=40)), burst(now, minutes=40, per_minute=30)
    (tmp_path / "quiet.jsonl").write_text("".join(json.dumps(r) + "\n" for r in quiet))
    (tmp_path / "burst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in angry))
    worker, watcher = Worker(env, tmp_path / "worker.log"), Worker(env, tmp_path / "spikes.log", "spikes")
    worker.start()
    watcher.start()
    try:
        replay_file(env, tmp_path / "quiet.jsonl")
        wait_for_count(settings.mentions_alias, {"prefix": {"id": "e2e:quiet-"}}, len(quiet), worker)
        time.sleep(5)
        replay_file(env, tmp_path / "burst.jsonl")
        deadline = time.monotonic() + 90
        while es_count(settings.alerts_index) == 0:
            assert time.monotonic() < deadline and watcher.alive(), f"no alert before the kill:\n{watcher.tail()}"
            time.sleep(0.1)
        watcher.stop(signal.SIGKILL)  # the machine goes down: both processes at once
        worker.stop(signal.SIGKILL)
        burst_query = {"prefix": {"id": "e2e:burst-"}}
        indexed_at_kill = es_count(settings.mentions_alias, burst_query)
        assert indexed_at_kill < len(angry), "the burst was done before the kill; nothing was tested"
        worker.start()
        watcher.start()
        wait_for_count(settings.mentions_alias, burst_query, len(angry), worker)
        time.sleep(8)  # the by-brand stream and the alert writes trail indexing
    finally:
        watcher.stop()
        worker.stop()
    hits = httpx.post(f"http://127.0.0.1:9200/{settings.alerts_index}/_search",
                      json={"size": 100, "query": {"term": {"brand": "united"}}}, timeout=30).json()["hits"]["hits"]
    alerts = [h["_source"] for h in hits]
    by_signal: dict[str, set[str]] = {}
    for alert in alerts:
        by_signal.setdefault(alert["signal"], set()).add(alert["id"])
    print(f"killed with {indexed_at_kill}/{len(angry)} burst mentions indexed; alerts after restart: "
          f"{[(a['signal'], a['status'], a['version']) for a in alerts]}")
    assert "volume" in by_signal
    assert all(len(ids) == 1 for ids in by_signal.values()), by_signal
