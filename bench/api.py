"""API benchmark: latency and requests/s of search, trend, reputation, share of voice, emerging
topics, stories and more-like-this over 1,000,000 enriched mentions, 10 concurrent clients on
loopback.

    make bench-api                 (or: python -m bench.api --docs 1000000)
    make bench-api ARGS="--docs 50000 --duration 10 --repeat 1"     (a quick check)

1. Enrich ``--templates`` corpus tweets once with the real models, through the worker's own code
   (``MentionEnricher``, the query tagger, near-duplicate and spam marking, ``to_document``);
   cached under ``.earshot/bench-api/``, keyed by model variant, version and backend.
2. Replicate them to ``--docs`` mentions with new ids, ``created_at`` over the 30 days before the
   load (a daily rhythm, in time order as a live stream would arrive), and brands drawn from
   pipeline/brands.yaml (``brands``, ``competitors``, ``queries``, the @handles and #hashtags of the
   text and its entities rewritten together). Bulk-load them into the monthly indices of the
   isolated prefix ``bench-api`` (refresh off during the load, restored after), then fill the
   hourly rollup with ``rollup_hours``, the code behind ``earshot rollup``. A later run reuses the
   loaded data when its document count and fingerprint match (``--reload`` forces a new load).
3. Start the real API (``earshot api``) in its own process on a free port, and create a key with a
   rate limit far above what the load can reach, so nothing is throttled.
4. For each endpoint, run locust (bench/locustfile.py) in its own process: ``--users`` closed-loop
   users for ``--warmup`` + ``--duration`` seconds; only answers completed after the warm-up count.
   ``--repeat`` rounds; the result reports the medians. Then ``--uncached-rounds`` with
   Elasticsearch's shard request cache off: with live ingestion refreshing the indices every few
   seconds, repeated aggregations are not answered from that cache, as they can be on static data.

Writes bench/results/api.json. Elasticsearch, the API and locust share the machine's cores; run
it with nothing else busy. Only indices named ``bench-api-*`` are created or deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx

from bench.harness import REPO, free_port, ensure_services
from bench.pipeline import machine, model_description
from bench.results import write_results

RESULTS = REPO / "bench" / "results"
PREFIX = "bench-api"
ENDPOINTS = ("search", "trend", "reputation", "share_of_voice", "emerging_topics", "stories", "similar")
TARGET_P95_MS = {"search": 300, "trend": 800, "reputation": 800, "share_of_voice": 800, "emerging_topics": 300,
                 "stories": 300, "similar": 300}
# What the enriched templates must carry: a cache made before keyphrases and vectors is made again.
TEMPLATE_FIELDS = "phrases+embedding"
RATE_LIMIT_PER_MINUTE = 1_000_000  # ~16,700/s: two orders of magnitude above what 10 clients reach here
SPAN = timedelta(days=30)
GENERATOR_VERSION = 1  # bump when the replication below changes: the loaded data no longer matches
STOPWORDS = frozenset("""about after again against also been before being between both could does doing down
during each from further have having here http https into just more most must myself only other over same
should some such than that their theirs them then there these they this those through under until very were
what when where which while whom with would your yours will because amp""".split())


# -- 1. enriched templates ---------------------------------------------------------------------------

def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:12]


def template_cache(settings, count: int) -> Path:
    """Where ``count`` enriched tweets are cached: a new model, backend, brands or routing file re-enriches."""
    from models.bundle import Bundle, variant_dir

    version = Bundle.load(variant_dir(settings.model_variant)).model_version
    files = _digest(settings.brands_file.read_bytes(), settings.routing_file.read_bytes())
    name = (f"enriched-{Path(settings.model_variant).name}-{version}-{settings.model_backend}-{count}-{files}-"
            f"{TEMPLATE_FIELDS}.jsonl")
    return settings.home / "bench-api" / re.sub(r"[^A-Za-z0-9@._-]", "_", name)


def enrich_templates(settings, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``count`` corpus tweets as the worker would index them (cached); and how they were made."""
    path = template_cache(settings, count)
    if path.exists():
        docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return docs, {"templates": len(docs), "cache": os.path.relpath(path, REPO), "cached": True}
    import yaml

    from connectors.replay import EmpythyCorpus, Timeline
    from pipeline.enrich.brands import BrandsFile
    from pipeline.enrich.enricher import load_mention_enricher
    from pipeline.listening.catalog import seed_queries
    from pipeline.enrich.near_dup import NearDuplicateIndex
    from pipeline.enrich.noise import NoiseControl
    from pipeline.listening.tagger import QueryTagger
    from pipeline.schema import Mention, parse_mention

    started = time.monotonic()
    now = datetime.now(timezone.utc)
    enricher = load_mention_enricher(settings)
    tagger = QueryTagger()  # the queries a first worker start seeds from brands.yaml
    specs = BrandsFile.model_validate(yaml.safe_load(settings.brands_file.read_text())).brands
    tagger.update(seed_queries(specs, now))
    noise = NoiseControl(NearDuplicateIndex(max_items=settings.near_dup_max_posts,
                                            max_age_s=settings.near_dup_window_h * 3600))
    timeline = Timeline(now - timedelta(hours=12), 1.0)
    docs: dict[str, dict[str, Any]] = {}
    batch: list[Mention] = []

    def flush() -> None:
        enriched, failed = enricher.enrich_isolating(batch, now)
        for mention, exc in failed:
            print(f"enrichment failed for {mention.id}: {exc!r}", file=sys.stderr)
        for m in enriched:
            m.queries = tagger.tag(m)
        for echo in noise.mark(enriched, now):  # the worker writes these onto the first posts
            if echo.id in docs:
                docs[echo.id]["echoes"] = echo.echoes
        docs.update((m.id, m.to_document()) for m in enriched)
        batch.clear()

    for i, out in enumerate(EmpythyCorpus(limit=count).records()):
        at = timeline.at(i, now).isoformat()
        mention = parse_mention({**out.record, "created_at": at, "ingested_at": at}, now=now)
        if isinstance(mention, Mention):
            batch.append(mention)
        if len(batch) == settings.enrich_batch_size:
            flush()
    if batch:
        flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs.values()))
    tmp.replace(path)
    seconds = time.monotonic() - started
    print(f"enriched {len(docs)} tweets in {seconds:.0f} s -> {path}")
    return list(docs.values()), {"templates": len(docs), "cache": os.path.relpath(path, REPO), "cached": False,
                                 "seconds": round(seconds, 1), "model_version": enricher.model.model_version}


