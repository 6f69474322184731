"""End to end: a quiet history, then a burst of angry mentions -> one incident on the live SSE stream
and at a registered webhook within 60 s of the burst's first mention, with its explanation; the
signals that fire join that one incident (one id); a hook whose threshold the incident stays
below gets it in its digest instead; nothing while it was quiet.

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
from pipeline.alerts.explain import STOP_WORDS
from pipeline.alerts.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import create_api_key, isolated_env
from tests.e2e.test_pipeline_e2e import es_count, wait_for_count
from tests.servers import Receiver, serve

pytestmark = [pytest.mark.services, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
HISTORY_H = 40
SECRET = "whsec_e2e_spikes"
COMPLAINT = "@united flight {n} cancelled and nobody at the desk, worst customer service ever, I want a refund"


def history(now: datetime) -> list[dict]:
    """About one ``@united`` mention a minute with a daily rhythm, from ``HISTORY_H`` hours ago to
    15 min ago (the generator the fault drills use too)."""
    return quiet_history(now, hours=HISTORY_H)


def burst(now: datetime, minutes: int = 8, per_minute: int = 25) -> list[dict]:
    """``per_minute`` angry mentions a minute for the last ``minutes`` minutes (the quiet rate is
    about one); every third one a complaint, so that three signals fire."""
    rows = burst_rows(now, minutes=minutes, per_minute=per_minute)
    return [{**row, "text": COMPLAINT.format(n=300 + i)} if i % 3 == 2 else row for i, row in enumerate(rows)]


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
    return {**isolated_env("spk"), "EARSHOT_DETECTOR_WARMUP_H": "24", "EARSHOT_ALERT_DIGEST_S": "3"}


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
    receiver, digests = Receiver(204), Receiver(204)
    crisis = {"Authorization": f"Bearer {create_api_key(settings, 'crisis')}"}  # alerts and webhooks
    try:
        with serve(create_app(settings)) as api:
            r = httpx.post(f"{api}/v1/webhooks", headers=crisis,
                           json={"url": receiver.url, "secret": SECRET, "brands": ["united"]})
            assert r.status_code == 201, r.text
            r = httpx.post(f"{api}/v1/webhooks", headers=crisis,  # pages only a 10/10: digests the rest
                           json={"url": digests.url, "secret": SECRET, "brands": ["united"], "min_severity": 10})
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
            versions = [alert]  # the incident's next versions: more signals join, severity rises
            deadline = time.monotonic() + 60
            while len(versions[-1]["signals"]) < 3 and time.monotonic() < deadline:
                try:
                    versions.append(listener.events.get(timeout=max(0.1, deadline - time.monotonic()))[1])
                except queue.Empty:
                    break
            _, digest_headers, digest_body = digests.arrived.get(timeout=30)
    finally:
        receiver.close()
        digests.close()
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
    # One incident: every version, on SSE and at the hook, has one id; three signals joined it.
    print("versions:", [(v["version"], v["last_change"], v["severity_score"], [s["signal"] for s in v["signals"]])
                        for v in versions])
    assert {v["id"] for v in versions} == {hooked["id"]}
    assert {"volume", "negative", "complaint"} <= {s["signal"] for s in versions[-1]["signals"]}
    assert [v["severity_score"] for v in versions] == sorted(v["severity_score"] for v in versions)
    # The explanation: the same object on SSE and at the hook, every field, no stop words or link bits.
    same = next(v for v in versions if v["version"] == hooked["version"])
    assert hooked["explanation"] == same["explanation"]
    explanation = versions[-1]["explanation"]
    print("summary:", explanation["summary"])
    assert {"summary", "phrases", "hashtags", "sentiment", "emotion", "sources", "authors", "near_duplicates",
            "representatives"} <= explanation.keys()
    terms = [t["term"] for t in explanation["phrases"] + explanation["hashtags"]]
    assert terms and not {t.lstrip("#$") for t in terms} & (STOP_WORDS | {"united", "http", "https", "t.co", "www"})
    assert not any(t.split()[0] in STOP_WORDS or t.split()[-1] in STOP_WORDS for t in terms), terms
    assert explanation["sentiment"]["shift"]["negative"] > 0 and explanation["sources"][0]["source"] == "e2e"
    assert 0 < explanation["near_duplicates"]["share"] < 1 and explanation["near_duplicates"]["largest"] >= 2
    assert 2 <= len(explanation["representatives"]) <= 5 and "united" in explanation["summary"]
    # The digest: the 10/10-only hook was never paged, and got the incident in one signed digest.
    assert verify(SECRET, digest_headers[SIGNATURE_HEADER], digest_body, now=time.time())
    digest = json.loads(digest_body)
    assert digest["type"] == "digest" and [e["id"] for e in digest["incidents"]] == [hooked["id"]]


def test_a_worker_killed_mid_burst_updates_the_same_alerts_after_its_restart(test_env, tmp_path):
    """kill -9 (worker and watcher) right after the first alert is stored, restart: the replayed
    tail is counted once and re-raises the same incident, so the brand still has exactly one
    alert id (one incident per brand and crisis)."""
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
    print(f"killed with {indexed_at_kill}/{len(angry)} burst mentions indexed; alerts after restart: "
          f"{[(a['signal'], [s['signal'] for s in a['signals']], a['status'], a['version']) for a in alerts]}")
    # One incident per brand and crisis (issue 14): one document, whatever signals joined it.
    assert len(alerts) == 1 and "volume" in {s["signal"] for s in alerts[0]["signals"]}


def test_a_bigger_burst_gets_a_higher_severity(spike_env, spike_worker, tmp_path):
    """Two brands with the same quiet history; one gets 8 angry mentions a minute, the other 60:
    the bigger burst's incident has the higher 1..10 severity, and its parts say why."""
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in spike_env.items()})
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = []
    for handle, per_minute in (("jetblue", 8), ("southwestair", 60)):
        tag = handle[:4]
        rows += [{**r, "id": f"{tag}-{r['id']}", "text": r["text"].replace("@united", f"@{handle}")}
                 for r in history(now) + burst(now, per_minute=per_minute)]
    rows.sort(key=lambda r: r["created_at"])
    (tmp_path / "two.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    replay_file(spike_env, tmp_path / "two.jsonl")
    deadline, found = time.monotonic() + 150, {}
    while time.monotonic() < deadline and len(found) < 2:
        time.sleep(2)
        hits = httpx.post(f"http://127.0.0.1:9200/{settings.alerts_index}/_search", timeout=30,
                          json={"size": 10, "query": {"terms": {"brand": ["jetblue", "southwest"]}}}).json()
        found = {h["_source"]["brand"]: h["_source"] for h in hits.get("hits", {}).get("hits", [])}
    assert set(found) == {"jetblue", "southwest"}, f"alerts: {found}\n{spike_worker.tail()}"
    time.sleep(10)  # let both incidents take in their whole burst
    hits = httpx.post(f"http://127.0.0.1:9200/{settings.alerts_index}/_search", timeout=30,
                      json={"size": 10, "query": {"terms": {"brand": ["jetblue", "southwest"]}}}).json()
    found = {h["_source"]["brand"]: h["_source"] for h in hits["hits"]["hits"]}
    small, big = found["jetblue"], found["southwest"]
    print("severity:", {b: (a["severity_score"], a["severity_parts"]) for b, a in found.items()})
    assert big["severity_score"] > small["severity_score"]
    assert big["severity_parts"]["excess"] > small["severity_parts"]["excess"]
