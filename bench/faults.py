"""Fault drills: crash, Elasticsearch outage, Kafka restart, poison input — on a private stack.

Each drill runs real processes (``earshot worker``, ``earshot spikes``, ``earshot replay``,
``earshot api``, the live-connector runtime) against a Kafka broker and an Elasticsearch node of
its own (``DrillStack``: ``deploy/local/services.sh`` on free ports, its own state folder), so
stopping a service never disturbs ``make run`` or the rest of the test session. A drill returns
what it counted; ``tests/faults`` asserts on it and ``make bench-faults`` writes
``bench/results/faults.json``:

    {"crash": {"produced": n, "indexed": n, "duplicates": 0, "lost": 0, ...},
     "es_outage": {...}, "kafka_restart": {...}, "fuzz_cases": n, "unplanned_worker_crashes": 0}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bench.harness import REPO, SERVICES, Worker, free_port

DRILL_SOURCE = "drill"
DRILL_MENTIONS = {"prefix": {"id": f"{DRILL_SOURCE}:"}}  # every mention a drill replayed (ids "drill:...")
CHATTER = [
    "@united boarding for Denver now, see you on the other side", "thanks @united for the smooth flight today",
    "@united is the wifi on the 737 free for members?", "@united my flight to Chicago is on time, nice",
    "waiting at gate C12 for @united flight 88", "@united crew on UA 452 were lovely",
    "@united can I change my seat on the app?", "landed early with @united, bags already on the belt",
    "@united any upgrade list for tomorrow's flight?", "@united lounge coffee is decent this morning",
]
BURST = "@united engine fire on flight {n}! smoke in the cabin, we were evacuated on the runway. terrifying"


# ------------------------------------------------------------------------------------ stack ---

class DrillStack:
    """A Kafka broker and an Elasticsearch node for fault drills, on free loopback ports.

    Smaller heaps than the development pair (512 MB each): drills hold a few thousand mentions.
    The downloaded distributions are shared with the development services (same cache).
    """

    def __init__(self, home: Path):
        self.home = Path(home).resolve()
        self.kafka_port, self.controller_port, self.es_port = free_port(), free_port(), free_port()
        cache = os.environ.get("EARSHOT_CACHE") or str(REPO / ".earshot" / "cache")
        self.services_env = {
            "EARSHOT_HOME": str(self.home), "EARSHOT_CACHE": cache,
            "EARSHOT_KAFKA_PORT": str(self.kafka_port), "EARSHOT_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "EARSHOT_ES_PORT": str(self.es_port),
            "EARSHOT_KAFKA_HEAP_OPTS": "-Xmx512m -Xms256m", "EARSHOT_ES_JAVA_OPTS": "-Xms512m -Xmx512m",
        }

    @property
    def es_url(self) -> str:
        return f"http://127.0.0.1:{self.es_port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def services(self, *args: str, timeout_s: float = 300) -> None:
        """Run ``services.sh <args>`` for this stack; raises with its output if it fails."""
        result = subprocess.run(["bash", str(SERVICES), *args], env={**os.environ, **self.services_env},
                                capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"services.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def up(self, which: str = "") -> None:
        self.services("up", *([which] if which else []))

    def down(self, which: str = "") -> None:
        self.services("down", *([which] if which else []))

    def destroy(self) -> None:
        self.services("reset")

    def env(self, name: str, **extra: str) -> dict[str, str]:
        """EARSHOT_* variables for earshot processes of drill ``name`` on this stack (a fresh
        namespace each call: a drill never sees an earlier run's topics, indices or checkpoints)."""
        name = f"{name}-{uuid.uuid4().hex[:6]}"
        return {
            "EARSHOT_HOME": str(self.home / "state" / name),
            "EARSHOT_KAFKA_BOOTSTRAP": self.bootstrap, "EARSHOT_ES_URL": self.es_url,
            "EARSHOT_TOPIC_PREFIX": f"{name}.", "EARSHOT_INDEX_PREFIX": f"drill-{name}",
            "EARSHOT_APP_ID": f"earshot-drill-{name}", "EARSHOT_INDEX_REFRESH_INTERVAL": "1s",
            "EARSHOT_KAFKA_SESSION_TIMEOUT_S": "10",  # a killed worker's partitions move on quickly
            **extra,
        }


def settings_for(env: dict[str, str]):
    from pipeline.settings import Settings

    return Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})