# -- 2. replication (pure) ---------------------------------------------------------------------------

def brand_specs(settings) -> list:
    import yaml

    from pipeline.enrich.brands import BrandsFile

    return BrandsFile.model_validate(yaml.safe_load(settings.brands_file.read_text())).brands


def brand_groups(specs, with_singles: bool = False) -> list[list[str]]:
    """Each watching brand with the competitors listed after it (brands.yaml's demo layout: United and
    the airlines, Apple with Google and Samsung): what one team compares in share of voice."""
    groups: list[list[str]] = []
    for spec in specs:
        if not spec.competitor or not groups:
            groups.append([spec.id])
        else:
            groups[-1].append(spec.id)
    return groups if with_singles else [g for g in groups if len(g) > 1] or [[s.id for s in specs]]


def rhythm_times(n: int, end: datetime, rng: random.Random) -> list[float]:
    """``n`` sorted epoch seconds in [end - 30 d, end): a daily rhythm, busiest mid-afternoon UTC
    (about 3x the night-time rate)."""
    start = end.timestamp() - SPAN.total_seconds()
    times: list[float] = []
    while len(times) < n:
        t = start + rng.random() * SPAN.total_seconds()
        hour = (t % 86400) / 3600
        if rng.random() * 1.5 < 1.0 + 0.5 * math.sin((hour - 9) / 24 * 2 * math.pi):
            times.append(t)
    times.sort()
    return times


