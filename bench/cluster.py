"""Cluster drills: earshot on 3 Kafka brokers (RF 3, min.insync.replicas 2, acks=all) and 3
Elasticsearch nodes (1 replica per shard), with members killed and restarted mid-stream.

The cluster is ``deploy/local/cluster.sh`` (local processes, ports 19191-19193 and 19201-19203,
state under ``.earshot/cluster``); the drills reuse the single-node fault drills' pieces
(``bench/faults.py``: namespaces, crews, counting). ``python -m bench.cluster [--short]`` (``make
bench-cluster``) writes ``bench/results/cluster.json``:

    {"drills": {"broker_kill": {"produced", "indexed", "lost", "duplicates", "seconds", ...},
                "node_kill": {...}, "rolling_restart": {...}, "member_kill": {...}}}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import httpx

from bench.faults import (DRILL_MENTIONS, ApiProcess, Crew, DrillStack, Index, burst_rows, by_time, corpus_rows,
                          count_topic, quiet_history, replay_file, settings_for, tally, wait_indexed, wait_until,
                          write_jsonl)
from bench.harness import REPO

CLUSTER = REPO / "deploy" / "local" / "cluster.sh"
MEMBERS = (1, 2, 3)


class ClusterStack(DrillStack):
    """``cluster.sh`` as a drill stack: 3 brokers, 3 nodes; earshot's topics get 3 replicas and
    its indices 1 replica per shard."""

    def __init__(self, home: Path, kafka_base: int = 19190, es_base: int = 19200):
        """Broker N listens on ``kafka_base + N`` (controller ``+ 100``), node N on ``es_base + N``
        (transport ``+ 100``): cluster.sh's defaults, or others for a second cluster."""
        self.home = Path(home).resolve()
        self.kafka_base, self.es_base = kafka_base, es_base
        cache = os.environ.get("EARSHOT_CACHE") or str(REPO / ".earshot" / "cache")
        self.services_env = {"EARSHOT_CLUSTER_HOME": str(self.home), "EARSHOT_CACHE": cache,
                             "EARSHOT_CLUSTER_KAFKA_BASE": str(kafka_base), "EARSHOT_CLUSTER_CONTROLLER_BASE": str(kafka_base + 100),
                             "EARSHOT_CLUSTER_ES_BASE": str(es_base), "EARSHOT_CLUSTER_TRANSPORT_BASE": str(es_base + 100)}

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.kafka_base + n}" for n in MEMBERS)

    @property
    def es_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.es_base + n}" for n in MEMBERS]

    @property
    def es_url(self) -> str:
        return ",".join(self.es_urls)

    def cluster(self, *args: str, timeout_s: float = 400) -> None:
        """Run ``cluster.sh <args>``; raises with its output if it fails."""
        result = subprocess.run(["bash", str(CLUSTER), *args], env={**os.environ, **self.services_env},
                                capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def up(self, which: str = "") -> None:
        self.cluster("up")

    def down(self, which: str = "") -> None:
        self.cluster("down")

    def destroy(self) -> None:
        self.cluster("reset")

    def env(self, name: str, **extra: str) -> dict[str, str]:
        return super().env(name, EARSHOT_TOPIC_REPLICATION="3", EARSHOT_INDEX_REPLICAS="1", **extra)

    # ---------------------------------------------------------------------- health ---

    def live_es(self) -> str:
        """A node that answers (the drills kill some)."""
        for url in self.es_urls:
            try:
                httpx.get(f"{url}/", timeout=2)
                return url
            except httpx.HTTPError:
                continue
        raise RuntimeError("no Elasticsearch node answers")

    def health(self) -> dict[str, Any]:
        try:
            return httpx.get(f"{self.live_es()}/_cluster/health", params={"timeout": "5s"}, timeout=10).json()
        except (httpx.HTTPError, RuntimeError, ValueError) as exc:
            return {"status": f"unreachable: {exc!r}"}

    def wait_green(self, timeout_s: float = 300) -> None:
        wait_until("Elasticsearch green with 3 nodes", lambda: (h := self.health()).get("status") == "green"
                   and h.get("number_of_nodes") == 3, timeout_s, every_s=2)

    def under_replicated(self) -> list[str]:
        """``topic/partition`` of every partition whose in-sync replicas are fewer than its replicas."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            out = []
            for topic in admin.describe_topics():
                for p in topic.get("partitions") or []:
                    replicas = p.get("replica_nodes", p.get("replicas")) or []
                    isr = p.get("isr_nodes", p.get("isr")) or []
                    if len(isr) < len(replicas):
                        out.append(f"{topic.get('name', topic.get('topic'))}/{p.get('partition_index', p.get('partition'))}")
            return out
        finally:
            admin.close()

    def wait_in_sync(self, timeout_s: float = 300) -> None:
        def in_sync() -> bool:
            try:
                return not self.under_replicated()
            except Exception:  # noqa: BLE001 - a broker still electing: ask again
                return False
        wait_until("every Kafka partition fully in sync", in_sync, timeout_s, every_s=2)

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The broker (1..3) leading ``topic``/``partition``."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            for t in admin.describe_topics([topic]):
                for p in t["partitions"]:
                    if p.get("partition_index", p.get("partition")) == partition:
                        return int(p.get("leader_id", p.get("leader")))
        finally:
            admin.close()
        return 1

    def node_with_primary(self, index_pattern: str) -> int:
        """A node (1..3) holding a primary shard of ``index_pattern``."""
        rows = httpx.get(f"{self.live_es()}/_cat/shards/{index_pattern}", params={"format": "json"}, timeout=10).json()
        for row in rows:
            if row.get("prirep") == "p" and row.get("node", "").startswith("earshot-cluster-"):
                return int(row["node"].rsplit("-", 1)[1])
        return 1


class ClusterIndex(Index):
    """``Index`` that asks whichever node answers."""

    def __init__(self, stack: ClusterStack, index: str):
        self.stack, self.index = stack, index

    @property
    def es_url(self) -> str:  # type: ignore[override]
        try:
            return self.stack.live_es()
        except RuntimeError:
            return self.stack.es_urls[0]


def raw_duplicates(stack: ClusterStack, topic: str, produced: int) -> int:
    """Records on ``topic`` beyond those produced (a producer retry that wrote twice)."""
    return count_topic(stack.bootstrap, topic) - produced


def spike_alerts(alerts: Index) -> dict[str, list[str]]:
    by_signal: dict[str, set[str]] = {}
    for alert in alerts.sources({"term": {"brand": "united"}}):
        by_signal.setdefault(alert["signal"], set()).add(alert["id"])
    return {signal: sorted(ids) for signal, ids in sorted(by_signal.items())}


def sample_while(seconds: float, crew_check: Callable[[], None], sample: Callable[[], dict], every_s: float = 2.0) -> list[dict]:
    out, began = [], time.monotonic()
    while time.monotonic() - began < seconds:
        crew_check()
        out.append({"t": round(time.monotonic() - began, 1), **sample()})
        time.sleep(every_s)
    return out


# ----------------------------------------------------------------------------------- drills ---

def broker_kill_drill(stack: ClusterStack, workdir: Path, n: int = 3000, rate: float = 60.0, down_s: float = 30.0) -> dict:
    """``kill -9`` the broker leading ``mentions.raw``/0 while ``n`` mentions stream in at
    ``rate``/s, start it again after ``down_s``; every mention indexed once."""
    began = time.monotonic()
    env = stack.env("brokerkill")
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    produced = write_jsonl(workdir / "brokerkill.jsonl", corpus_rows(now, n, hours=2, seed=21))
    crew = Crew(env, workdir / "brokerkill")
    mentions = ClusterIndex(stack, settings.mentions_alias)
    crew.start()
    try:
        replayer = replay_file(env, workdir / "brokerkill.jsonl", "--rate", str(rate), wait=False)
        wait_until("a first part indexed", lambda: mentions.count(DRILL_MENTIONS) >= n // 6, 300, crew, 0.3)
        victim = stack.leader_of(settings.topic_raw)
        before = mentions.count(DRILL_MENTIONS)
        stack.cluster("kill-broker", str(victim))
        samples = sample_while(down_s, crew.check, lambda: {"indexed": mentions.count(DRILL_MENTIONS)})
        during = mentions.count(DRILL_MENTIONS)
        stack.cluster("start-broker", str(victim))
        stack.wait_in_sync()
        out, _ = replayer.communicate(timeout=900)
        wait_indexed(mentions, produced, crew)
        crew.check()
    finally:
        crew.stop()
    result = tally(produced, mentions.ids(DRILL_MENTIONS))
    return {**result, "seconds": round(time.monotonic() - began, 1), "killed_broker": victim,
            "broker_down_s": down_s, "indexed_before_kill": before, "indexed_while_broker_down": during - before,
            "workers_kept_going": during > before and crew.unplanned == 0,
            "replay_exit": replayer.returncode, "replay_output": out.strip()[-500:],
            "raw_topic_duplicates": raw_duplicates(stack, settings.topic_raw, len(produced)),
            "unplanned_worker_crashes": crew.unplanned, "samples": samples}


def node_kill_drill(stack: ClusterStack, workdir: Path, n: int = 3000, rate: float = 60.0, down_s: float = 40.0) -> dict:
    """``kill -9`` an Elasticsearch node holding a primary of the mentions while ``n`` stream in;
    sample cluster health, indexing and the API's search until it is back; every mention
    indexed once."""
    began = time.monotonic()
    admin_key = f"drill-admin-{uuid.uuid4().hex}"
    env = stack.env("nodekill", EARSHOT_BOOTSTRAP_ADMIN_KEY=admin_key)
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    produced = write_jsonl(workdir / "nodekill.jsonl", corpus_rows(now, n, hours=2, seed=23))
    crew = Crew(env, workdir / "nodekill")
    mentions = ClusterIndex(stack, settings.mentions_alias)
    api: ApiProcess | None = None

    def sample() -> dict:
        assert api is not None
        try:
            search = httpx.get(f"{api.url}/v1/mentions/search", params={"q": "flight"},
                               headers={"Authorization": f"Bearer {admin_key}"}, timeout=15).status_code
        except httpx.HTTPError:
            search = 0
        return {"health": stack.health().get("status"), "search": search, "indexed": mentions.count(DRILL_MENTIONS)}

    crew.start()
    try:
        api = ApiProcess(env, workdir / "nodekill" / "api.log")
        replayer = replay_file(env, workdir / "nodekill.jsonl", "--rate", str(rate), wait=False)
        wait_until("a first part indexed", lambda: mentions.count(DRILL_MENTIONS) >= n // 6, 300, crew, 0.3)
        victim = stack.node_with_primary(settings.mentions_index_pattern)
        before = mentions.count(DRILL_MENTIONS)
        stack.cluster("kill-node", str(victim))
        samples = sample_while(down_s, crew.check, sample)
        stack.cluster("start-node", str(victim))
        back_at = time.monotonic()
        stack.wait_green()
        green_after_s = time.monotonic() - back_at
        replayer.communicate(timeout=900)
        wait_indexed(mentions, produced, crew)
        crew.check()
    finally:
        if api is not None:
            api.stop()
        crew.stop()
    result = tally(produced, mentions.ids(DRILL_MENTIONS))
    during = samples[1:]  # the first sample may precede the node's exit
    healths = sorted({s["health"] for s in during})
    indexed_during = max(s["indexed"] for s in during) - before if during else 0
    return {**result, "seconds": round(time.monotonic() - began, 1), "killed_node": victim, "node_down_s": down_s,
            "health_seen": healths, "never_red": "red" not in healths,
            "search_ok": sum(s["search"] == 200 for s in during), "search_failed": sum(s["search"] != 200 for s in during),
            "indexed_before_kill": before, "indexed_while_node_down": indexed_during,
            "green_again_after_s": round(green_after_s, 1), "replay_exit": replayer.returncode,
            "unplanned_worker_crashes": crew.unplanned, "samples": samples}


def spike_stream(now: datetime, n: int, quiet_h: int = 40) -> list[dict]:
    """``n`` mentions over the last ``quiet_h`` hours: quiet ``@united`` history, the demo corpus,
    and a 40-minute ``@united`` burst at the end (the spike watcher must raise it once). 40 hours
    as in the crash drill: with 26 hours (warm-up 24) the watcher raised nothing."""
    spike = burst_rows(now, minutes=40, per_minute=30)
    quiet = quiet_history(now - timedelta(minutes=40), hours=quiet_h)
    filler = max(0, n - len(quiet) - len(spike))
    return by_time(quiet + spike + corpus_rows(now, filler, hours=quiet_h))


def rolling_restart_drill(stack: ClusterStack, workdir: Path, n: int = 10_000, stream_s: float = 720.0) -> dict:
    """Restart every broker, then every node, one at a time (clean stop, start, wait until in
    sync / green), while ``n`` mentions holding one spike stream in over about ``stream_s`` (six
    restarts take 1-2 minutes each on a busy 2-core machine: the stream must outlast them)."""
    began = time.monotonic()
    env = stack.env("rolling", EARSHOT_DETECTOR_WARMUP_H="24")
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = spike_stream(now, n)
    produced = write_jsonl(workdir / "rolling.jsonl", rows)
    crew = Crew(env, workdir / "rolling", with_watcher=True)
    mentions = ClusterIndex(stack, settings.mentions_alias)
    alerts = ClusterIndex(stack, settings.alerts_index)
    steps: list[dict] = []
    crew.start()
    try:
        replayer = replay_file(env, workdir / "rolling.jsonl", "--rate", str(round(len(rows) / stream_s, 1)), wait=False)
        wait_until("a first part indexed", lambda: mentions.count(DRILL_MENTIONS) >= len(rows) // 20, 300, crew, 0.3)
        for kind, n_member in [("broker", m) for m in MEMBERS] + [("node", m) for m in MEMBERS]:
            step_began = time.monotonic()
            stack.cluster(f"stop-{kind}", str(n_member))
            crew.check()
            stack.cluster(f"start-{kind}", str(n_member))
            stack.wait_in_sync() if kind == "broker" else stack.wait_green()
            crew.check()
            steps.append({"member": f"{kind}-{n_member}", "seconds": round(time.monotonic() - step_began, 1),
                          "indexed_after": mentions.count(DRILL_MENTIONS)})
        out, _ = replayer.communicate(timeout=1800)
        wait_indexed(mentions, produced, crew, timeout_s=1200)
        time.sleep(10)  # the by-brand stream and the alert writes trail indexing
        crew.check()
    finally:
        crew.stop()
    result = tally(produced, mentions.ids(DRILL_MENTIONS))
    spikes = spike_alerts(alerts)
    return {**result, "seconds": round(time.monotonic() - began, 1), "restarts": steps,
            "restarts_done_before_stream_end": steps[-1]["indexed_after"] < len(produced) if steps else False,
            "spike_alert_ids": spikes, "alert_raised_twice": any(len(ids) > 1 for ids in spikes.values()),
            "replay_exit": replayer.returncode, "replay_output": out.strip()[-500:],
            "raw_topic_duplicates": raw_duplicates(stack, settings.topic_raw, len(produced)),
            "unplanned_worker_crashes": crew.unplanned}


def member_kill_drill(stack: ClusterStack, workdir: Path, n: int = 4000, stream_s: float = 240.0) -> dict:
    """Two workers and two spike watchers share the stream; during the burst one worker and one
    watcher are killed (-9, not restarted): the survivors take over and the spike is raised once."""
    began = time.monotonic()
    env = stack.env("members", EARSHOT_DETECTOR_WARMUP_H="24")
    settings = settings_for(env)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = spike_stream(now, n)
    produced = write_jsonl(workdir / "members.jsonl", rows)
    burst_from = next(k for k, r in enumerate(rows) if r["id"].startswith("burst-"))
    keep = Crew(env, workdir / "members-a", with_watcher=True)
    # Its own state folder (Faust's datadir), same app id and namespace: the same consumer groups.
    doomed = Crew({**env, "EARSHOT_HOME": env["EARSHOT_HOME"] + "-b"}, workdir / "members-b", with_watcher=True)
    mentions = ClusterIndex(stack, settings.mentions_alias)
    alerts = ClusterIndex(stack, settings.alerts_index)
    keep.start()
    doomed.start()
    try:
        replayer = replay_file(env, workdir / "members.jsonl", "--rate", str(round(len(rows) / stream_s, 1)), wait=False)
        target = burst_from + (len(rows) - burst_from) // 4
        wait_until("the burst a quarter indexed", lambda: mentions.count(DRILL_MENTIONS) >= target, 900, keep, 0.3)
        killed_at = mentions.count(DRILL_MENTIONS)
        doomed.kill()
        out, _ = replayer.communicate(timeout=1800)
        wait_indexed(mentions, produced, keep, timeout_s=900)
        time.sleep(10)
        keep.check()
    finally:
        keep.stop()
        doomed.stop()
    result = tally(produced, mentions.ids(DRILL_MENTIONS))
    spikes = spike_alerts(alerts)
    return {**result, "seconds": round(time.monotonic() - began, 1), "burst_starts_at": burst_from,
            "indexed_at_kill": killed_at, "killed": ["worker", "spikes"], "spike_alert_ids": spikes,
            "alert_raised_twice": any(len(ids) > 1 for ids in spikes.values()),
            "replay_exit": replayer.returncode, "unplanned_worker_crashes": keep.unplanned}


# --------------------------------------------------------------------------------- command ---

FULL = {"broker_kill": dict(n=3000, down_s=30.0), "node_kill": dict(n=3000, down_s=40.0),
        "rolling_restart": dict(n=10_000, stream_s=720.0), "member_kill": dict(n=5000, stream_s=240.0)}
SHORT = {"broker_kill": dict(n=1200, rate=40.0, down_s=20.0), "node_kill": dict(n=1200, rate=40.0, down_s=25.0),
         "rolling_restart": dict(n=4500, stream_s=540.0), "member_kill": dict(n=4500, stream_s=180.0)}
DRILLS = {"broker_kill": broker_kill_drill, "node_kill": node_kill_drill,
          "rolling_restart": rolling_restart_drill, "member_kill": member_kill_drill}


def main(argv: list[str] | None = None) -> int:
    from bench.results import write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="fewer mentions, shorter outages")
    parser.add_argument("--only", choices=list(DRILLS), action="append")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    args = parser.parse_args(argv)
    sizes = SHORT if args.short else FULL
    home = REPO / ".earshot" / "cluster"
    stack = ClusterStack(home)
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    out = REPO / "bench" / "results" / "cluster.json"
    # A partial run (--only) updates the drills it ran and keeps the others.
    kept = json.loads(out.read_text()).get("drills", {}) if args.only and out.exists() else {}
    results: dict[str, Any] = {}
    began = time.monotonic()

    def save() -> None:  # after every drill: a run cut short still leaves what it measured
        write_results(out, {"drills": {**kept, **results}, "short": args.short,
                            "seconds": round(time.monotonic() - began, 1),
                            "cluster": {"kafka_brokers": 3, "replication_factor": 3, "min_insync_replicas": 2,
                                        "producer_acks": "all", "es_nodes": 3, "index_replicas": 1}},
                      summary_without=("drills",))

    stack.up()
    try:
        for name, drill in DRILLS.items():
            if name in (args.only or DRILLS):
                try:
                    stack.wait_green()
                    results[name] = {**drill(stack, work, **sizes[name]), "profile": "short" if args.short else "full"}
                except Exception as exc:  # noqa: BLE001 - a failed drill is a result, reported with the rest
                    results[name] = {"error": repr(exc)[:2000]}
                print(json.dumps({name: {k: v for k, v in results[name].items() if k != "samples"}}), flush=True)
                save()
    finally:
        if not args.keep:
            stack.down()
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