# ------------------------------------------------------------------------------- es helpers ---

class Index:
    """Counting and listing documents of one index or alias over plain HTTP."""

    def __init__(self, es_url: str, index: str):
        self.es_url, self.index = es_url, index

    def count(self, query: dict | None = None) -> int:
        try:
            httpx.post(f"{self.es_url}/{self.index}/_refresh", timeout=30)
            r = httpx.post(f"{self.es_url}/{self.index}/_count", json={"query": query or {"match_all": {}}}, timeout=30)
        except httpx.HTTPError:
            return -1  # the node is down (an outage drill): unknown, not zero
        return r.json().get("count", 0) if r.status_code == 200 else 0

    def ids(self, query: dict | None = None) -> list[str]:
        """Every document's ``id`` field (duplicates kept), paged with ``search_after``."""
        out, after = [], None
        httpx.post(f"{self.es_url}/{self.index}/_refresh", timeout=30)
        while True:
            body: dict[str, Any] = {"size": 5000, "query": query or {"match_all": {}}, "sort": [{"id": "asc"}],
                                    "_source": ["id"]}
            if after:
                body["search_after"] = after
            r = httpx.post(f"{self.es_url}/{self.index}/_search", json=body, timeout=60)
            if r.status_code == 404:
                return out
            hits = r.json()["hits"]["hits"]
            if not hits:
                return out
            out += [h["_source"]["id"] for h in hits]
            after = hits[-1]["sort"]

    def sources(self, query: dict, size: int = 1000) -> list[dict]:
        httpx.post(f"{self.es_url}/{self.index}/_refresh", timeout=30)
        r = httpx.post(f"{self.es_url}/{self.index}/_search", json={"size": size, "query": query}, timeout=60)
        return [h["_source"] for h in r.json()["hits"]["hits"]] if r.status_code == 200 else []


def tally(produced: set[str], indexed: list[str]) -> dict[str, int]:
    """The four numbers every drill reports: produced, indexed (distinct), duplicates, lost."""
    distinct = set(indexed)
    return {"produced": len(produced), "indexed": len(distinct & produced),
            "duplicates": len(indexed) - len(distinct), "lost": len(produced - distinct)}


# -------------------------------------------------------------------------------- processes ---

@dataclass
class Crew:
    """The drill's earshot processes; counts exits nobody asked for (``unplanned``)."""

    env: dict[str, str]
    logs: Path
    with_watcher: bool = False
    unplanned: int = 0
    worker: Worker = field(init=False)
    watcher: Worker | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.worker = Worker(self.env, self.logs / "worker.log")
        if self.with_watcher:
            self.watcher = Worker(self.env, self.logs / "spikes.log", "spikes")

    def members(self) -> list[Worker]:
        return [w for w in (self.worker, self.watcher) if w is not None]

    def start(self) -> None:
        for member in self.members():
            member.start()

    def kill(self) -> None:
        """kill -9 every process at once (the machine goes down)."""
        for member in reversed(self.members()):
            member.stop(signal.SIGKILL)

    def stop(self) -> None:
        for member in reversed(self.members()):
            member.stop()

    def check(self) -> None:
        """Restart any process that died on its own, counting it."""
        for member in self.members():
            if member.proc is not None and not member.alive():
                self.unplanned += 1
                print(f"[faults] UNPLANNED exit of {member.command}:\n{member.tail(15)}", file=sys.stderr)
                member.start()


def replay_file(env: dict[str, str], path: Path, *extra: str, wait: bool = True) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "replay", "--no-progress", "--file", str(path),
                             "--source", DRILL_SOURCE, *extra], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"replay failed:\n{out}")
    return proc


def write_jsonl(path: Path, rows: list[dict]) -> set[str]:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {f"{DRILL_SOURCE}:{r['id']}" for r in rows}