class Replicator:
    """New mentions from enriched templates: same readings, new id, time and brands."""

    def __init__(self, templates: list[dict[str, Any]], specs, seed: int):
        self.templates = templates
        self.rng = random.Random(seed)
        self.specs = {s.id: s for s in specs}
        # A brand is replaced by one of its group (an airline by an airline), with Zipf-like sizes:
        # the first of a group in brands.yaml is its busiest.
        self.group_of: dict[str, tuple[list[str], list[float]]] = {}
        for group in brand_groups(specs, with_singles=True):
            weights = [1 / (rank + 1) ** 0.8 for rank in range(len(group))]
            cumulative = (group, [sum(weights[:i + 1]) for i in range(len(weights))])
            self.group_of.update((b, cumulative) for b in group)
        # @handle / #hashtag -> its brand, for rewriting the text in one pass (brands may swap).
        self.owner = {f"{sigil}{tag.lower()}": s.id for s in specs
                      for sigil, tags in (("@", s.handles), ("#", s.hashtags)) for tag in tags}
        self.sigils = re.compile(r"[@#]\w+")

    def brand_map(self, brands: list[str]) -> dict[str, str]:
        """Old brand -> new brand of the same group, distinct new brands (the old one where its group has
        no other left)."""
        chosen: list[str] = []
        for brand in brands:
            group, cumulative = self.group_of[brand]
            free = [b for b in group if b not in chosen]
            if len(free) <= 1:
                chosen.append(free[0] if free else brand)
                continue
            pick = self.rng.choices(group, cum_weights=cumulative)[0]
            while pick in chosen:
                pick = self.rng.choices(group, cum_weights=cumulative)[0]
            chosen.append(pick)
        return dict(zip(brands, chosen))

    def _rewrite(self, text: str, mapping: dict[str, str]) -> str:
        """The old brands' @handles and #hashtags in ``text`` become the new brands' first ones."""
        def swap(match: re.Match) -> str:
            token = match.group(0)
            old = self.owner.get(token.lower())
            if old not in mapping:
                return token
            targets = self.specs[mapping[old]].handles if token[0] == "@" else self.specs[mapping[old]].hashtags
            return token[0] + targets[0] if targets else token

        return self.sigils.sub(swap, text)

    def document(self, number: int, at: float) -> dict[str, Any]:
        template = self.templates[self.rng.randrange(len(self.templates))]
        copy = number // len(self.templates)
        doc = dict(template)
        created = datetime.fromtimestamp(at, timezone.utc)
        doc["id"] = f"{template['id']}.{number}"
        doc["created_at"] = created.isoformat()
        doc["ingested_at"] = (created + timedelta(seconds=1)).isoformat()
        doc["enriched_at"] = (created + timedelta(seconds=1.3)).isoformat()
        if template.get("duplicate_of"):
            doc["duplicate_of"] = f"{template['duplicate_of']}.c{copy}"  # still an echo (voices leave it out)
        old = [b for b in template["brands"] if b in self.specs]
        if not old:  # every stored mention names a tracked brand: this one now @-mentions one
            brand = self.rng.choice(list(self.specs))
            handle = self.specs[brand].handles[:1]
            doc.update(brands=[brand], competitors=[brand] if self.specs[brand].competitor else [],
                       queries=sorted({*template.get("queries", []), brand}))
            if handle:
                doc["text"] = f"@{handle[0]} {template['text']}"
                doc["entities"] = {**template["entities"],
                                   "handles": sorted({*template["entities"]["handles"], handle[0]})}
        else:
            mapping = self.brand_map(old)
            new = list(dict.fromkeys(mapping[b] for b in old))
            doc["brands"] = new
            doc["competitors"] = [b for b in new if self.specs[b].competitor]
            doc["queries"] = sorted({mapping.get(q, q) for q in template.get("queries", [])})
            doc["text"] = self._rewrite(template["text"], mapping)
            entities = dict(template["entities"])
            handles = {h: self.specs[mapping[b]].handles[:1] or [h] for b in old for h in self.specs[b].handles}
            tags = {h: self.specs[mapping[b]].hashtags[:1] or [h] for b in old for h in self.specs[b].hashtags}
            entities["handles"] = sorted({x for h in entities["handles"] for x in handles.get(h, [h])})
            entities["hashtags"] = sorted({x for h in entities["hashtags"] for x in tags.get(h, [h])})
            doc["entities"] = entities
        return doc


