"""Themes benchmark: complaint themes and emerging topics as ``significant_text`` on the text (the
old way) against ``significant_terms`` on the pipeline's keyphrases (``phrases``), with
Elasticsearch's request cache off, one client at a time.

    python -m bench.themes --docs 300000 [--keep]       then: python -m bench.themes --reuse

Loads ``--docs`` synthetic mentions (``--brands`` brands over ``--days`` days; words drawn from a
Zipf-distributed vocabulary, a few planted phrases; ``phrases`` extracted by
``pipeline/enrich/phrases.py``) into the throwaway index ``bench-themes`` (dropped first), then
times each body ``--repeat`` times with ``request_cache=false`` and reports p50/p95 in ms.
It measures the aggregation alone (no API, no HTTP client pool): the figure to compare the two
ways; ``bench/api.py`` measures the endpoints end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from api.analytics.bodies import authors_body, emerging_topics_body, parse_reputation_extras, reputation_extras_body
from bench.harness import REPO
from bench.results import write_results
from pipeline.enrich.phrases import extract_phrases
from pipeline.settings import Settings
from pipeline.store.mention_sink import make_es_client

INDEX = "bench-themes"
MAPPINGS = {"dynamic": "strict", "properties": {
    "brands": {"type": "keyword"}, "created_at": {"type": "date"}, "text": {"type": "text"},
    "phrases": {"type": "keyword", "ignore_above": 128}, "duplicate_of": {"type": "keyword"},
    "complaint": {"properties": {"label": {"type": "boolean"}}}, "spam": {"properties": {"score": {"type": "float"}}},
    "author": {"properties": {"handle": {"type": "keyword"}, "followers": {"type": "long"}}},
    "metrics": {"properties": {"likes": {"type": "long"}, "shares": {"type": "long"}, "replies": {"type": "long"}}},
    "entities": {"properties": {"hashtags": {"type": "keyword"}}},
    "id": {"type": "keyword"}, "url": {"type": "keyword"}, "sentiment": {"properties": {"label": {"type": "keyword"}}},
}}
FILLER = ["the", "my", "is", "at", "to", "and", "was", "of", "for", "again", "this", "we", "no", "not"]
PLANTED = ["lost luggage", "gate agent", "refund request", "cancelled flight", "wifi outage"]


def synthetic(n: int, brands: int, days: int, end: datetime, seed: int):
    rng = random.Random(seed)
    vocab = [f"w{i:04d}" for i in range(3000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    start = end - timedelta(days=days)
    for i in range(n):
        words = rng.choices(vocab, weights, k=12)
        for j in range(0, 12, 3):
            words.insert(j, rng.choice(FILLER))
        complaint = rng.random() < 0.25
        if complaint and rng.random() < 0.5:
            words += ["and", *rng.choice(PLANTED).split()]
        text = " ".join(words)
        yield {"_index": INDEX, "_id": str(i), "_source": {
            "id": str(i), "brands": [f"brand{rng.randrange(brands)}"], "text": text,
            "created_at": (start + timedelta(seconds=rng.random() * days * 86400)).isoformat(),
            "phrases": extract_phrases(text), "complaint": {"label": complaint},
            "author": {"handle": f"u{rng.randrange(50000)}", "followers": rng.randrange(100000)},
            "metrics": {"likes": rng.randrange(10), "shares": 0, "replies": 0},
        }}


def significant_text_reputation(brand: str, since: datetime, until: datetime) -> dict:
    """The complaint-themes body before keyphrases: a sampled ``significant_text`` on ``text`` (with
    today's collapsed authors, so the difference is the themes alone)."""
    body = reputation_extras_body(brand, since, until, 0.7)
    period = body["query"]["bool"]["filter"]
    body["aggs"]["complaints"]["aggs"]["themes"] = {"sampler": {"shard_size": 2000}, "aggs": {"words": {
        "significant_text": {"field": "text", "size": 10, "min_doc_count": 2, "filter_duplicate_text": False,
                             "background_filter": {"bool": {"filter": period}}}}}}
    return body


async def timed(es, body: dict, repeat: int) -> dict:
    took = []
    for _ in range(repeat):
        t = time.perf_counter()
        await es.search(index=INDEX, request_cache=False, **body)
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return {"p50_ms": round(statistics.median(took), 1), "p95_ms": round(took[max(0, int(0.95 * len(took)) - 1)], 1),
            "runs": repeat}


async def run(args) -> dict:
    from elasticsearch.helpers import async_bulk

    es = make_es_client(Settings())
    end = datetime(2026, 11, 8, tzinfo=timezone.utc)
    try:
        t = time.perf_counter()
        if not args.reuse:
            await es.options(ignore_status=404).indices.delete(index=INDEX)
            await es.indices.create(index=INDEX, mappings=MAPPINGS, settings={
                "number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"})
            await async_bulk(es.options(request_timeout=120),
                             synthetic(args.docs, args.brands, args.days, end, args.seed), chunk_size=5000)
            await es.indices.refresh(index=INDEX)
            await es.options(request_timeout=600).indices.forcemerge(index=INDEX, max_num_segments=5)
        load_s = time.perf_counter() - t
        day = (end - timedelta(days=1), end)
        # reputation_extras_body: complaint themes + the most followed authors (collapsed hits);
        # influential_authors_*: the second search for those authors' mentions and engagement.
        bodies = {
            "complaint_themes_significant_text_24h": significant_text_reputation("brand0", *day),
            "reputation_extras_phrases_24h": reputation_extras_body("brand0", *day, 0.7),
            "reputation_extras_phrases_7d": reputation_extras_body("brand0", end - timedelta(days=7), end, 0.7),
            "emerging_topics_phrases_6h_vs_7d": emerging_topics_body("brand0", end - timedelta(hours=6), end - timedelta(days=7),
                                                            end, 0.7, 10, 3),
        }
        for label, since in (("24h", day[0]), ("7d", end - timedelta(days=7))):
            first = await es.search(index=INDEX, **reputation_extras_body("brand0", since, end, 0.7))
            handles = parse_reputation_extras(first)["author_handles"]
            bodies[f"influential_authors_{label}"] = authors_body("brand0", since, end, 0.7, handles)
        if args.only_week:
            bodies = {k: v for k, v in bodies.items() if "7d" in k}
        results = {name: await timed(es, body, args.repeat) for name, body in bodies.items()}
        count = (await es.count(index=INDEX))["count"]
        brand_day = (await es.count(index=INDEX, query={"bool": {"filter": [
            {"term": {"brands": "brand0"}}, {"range": {"created_at": {"gte": day[0].isoformat()}}}]}}))["count"]
        return {"docs": count, "brand_day_docs": brand_day, "load_s": round(load_s, 1), "request_cache": False,
                "load_average_1m_after": round(os.getloadavg()[0], 1), "cores": os.cpu_count(), "results": results}
    finally:
        if not args.keep:
            await es.options(ignore_status=404).indices.delete(index=INDEX)
        await es.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300_000)
    parser.add_argument("--brands", type=int, default=3)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the index afterwards")
    parser.add_argument("--reuse", action="store_true", help="time the kept index again, without loading")
    parser.add_argument("--only-week", action="store_true", help="only the 7-day bodies")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "themes.json")
    args = parser.parse_args(argv)
    write_results(args.out, asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