def wait_until(what: str, predicate, timeout_s: float, crew: Crew | None = None, every_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if crew is not None:
            crew.check()
        if time.monotonic() > deadline:
            tail = crew.worker.tail(30) if crew else ""
            raise TimeoutError(f"{what}: not after {timeout_s:.0f} s\n{tail}")
        time.sleep(every_s)


def wait_indexed(index: Index, produced: set[str], crew: Crew, timeout_s: float = 600) -> None:
    wait_until(f"{len(produced)} mentions indexed", lambda: index.count(DRILL_MENTIONS) >= len(produced), timeout_s, crew)
    time.sleep(3)  # let any straggler (a duplicate would show) arrive before counting


# --------------------------------------------------------------------------------- corpora ---

def corpus_rows(now: datetime, n: int, hours: float, seed: int = 5) -> list[dict]:
    """``n`` real posts of the demo corpus with new ids, spread over the last ``hours``."""
    from connectors.replay import EmpythyCorpus

    rng = random.Random(seed)
    rows = []
    for k, out in enumerate(EmpythyCorpus(limit=n).records()):
        record = dict(out.record or {})
        record.pop("raw", None)
        record["id"] = f"corpus-{k}"
        record["created_at"] = (now - timedelta(seconds=rng.uniform(0, hours * 3600))).isoformat()
        rows.append(record)
    return rows


def quiet_history(now: datetime, hours: int, seed: int = 11) -> list[dict]:
    """About one ``@united`` mention a minute with a daily rhythm, ending 15 minutes before ``now``."""
    rng = random.Random(seed)
    rows, start = [], now - timedelta(hours=hours)
    for minute in range(hours * 60 - 15):
        at = start + timedelta(minutes=minute)
        rate = 1.2 * (1 + 0.6 * math.cos((at.hour - 15) / 24 * 2 * math.pi))
        for k in range(sum(rng.random() < rate / 4 for _ in range(4))):
            rows.append({"id": f"quiet-{minute}-{k}", "text": rng.choice(CHATTER),
                         "created_at": (at + timedelta(seconds=rng.randrange(60))).isoformat(),
                         "author": {"handle": f"flyer{rng.randrange(500)}", "followers": rng.randrange(2000)}})
    return rows


def burst_rows(now: datetime, minutes: int, per_minute: int) -> list[dict]:
    """``per_minute`` angry ``@united`` mentions a minute for the last ``minutes`` minutes, 2 s
    apart within each minute (closer when more than 30 must fit)."""
    spacing_s = min(2.0, 60 / per_minute)
    rows = []
    for minute in range(minutes):
        at = now - timedelta(minutes=minutes - minute)
        for k in range(per_minute):
            rows.append({"id": f"burst-{minute}-{k}", "text": BURST.format(n=200 + k),
                         "created_at": (at + timedelta(seconds=spacing_s * k)).isoformat(),
                         "metrics": {"likes": k * 3, "shares": k, "replies": 0},
                         "author": {"handle": f"passenger{k}", "followers": 100 + k}})
    return rows


def by_time(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["created_at"])


# ----------------------------------------------------------------------------------- drills ---

def crash_drill(stack: DrillStack, workdir: Path, n: int = 10_000, kills: int = 3, seed: int | None = None) -> dict:
    """Replay ``n`` mentions holding one ``@united`` spike; ``kill -9`` worker and spike watcher
    at ``kills`` random points (one during the spike) and restart them each time."""
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    env = stack.env("crash", EARSHOT_DETECTOR_WARMUP_H="24")
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    spike = burst_rows(now, minutes=40, per_minute=30)
    quiet = quiet_history(now - timedelta(minutes=40), hours=40)
    rows = by_time(quiet + spike + corpus_rows(now, n - len(quiet) - len(spike), hours=40))
    produced = write_jsonl(workdir / "crash.jsonl", rows)
    assert len(produced) == n
    crew = Crew(env, workdir / "crash", with_watcher=True)
    mentions, alerts = Index(stack.es_url, settings.mentions_alias), Index(stack.es_url, settings.alerts_index)
    # Kill points as fractions of the stream indexed; the last falls inside the spike (the tail).
    windows = [(0.08, 0.3), (0.35, 0.7), (0.9, 0.97)][:kills]
    points = [rng.uniform(a, b) for a, b in windows]
    killed_at = []
    crew.start()
    try:
        replay_file(env, workdir / "crash.jsonl")
        for point in points:
            target = int(point * n)
            wait_until(f"{target} indexed before a kill", lambda: mentions.count(DRILL_MENTIONS) >= target, 600, crew, 0.2)
            crew.kill()
            killed_at.append(mentions.count(DRILL_MENTIONS))
            crew.start()
        wait_indexed(mentions, produced, crew)
        time.sleep(10)  # the by-brand stream and the alert writes trail indexing
        crew.check()
    finally:
        crew.stop()
    result = tally(produced, mentions.ids(DRILL_MENTIONS))
    by_signal: dict[str, set[str]] = {}
    for alert in alerts.sources({"term": {"brand": "united"}}):
        # One incident carries every signal that fired in it (pipeline/alerts/incidents.py).
        for signal in {alert["signal"], *(s["signal"] for s in alert.get("signals") or [])}:
            by_signal.setdefault(signal, set()).add(alert["id"])
    return {**result, "seed": seed, "kills": len(killed_at), "indexed_at_kills": killed_at,
            "spike_alert_ids": {signal: sorted(ids) for signal, ids in sorted(by_signal.items())},
            "unplanned_worker_crashes": crew.unplanned}


def _rss_and_cpu(pid: int) -> tuple[int, float]:
    """Resident memory (bytes) and CPU time used so far (s) of a process, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def committed(bootstrap: str, group: str, topic: str) -> int:
    """Sum of the offsets ``group`` has committed on ``topic`` (all partitions)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0)