def vocabulary(templates: list[dict[str, Any]], specs, size: int = 300) -> list[str]:
    """Search words: corpus words of 4+ letters, neither stopwords nor brand names, from the common
    (rank 20 on) to the rarer (at least 5 of the templates)."""
    brand_words = {w.lower() for s in specs for w in [s.id, *s.handles, *s.hashtags, *" ".join(s.aliases).split()]}
    counts = Counter(w for t in templates for w in set(re.findall(r"[a-z]{4,}", t["text"].lower()))
                     if w not in STOPWORDS and w not in brand_words)
    ranked = [w for w, c in counts.most_common() if c >= 5]
    return ranked[20:20 + size]


# -- 2b. loading (Elasticsearch) ---------------------------------------------------------------------

def fingerprint(settings, templates_cache: str, docs: int, seed: int) -> str:
    from pipeline.store.mappings import MENTION_MAPPINGS
    from pipeline.store.rollup import ROLLUP_MAPPINGS
    from pipeline.schema import SCHEMA_VERSION

    return _digest(templates_cache.encode(), str((docs, seed, GENERATOR_VERSION, SCHEMA_VERSION)).encode(),
                   json.dumps([MENTION_MAPPINGS, ROLLUP_MAPPINGS], sort_keys=True).encode(),
                   settings.brands_file.read_bytes())


def meta_index(settings) -> str:
    return f"{settings.index_prefix}-benchmeta"


async def loaded_meta(settings, fp: str, docs: int) -> dict[str, Any] | None:
    """The stored description of the loaded data if it is what this run would load."""
    from pipeline.store.mention_sink import make_es_client

    es = make_es_client(settings)
    try:
        if not await es.indices.exists(index=meta_index(settings)):
            return None
        found = await es.search(index=meta_index(settings), query={"ids": {"values": ["load"]}})
        if not found["hits"]["hits"]:
            return None
        meta = found["hits"]["hits"][0]["_source"]
        count = (await es.count(index=settings.mentions_alias, ignore_unavailable=True, allow_no_indices=True))["count"]
        rolled = await es.indices.exists(index=settings.rollup_index)
        return meta if meta.get("fingerprint") == fp and count == docs and rolled else None
    finally:
        await es.close()


async def drop_bench_indices(es, settings) -> list[str]:
    """Delete this benchmark's mention, rollup and meta indices (by name: no wildcard deletes)."""
    names = [*await es.indices.get(index=settings.mentions_index_pattern, allow_no_indices=True,
                                   ignore_unavailable=True),
             *[i for i in (settings.rollup_index, meta_index(settings)) if await es.indices.exists(index=i)]]
    assert all(n.startswith(PREFIX + "-") for n in names), names  # never anything outside the bench prefix
    for name in names:
        await es.indices.delete(index=name)
    return names


def month_starts(first: datetime, last: datetime) -> list[datetime]:
    months, month = [], first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month <= last:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


async def load(settings, templates: list[dict[str, Any]], docs: int, seed: int, fp: str) -> dict[str, Any]:
    """Replicate and bulk-load ``docs`` mentions, then roll every hour up; the stored meta."""
    from elasticsearch import Elasticsearch, helpers

    from pipeline.store.mappings import bulk_action, mention_index_name
    from pipeline.store.rollup import hours_between, rollup_hours
    from pipeline.store.mention_sink import ensure_mentions_layout, make_es_client

    es = make_es_client(settings).options(request_timeout=600)
    try:
        dropped = await drop_bench_indices(es, settings)
        if dropped:
            print(f"dropped {len(dropped)} old bench indices")
        await ensure_mentions_layout(es, settings)  # the template (and rollup index) users get
        end = datetime.now(timezone.utc).replace(microsecond=0)
        rng = random.Random(seed)
        times = rhythm_times(docs, end, rng)
        first = datetime.fromtimestamp(times[0], timezone.utc)
        for month in month_starts(first, end):
            await es.indices.create(index=mention_index_name(settings, month))
        # Bulk loading without refreshes; the template's interval is put back after.
        await es.indices.put_settings(index=settings.mentions_index_pattern, settings={"index": {"refresh_interval": "-1"}})
        replicator = Replicator(templates, brand_specs(settings), seed)

        def actions() -> Iterator[dict[str, Any]]:
            for number, at in enumerate(times):
                doc = replicator.document(number, at)
                yield bulk_action(settings, doc, datetime.fromtimestamp(at, timezone.utc))

        sync = Elasticsearch(settings.es_url, request_timeout=600)
        started = time.monotonic()
        errors: list[dict[str, Any]] = []
        done = 0
        try:
            for ok, item in helpers.parallel_bulk(sync, actions(), thread_count=2, chunk_size=1000, queue_size=2,
                                                  raise_on_error=False):
                done += 1
                if not ok:
                    errors.append(item)
                if done % 100_000 == 0:
                    print(f"  loaded {done:,} ({done / (time.monotonic() - started):,.0f}/s)", flush=True)
        finally:
            sync.close()
        load_s = time.monotonic() - started
        await es.indices.put_settings(index=settings.mentions_index_pattern,
                                      settings={"index": {"refresh_interval": settings.index_refresh_interval}})
        await es.indices.refresh(index=settings.mentions_alias)
        print(f"loaded {docs - len(errors):,} mentions in {load_s:.0f} s ({docs / load_s:,.0f}/s), {len(errors)} refused"
              + (f", e.g. {errors[0]}" if errors else ""))
        started = time.monotonic()
        rolled = await rollup_hours(es, settings, hours_between(first, end + timedelta(seconds=1)))
        rollup_s = time.monotonic() - started
        print(f"rolled up {rolled:,} brand-hours in {rollup_s:.0f} s")
        meta = {"fingerprint": fp, "docs": docs, "data_from": first.isoformat(), "data_end": end.isoformat(),
                "loaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "load_seconds": round(load_s, 1), "docs_per_s": round(docs / load_s), "bulk_refused": len(errors),
                "rollup_seconds": round(rollup_s, 1), "rollup_documents": rolled,
                "bulk": "elasticsearch.helpers.parallel_bulk, 2 threads, 1000 per request, refresh off"}
        await es.index(index=meta_index(settings), id="load", document=meta, refresh=True)
        return meta
    finally:
        await es.close()


def wait_for_merges(settings, timeout_s: float = 300) -> float:
    """Seconds waited until Elasticsearch has no merge running on the bench indices."""
    started = time.monotonic()
    with httpx.Client(base_url=settings.es_url, timeout=30) as es:
        while time.monotonic() - started < timeout_s:
            stats = es.get(f"/{settings.mentions_index_pattern}/_stats/merge").json()
            if stats["_all"]["total"]["merges"]["current"] == 0:
                break
            time.sleep(2)
    return time.monotonic() - started


def set_request_cache(settings, enabled: bool) -> None:
    """Turn Elasticsearch's shard request cache (which keeps size=0 aggregation answers until the next
    refresh that changes the index) on or off for the bench indices, and empty it. With live ingestion
    the current month's index and the rollup change every few seconds, so few answers stay cached:
    ``off`` measures that worst case on this static data."""
    indices = f"{settings.mentions_index_pattern},{settings.rollup_index}"
    with httpx.Client(base_url=settings.es_url, timeout=30) as es:
        es.put(f"/{indices}/_settings", json={"index": {"requests.cache.enable": None if enabled else False}}).raise_for_status()
        es.post(f"/{indices}/_cache/clear", params={"request": "true"}).raise_for_status()


def index_size(settings) -> dict[str, Any]:
    with httpx.Client(base_url=settings.es_url, timeout=30) as es:
        stats = es.get(f"/{settings.mentions_index_pattern}/_stats/store,segments").json()["_all"]["primaries"]
    return {"bytes": stats["store"]["size_in_bytes"], "segments": stats["segments"]["count"]}