class ApiProcess:
    """``earshot api`` on a free port, as its own process."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cli.main", "api", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--loglevel", "warning"], cwd=REPO,
                                     env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_until("the API answers", self._up, 90, every_s=0.3)

    def _up(self) -> bool:
        assert self.proc.poll() is None, "the API exited"
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def status(self, path: str) -> int:
        try:
            return httpx.get(f"{self.url}{path}", timeout=5).status_code
        except httpx.HTTPError:
            return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def es_outage_drill(stack: DrillStack, workdir: Path, n: int = 3000, outage_s: float = 60.0, rate: float = 100.0) -> dict:
    """Stop Elasticsearch for ``outage_s`` while ``n`` mentions stream in at ``rate``/s."""
    env = stack.env("esdown")
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    produced = write_jsonl(workdir / "esdown.jsonl", corpus_rows(now, n, hours=2, seed=7))
    crew = Crew(env, workdir / "esdown")
    mentions = Index(stack.es_url, settings.mentions_alias)
    crew.start()
    api = ApiProcess(env, workdir / "esdown" / "api.log")
    samples: list[dict[str, Any]] = []
    try:
        replayer = replay_file(env, workdir / "esdown.jsonl", "--rate", str(rate), wait=False)
        wait_until("a first part indexed", lambda: mentions.count(DRILL_MENTIONS) >= n // 6, 300, crew, 0.3)
        before = mentions.count(DRILL_MENTIONS)
        stack.down("es")
        down_at = time.monotonic()
        log_mark = crew.worker.log_path.stat().st_size
        rss0, _ = _rss_and_cpu(crew.worker.proc.pid)
        commit_early = None
        while time.monotonic() - down_at < outage_s:
            crew.check()
            rss, cpu = _rss_and_cpu(crew.worker.proc.pid)
            samples.append({"t": round(time.monotonic() - down_at, 1), "healthz": api.status("/healthz"),
                            "readyz": api.status("/readyz"), "rss": rss, "cpu_s": cpu})
            if commit_early is None and time.monotonic() - down_at > 10:
                commit_early = committed(stack.bootstrap, settings.app_id, settings.topic_raw)
            time.sleep(2)
        commit_late = committed(stack.bootstrap, settings.app_id, settings.topic_raw)
        with crew.worker.log_path.open("rb") as fh:
            fh.seek(log_mark)
            bulk_retries = fh.read().count(b"bulk attempt")
        stack.up("es")
        back_at = time.monotonic()
        wait_until("the API ready again", lambda: api.status("/readyz") == 200, 120, crew)
        wait_indexed(mentions, produced, crew)
        recovered_s = time.monotonic() - back_at
        replayer.wait(60)
    finally:
        api.stop()
        crew.stop()
    result = tally(produced, mentions.ids(DRILL_MENTIONS))
    during = samples[1:]  # the first sample may precede the node's exit
    return {**result, "outage_s": outage_s, "indexed_before_outage": before,
            "healthz_always_200": all(s["healthz"] == 200 for s in samples),
            "readyz_503_during": all(s["readyz"] == 503 for s in during),
            "bulk_attempts_during_outage": bulk_retries,
            "raw_offsets_committed_10s_in": commit_early, "raw_offsets_committed_at_end": commit_late,
            "worker_rss_mb_at_start": round(rss0 / 2**20), "worker_rss_mb_max": round(max(s["rss"] for s in samples) / 2**20),
            "recovered_in_s": round(recovered_s, 1), "unplanned_worker_crashes": crew.unplanned}


class SyntheticLive:
    """A live source (the connector runtime's ``LiveSource``) yielding ``batch`` new posts every
    ``every_s`` until ``total``; its checkpoint is the number of posts handed out."""

    name = "drill-live"

    def __init__(self, total: int, batch: int = 20, every_s: float = 0.2):
        self.total, self.batch, self.every_s = total, batch, every_s

    async def batches(self, checkpoint):
        from connectors.base import Batch, Outgoing

        done = (checkpoint or {}).get("done", 0)
        while done < self.total:
            await asyncio.sleep(self.every_s)
            upto = min(self.total, done + self.batch)
            items = [Outgoing(key=f"{DRILL_SOURCE}:live-{k}", record={
                "id": f"{DRILL_SOURCE}:live-{k}", "source": DRILL_SOURCE, "text": f"@delta live post number {k}",
                "created_at": datetime.now(timezone.utc).isoformat(), "author": {"handle": f"live{k % 50}"}})
                for k in range(done, upto)]
            done = upto
            yield Batch(items=items, checkpoint={"done": done})


def run_live_in_thread(source, env: dict[str, str]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run the live-connector runtime (``connectors.runner.run_live``) in a thread; the dict gets
    the checkpoint store (what was acknowledged) and any error."""
    from connectors.checkpoint import CheckpointStore
    from connectors.runner import run_live

    settings = settings_for(env)
    box: dict[str, Any] = {"store": CheckpointStore(settings.checkpoints)}

    def main() -> None:
        try:
            box["report"] = asyncio.run(run_live(source, settings, store=box["store"]))
        except BaseException as exc:  # noqa: BLE001 - reported by the drill
            box["error"] = repr(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread, box


def kafka_restart_drill(stack: DrillStack, workdir: Path, n: int = 3000, live: int = 1500, rate: float = 150.0,
                        down_s: float = 40.0) -> dict:
    """Stop the broker for ``down_s`` and start it again while ``earshot replay`` (``n`` at
    ``rate``/s) and a live connector (``live`` posts) publish; everything they were
    acknowledged for must be indexed once. 40 s outlasts the producers' 30 s request timeout, so
    the connectors' own retrying is what is tested, not just the client's."""
    env = stack.env("kafkarestart")
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    produced = write_jsonl(workdir / "kafka.jsonl", corpus_rows(now, n, hours=2, seed=9))
    crew = Crew(env, workdir / "kafka")
    mentions = Index(stack.es_url, settings.mentions_alias)
    crew.start()
    try:
        replayer = replay_file(env, workdir / "kafka.jsonl", "--rate", str(rate), wait=False)
        thread, box = run_live_in_thread(SyntheticLive(live), env)
        wait_until("a first part indexed", lambda: mentions.count(DRILL_MENTIONS) >= n // 6, 300, crew, 0.3)
        before = mentions.count(DRILL_MENTIONS)
        restart_began = time.monotonic()
        stack.down("kafka")
        time.sleep(down_s)
        stack.up("kafka")
        restart_s = time.monotonic() - restart_began
        out, _ = replayer.communicate(timeout=600)
        replay_ok = replayer.returncode == 0
        thread.join(600)
        acknowledged = (box["store"].load(SyntheticLive.name) or {}).get("done", 0)
        live_ids = {f"{DRILL_SOURCE}:live-{k}" for k in range(acknowledged)}
        expected = (produced if replay_ok else set()) | live_ids
        wait_indexed(mentions, expected, crew)
        crew.check()
    finally:
        crew.stop()
    indexed = mentions.ids(DRILL_MENTIONS)
    result = tally(expected, indexed)
    return {**result, "replay_produced": len(produced), "replay_exit": replayer.returncode,
            "replay_output": out.strip()[-2000:], "live_acknowledged": acknowledged, "live_total": live,
            "live_error": box.get("error"), "indexed_before_restart": before,
            "broker_down_s": round(restart_s, 1), "unplanned_worker_crashes": crew.unplanned}


HOSTILE_TEXTS = [
    "<script>alert(1)</script>", '"}}, {"match_all": {}}', '{"query": {"match_all": {}}}', "../../etc/passwd",
    "'; DROP TABLE mentions; --", "${jndi:ldap://x}", "<img src=x onerror=alert(1)>", "*:*", "\\u0000",
    "</textarea><svg onload=alert(1)>", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "javascript:alert(document.cookie)",
]


def poison_records(n: int, seed: int = 3) -> list[bytes]:
    """``n`` records the validator must refuse: malformed, huge, deeply nested, binary, or
    Mention-shaped with hostile or missing fields."""
    rng = random.Random(seed)
    hostile = lambda: rng.choice(HOSTILE_TEXTS)  # noqa: E731
    makers = [
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))),         # binary
        lambda: ("[" * 50_000 + "]" * 50_000).encode(),                                  # deeply nested
        lambda: json.dumps({"id": hostile(), "text": "x" * 70_000, "source": "s"}).encode(),  # text too long
        lambda: json.dumps({"id": hostile(), "source": hostile()}).encode(),             # no text
        lambda: json.dumps({"text": hostile(), "created_at": hostile()}).encode(),       # no id, bad time
        lambda: json.dumps([hostile(), {"op": "delete"}]).encode(),                      # not an object
        lambda: json.dumps({"id": 7, "source": None, "text": {"$gt": ""}}).encode(),     # wrong types
        lambda: b'{"id": "a", "text": "unterminated',                                   # truncated JSON
        lambda: json.dumps({"id": "x", "source": "s", "text": hostile(),                 # from the future
                            "created_at": "2999-01-01T00:00:00Z"}).encode(),
        lambda: "\ud800 not utf-8".encode("utf-8", "surrogatepass"),                    # invalid UTF-8
    ]
    return [makers[k % len(makers)]() for k in range(n)]