# -- 3. the API and its key --------------------------------------------------------------------------

class Api:
    """``earshot api`` in its own process on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "api", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the API was not ready after {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def create_key(env: dict[str, str]) -> str:
    """A comms key (mentions and trends) named bench-api, rate-limited far above the load."""
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "create", "--role", "comms", "--name", "bench-api",
         "--rate-per-minute", str(RATE_LIMIT_PER_MINUTE), "--replace"],
        cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


# -- 4. the load -------------------------------------------------------------------------------------

def check_endpoints(api: Api, key: str, params: dict[str, Any]) -> dict[str, str | None]:
    """One request per endpoint before measuring: each must answer 200; the source header each gave."""
    brand, group = params["brands"][0], params["brand_groups"][0]
    window = f"from={params['data_from_24h']}&to={params['data_to_z']}&interval=1h"
    paths = {"search": f"/v1/mentions/search?q={params['words'][0]}&brand={brand}",
             "trend": f"/v1/brands/{brand}/trend?{window}",
             "reputation": f"/v1/brands/{brand}/reputation?{window}",
             "share_of_voice": f"/v1/competitors/share-of-voice?brands={','.join(group)}&{window}",
             "emerging_topics": f"/v1/market/emerging-topics?brand={brand}&to={params['data_to_z']}",
             "stories": f"/v1/brands/{brand}/stories?from={params['data_from_24h']}&to={params['data_to_z']}",
             "similar": f"/v1/mentions/{params['mentions'][0][0]}/similar?brand={params['mentions'][0][1]}"}
    sources = {}
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for name, path in paths.items():
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {path} answered {response.status_code}: {response.text[:300]}")
            sources[name] = response.headers.get("X-Earshot-Source")
    return sources


def run_locust(api: Api, key: str, endpoint: str, params: dict[str, Any], args: argparse.Namespace,
               workdir: Path) -> dict[str, Any]:
    """One locust process against one endpoint; figures over the answers after the warm-up."""
    params_path, out_path = workdir / f"{endpoint}-params.json", workdir / f"{endpoint}-samples.json"
    params_path.write_text(json.dumps({**params, "endpoint": endpoint}))
    out_path.unlink(missing_ok=True)
    env = {**os.environ, "EARSHOT_BENCH_PARAMS": str(params_path), "EARSHOT_BENCH_OUT": str(out_path),
           "EARSHOT_BENCH_KEY": key}
    load_before = os.getloadavg()[0]
    run_time = math.ceil(args.warmup + args.duration + 1)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "locust"), "-f", str(REPO / "bench" / "locustfile.py"), "--headless",
         "--users", str(args.users), "--spawn-rate", str(args.users), "--run-time", f"{run_time}s",
         "--host", api.url, "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "0"],
        cwd=REPO, env=env, capture_output=True, text=True)
    if not out_path.exists():
        raise RuntimeError(f"locust wrote no samples (exit {result.returncode}):\n{result.stderr[-2000:]}")
    samples = json.loads(out_path.read_text())["samples"]
    window = [s for s in samples if args.warmup <= s[0] < args.warmup + args.duration]
    ok = sorted(s[1] for s in window if s[2] == 200)
    errors = Counter(str(s[2]) for s in window if s[2] != 200)
    q = statistics.quantiles(ok, n=100, method="inclusive") if len(ok) > 1 else [ok[0] if ok else 0.0] * 99
    figures = {"p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1), "rps": round(len(window) / args.duration, 1),
               "requests": len(window), "errors": sum(errors.values()), "error_statuses": dict(errors),
               "max_ms": round(ok[-1], 1) if ok else None,
               "source": dict(Counter(s[3] for s in window if s[3])), "load_average_before": round(load_before, 2)}
    print(f"  {endpoint:15s} p50 {figures['p50_ms']:7.1f} ms  p95 {figures['p95_ms']:7.1f} ms  "
          f"{figures['rps']:6.1f} req/s  {figures['errors']} errors  {figures['source'] or ''}", flush=True)
    return figures


async def sample_mentions(settings, n: int = 200, seed: int = 7) -> list[tuple[str, str]]:
    """``n`` (id, brand) pairs of loaded mentions that carry a vector: the posts "more like this" starts from."""
    from pipeline.store.mention_sink import make_es_client

    es = make_es_client(settings)
    try:
        found = await es.search(index=settings.mentions_alias, size=n, _source=["id", "brands"], query={
            "function_score": {"query": {"exists": {"field": "embedding"}},
                               "random_score": {"seed": seed, "field": "_seq_no"}}})
    finally:
        await es.close()
    return [(h["_source"]["id"], h["_source"]["brands"][0]) for h in found["hits"]["hits"] if h["_source"]["brands"]]


def workload(settings, templates, meta: dict[str, Any]) -> dict[str, Any]:
    specs = brand_specs(settings)
    end = datetime.fromisoformat(meta["data_end"])
    to = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)  # ranges end at the data's last hour
    return {"brands": [s.id for s in specs], "brand_groups": brand_groups(specs),
            "words": vocabulary(templates, specs), "data_to": to.isoformat(),
            "data_to_z": to.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data_from_24h": (to - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "mentions": asyncio.run(sample_mentions(settings))}


# -- the run -----------------------------------------------------------------------------------------

def medians(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per endpoint: the medians of p50, p95 and requests/s over the rounds; errors and requests summed."""
    endpoints = {}
    for name in ENDPOINTS:
        runs = [r[name] for r in rounds]
        med = {k: round(statistics.median(r[k] for r in runs), 1) for k in ("p50_ms", "p95_ms", "rps")}
        sources: Counter = Counter()
        for r in runs:
            sources.update(r["source"])
        endpoints[name] = {**med, "errors": sum(r["errors"] for r in runs),
                           "requests": sum(r["requests"] for r in runs), "target_p95_ms": TARGET_P95_MS[name],
                           "target_met": med["p95_ms"] <= TARGET_P95_MS[name], "source": dict(sources)}
    return endpoints


def targets_met(endpoints: dict[str, dict[str, Any]]) -> bool:
    return all(e["target_met"] and not e["errors"] for e in endpoints.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000, help="mentions to load")
    parser.add_argument("--templates", type=int, default=20_000, help="corpus tweets to enrich with the models")
    parser.add_argument("--users", type=int, default=10, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds per endpoint before measuring")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over the endpoints; the result reports medians")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reload", action="store_true", help="load the data again even if it matches")
    parser.add_argument("--uncached-rounds", type=int, default=1,
                        help="rounds after those, with Elasticsearch's shard request cache off (every aggregation "
                        "computed, as when ingestion keeps refreshing the indices); 0 to skip")
    parser.add_argument("--out", type=Path, default=RESULTS / "api.json")
    args = parser.parse_args(argv)

    ensure_services()
    env = {**os.environ, "EARSHOT_INDEX_PREFIX": PREFIX, "EARSHOT_TOPIC_PREFIX": f"{PREFIX}.",
           "EARSHOT_APP_ID": f"earshot-{PREFIX}", "EARSHOT_LOG_FORMAT": "text"}
    from pipeline.settings import Settings

    settings = Settings(index_prefix=PREFIX, topic_prefix=f"{PREFIX}.")
    templates, enrichment = enrich_templates(settings, args.templates)
    fp = fingerprint(settings, enrichment["cache"], args.docs, args.seed)
    meta = None if args.reload else asyncio.run(loaded_meta(settings, fp, args.docs))
    reused = meta is not None
    if meta is None:
        print(f"loading {args.docs:,} mentions into {settings.mentions_alias} ...", flush=True)
        meta = asyncio.run(load(settings, templates, args.docs, args.seed, fp))
    else:
        print(f"reusing the {args.docs:,} mentions loaded at {meta['loaded_at']} (fingerprint {fp})")
    merge_wait_s = wait_for_merges(settings)
    params = workload(settings, templates, meta)
    set_request_cache(settings, True)

    workdir = Path(tempfile.mkdtemp(prefix="earshot-bench-api-"))
    api = Api(env, workdir / "api.log")
    api.start()
    try:
        key = create_key(env)
        first_sources = check_endpoints(api, key, params)
        rounds = []
        for round_number in range(args.repeat):
            print(f"round {round_number + 1}/{args.repeat}: {args.users} users, {args.warmup:g} s warm-up + "
                  f"{args.duration:g} s per endpoint", flush=True)
            rounds.append({e: run_locust(api, key, e, params, args, workdir) for e in ENDPOINTS})
        set_request_cache(settings, False)
        uncached = []
        for round_number in range(args.uncached_rounds):
            print(f"uncached round {round_number + 1}/{args.uncached_rounds} (Elasticsearch request cache off)",
                  flush=True)
            uncached.append({e: run_locust(api, key, e, params, args, workdir) for e in ENDPOINTS})
    finally:
        api.stop()
        set_request_cache(settings, True)  # back to Elasticsearch's default

    endpoints = medians(rounds)
    without_cache = medians(uncached) if uncached else None
    report = {
        "docs": args.docs,
        "concurrency": args.users,
        "endpoints": endpoints,
        "targets_met": targets_met(endpoints),
        "aggregate": f"median of {args.repeat} rounds" if args.repeat > 1 else "one round",
        # The names: {endpoint: {p50_ms, p95_ms, rps, ...}} with the request cache off.
        "uncached": without_cache,
        "uncached_live": None,  # not measured yet: the same with live ingestion running (see README)
        "without_request_cache": without_cache and {
            "endpoints": without_cache, "targets_met": targets_met(without_cache), "rounds": len(uncached),
            "why": "Elasticsearch's shard request cache (on by default) answers a repeated size=0 aggregation over "
                   "an unchanged index from memory; this static data never changes, but with live ingestion the "
                   "current month's index and the rollup are refreshed every few seconds, which empties it. These "
                   "rounds turn it off: every aggregation is computed, the worst case of a live system."},
        "rounds": rounds,
        "uncached_rounds": uncached,
        "measurement": {"duration_s": args.duration, "warmup_s": args.warmup, "users": args.users,
                        "es_request_cache": "on (Elasticsearch's default) in the main rounds; off in the "
                                            "uncached rounds (see without_request_cache)",
                        "load_tool": "locust 2.47.0 headless, FastHttpUser, its own process, closed loop "
                                     "(no think time), loopback",
                        "workload": {"search": "q: 1 word (60 %), 2 words (25 %) or a 4-letter prefix* (15 %) from "
                                     f"{len(params['words'])} corpus words; brand filter 70 %, sentiment 20 %, "
                                     "from=24h/7d ago 30 %",
                                     "aggregations": "a random brand (share of voice: 2+ brands of one group "
                                     f"{params['brand_groups']}); from/to 24h@1h, 7d@1h, 7d@1d or 30d@1d, ending at "
                                     f"{params['data_to_z']}"},
                        "first_request_sources": first_sources},
        "rate_limit_per_minute": RATE_LIMIT_PER_MINUTE,
        "rate_limit_note": "The benchmark's key (role comms) is created with this per-key limit, far above what "
                           "the load reaches, so no request is throttled (a 429 would be counted as an error).",
        "data": {"index_prefix": PREFIX, "reused": reused, **meta, "merge_wait_s": round(merge_wait_s, 1),
                 "index": index_size(settings), "span_days": SPAN.days,
                 "replication": "enriched templates replicated with new ids, created_at over 30 days with a daily "
                                "rhythm, brands drawn from brands.yaml (within a brand's group, Zipf-like sizes) with "
                                "@handles/#hashtags, entities, competitors and queries rewritten to match; a template "
                                "naming no brand gets one (an @handle prepended), so every mention names a brand",
                 "templates_naming_a_brand": sum(1 for t in templates if t["brands"])},
        "enrichment": enrichment,
        "model": model_description(),
        "machine": machine(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_results(args.out, report, summary_without=("rounds", "uncached_rounds"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