def hostile_mentions(n: int, now: datetime) -> list[dict]:
    """Valid mentions whose text is hostile: they must be indexed verbatim, harmlessly."""
    return [{"id": f"hostile-{k}", "text": f"@united {HOSTILE_TEXTS[k % len(HOSTILE_TEXTS)]} #{k}",
             "created_at": (now - timedelta(minutes=k)).isoformat(), "author": {"handle": f"h{k}"}}
            for k in range(n)]


def count_topic(bootstrap: str, topic: str, timeout_s: float = 20) -> int:
    """Records in ``topic`` (all partitions, from the beginning)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
        if not parts:
            return 0
        begin, end = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
        return sum(end[tp] - begin[tp] for tp in parts)
    finally:
        consumer.close()


def poison_drill(stack: DrillStack, workdir: Path, n_bad: int = 500, n_good: int = 60) -> dict:
    """Feed ``n_bad`` poison records and ``n_good`` hostile-but-valid mentions to a running worker."""
    from kafka import KafkaProducer

    env = stack.env("poison")
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    good = hostile_mentions(n_good, now)
    crew = Crew(env, workdir / "poison")
    mentions = Index(stack.es_url, settings.mentions_alias)
    crew.start()
    api = None
    try:
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
        dlq_before = count_topic(stack.bootstrap, settings.topic_dlq)
        bad = poison_records(n_bad)
        for k, (payload, mention) in enumerate(zip(bad, good * (n_bad // n_good + 1))):
            producer.send(settings.topic_raw, key=f"poison-{k}".encode(), value=payload)
            if k < n_good:
                producer.send(settings.topic_raw, key=mention["id"].encode(), value=json.dumps(
                    {**mention, "source": DRILL_SOURCE, "ingested_at": now.isoformat()}).encode())
        producer.flush(60)
        producer.close()
        wait_until("every poison record dead-lettered",
                   lambda: count_topic(stack.bootstrap, settings.topic_dlq) - dlq_before >= n_bad, 300, crew)
        wait_until("the hostile-but-valid mentions indexed",
                   lambda: mentions.count({"prefix": {"id": "hostile-"}}) >= n_good, 300, crew)
        time.sleep(3)
        crew.check()
        dead = count_topic(stack.bootstrap, settings.topic_dlq) - dlq_before
        stored = {d["id"]: d["text"] for d in mentions.sources({"prefix": {"id": "hostile-"}}, size=n_good * 2)}
        # What the API hands back for them: JSON (never HTML), highlights HTML-escaped.
        admin = f"drill-admin-{uuid.uuid4().hex}"
        api = ApiProcess({**env, "EARSHOT_BOOTSTRAP_ADMIN_KEY": admin}, workdir / "poison" / "api.log")
        answer = httpx.get(f"{api.url}/v1/mentions/search", params={"q": "script alert"},
                           headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        hits = answer.json().get("hits") or []
        # Only our <mark> tags may be markup; the post's own "<script>" must arrive as &lt;script&gt;.
        highlights = [(h.get("highlight") or "").replace("<mark>", "").replace("</mark>", "") for h in hits]
        served = {"status": answer.status_code, "content_type": answer.headers.get("content-type", ""),
                  "nosniff": answer.headers.get("x-content-type-options") == "nosniff",
                  "hits": len(hits), "texts_verbatim": all(h["text"] == stored.get(h["id"]) for h in hits),
                  "highlights_escaped": bool(highlights) and all("<" not in x for x in highlights)
                  and any("&lt;script&gt;" in x for x in highlights)}
    finally:
        if api is not None:
            api.stop()
        crew.stop()
    verbatim = sum(stored.get(m["id"]) == m["text"] for m in good)
    return {"api": served, "produced_bad": n_bad, "dead_lettered": dead, "produced_good": n_good, "indexed_good": len(stored),
            "stored_verbatim": verbatim, "worker_alive_throughout": crew.unplanned == 0,
            "unplanned_worker_crashes": crew.unplanned}


# --------------------------------------------------------------------------------- command ---

def main(argv: list[str] | None = None) -> int:
    from bench.results import write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["crash", "es_outage", "kafka_restart", "poison"], action="append")
    parser.add_argument("--crash-n", type=int, default=10_000)
    parser.add_argument("--outage-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    only = set(args.only or ["crash", "es_outage", "kafka_restart", "poison"])
    home = REPO / ".earshot" / "drills-bench"
    stack = DrillStack(home)
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    stack.up()
    drills = {"crash": lambda: crash_drill(stack, work, n=args.crash_n),
              "es_outage": lambda: es_outage_drill(stack, work, outage_s=args.outage_s),
              "kafka_restart": lambda: kafka_restart_drill(stack, work),
              "poison": lambda: poison_drill(stack, work)}
    try:
        for name, drill in drills.items():
            if name in only:
                try:
                    results[name] = drill()
                except Exception as exc:  # noqa: BLE001 - a failed drill is a result, reported with the rest
                    results[name] = {"error": repr(exc)[:2000]}
        if "poison" in results and "error" not in results["poison"]:
            results["fuzz_cases"] = results["poison"]["produced_bad"] + results["poison"]["produced_good"]
    finally:
        stack.destroy()
        shutil.rmtree(home, ignore_errors=True)
    results["unplanned_worker_crashes"] = sum(r.get("unplanned_worker_crashes", 0) for r in results.values()
                                              if isinstance(r, dict))
    print(json.dumps(results, indent=2))
    write_results(REPO / "bench" / "results" / "faults.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
