"""Stories (clusters of a window's posts about the same thing) and "more like this". Pure.

Both read the sentence vector the pipeline stores with each post (``embedding``: unit length, 384
floats, indexed as an int8-quantised HNSW ``dense_vector``).

Stories: the newest ``sample`` posts of the window that are neither spam nor near-copies, with
their vectors, are grouped by spherical k-means (cosine; k-means++ seeds from a fixed seed, best of
a few restarts: the same posts give the same stories). Each story gets a label (its most distinctive phrase: the
phrase most over-represented in it against the whole sample, a longer phrase replacing a word it
covers), its size in the sample and the window's volume that size stands for, its sentiment mix,
the two posts closest to its centre by different authors, and its growth: the previous window of
equal length is sampled the same way and each of its posts counted for the nearest story, if it
is at least as close to that story's centre as 90 % of the story's own posts (the count then
divided by the share of its own posts that pass that bar).

More like this: ES kNN on ``embedding`` with the filters (brand, time, spam) inside the kNN
search, so the k nearest are found among the posts that pass them; the post itself, the post it
copies and that post's other copies are left out, and near-copies in general unless asked for.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from api.analytics.bodies import NOT_ECHO, _filters
from pipeline.enrich.phrases import prefer_phrases

STORY_SAMPLE = 400
STORY_FIELDS = ["id", "text", "created_at", "url", "author.handle", "author.followers", "sentiment.label", "phrases",
                "embedding"]
SIMILAR_FIELDS = [f for f in STORY_FIELDS if f != "embedding"] + ["duplicate_of"]
SENTIMENTS = ("negative", "neutral", "positive")
REPRESENTATIVES = 2
RESTARTS = 4
MEMBER_QUANTILE = 0.1  # growth: an earlier post belongs to a story if nearer than its 10 % least typical posts
PHRASE_BONUS = 0.5
SEED = 0


def story_sample_body(brand: str, since: datetime, until: datetime, max_spam: float | None,
                      sample: int = STORY_SAMPLE) -> dict[str, Any]:
    """The newest ``sample`` voices (no spam, no near-copies) of the window that carry a vector."""
    return {
        "size": sample,
        "track_total_hits": True,
        "query": {"bool": {"filter": [*_filters(brand, since, until, max_spam), NOT_ECHO,
                                      {"exists": {"field": "embedding"}}]}},
        "sort": [{"created_at": {"order": "desc"}}, {"id": {"order": "desc"}}],
        "_source": STORY_FIELDS,
    }


def sample_of(response: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """(the sampled posts' ``_source``, the window's volume) from a ``story_sample_body`` answer."""
    hits = response.get("hits", {})
    return [h["_source"] for h in hits.get("hits", [])], int(hits.get("total", {}).get("value", 0))


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _seeds(vectors: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on cosine distance: each next centre drawn in proportion to its squared
    distance from the nearest centre so far."""
    centres = [vectors[rng.integers(len(vectors))]]
    for _ in range(1, k):
        distance = np.clip(1 - (vectors @ np.stack(centres).T).max(axis=1), 0, None) ** 2
        if distance.sum() <= 0:
            break
        centres.append(vectors[rng.choice(len(vectors), p=distance / distance.sum())])
    return np.stack(centres)


def cluster(vectors: np.ndarray, k: int, restarts: int = RESTARTS, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(label per row, unit centre per cluster) of unit ``vectors`` by spherical k-means (cosine),
    the best of ``restarts`` seeded runs; at most ``k`` clusters, fewer when there are too few posts
    for ``k`` of two. Plain numpy: a few hundred vectors take milliseconds, without the thread
    pools of a library k-means that contend with Elasticsearch for the cores."""
    k = max(1, min(k, len(vectors) // 2))
    if k == 1:
        return np.zeros(len(vectors), dtype=int), _unit(vectors.mean(axis=0, keepdims=True))
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for restart in range(restarts):
        centres = _seeds(vectors, k, np.random.default_rng(SEED + restart))
        labels = np.full(len(vectors), -1)
        for _ in range(iterations):
            new = (vectors @ centres.T).argmax(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            centres = _unit(np.stack([vectors[labels == c].mean(axis=0) if (labels == c).any() else centres[c]
                                      for c in range(len(centres))]))
        spread = float((1 - (vectors * centres[labels]).sum(axis=1)).sum())
        if best is None or spread < best[0]:
            best = (spread, labels, centres)
    assert best is not None
    return best[1], best[2]


def label_phrases(member_phrases: list[list[str]], all_phrases: Counter, total: int, n: int = 3) -> list[str]:
    """The ``n`` phrases most over-represented in a story against the sample (share in the story x
    log of that share over the share in the sample, by doc counts; a phrase's extra words weigh
    ``PHRASE_BONUS`` each), a longer phrase replacing a word it covers."""
    inside = Counter(p for phrases in member_phrases for p in set(phrases))
    size = len(member_phrases)
    least = 2 if size >= 4 else 1
    scored = []
    for phrase, count in inside.items():
        if count < least:
            continue
        p_in, p_all = count / size, all_phrases[phrase] / total
        # A phrase reads better than a word: each extra word weighs half again.
        weight = 1 + PHRASE_BONUS * (phrase.count(" "))
        scored.append({"term": phrase, "count": count, "score": weight * p_in * math.log(p_in / p_all)})
    scored.sort(key=lambda s: (-s["score"], -s["count"], s["term"]))
    best = [s["term"] for s in prefer_phrases(scored[: n * 4], n)]
    # A phrase shared by a third of the story labels it better than a single word ("lost luggage"
    # over "lost"), if it is among the distinctive ones.
    common = [s["term"] for s in scored[: n * 4] if " " in s["term"] and s["count"] >= max(2, size / 3)]
    if best and " " not in best[0] and common:
        best = [common[0], *[t for t in best if t != common[0] and f" {t} " not in f" {common[0]} "]][:n]
    return best


def _representatives(members: list[int], closeness: np.ndarray, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The posts closest to the centre, one per author."""
    chosen, authors = [], set()
    for i in sorted(members, key=lambda i: (-closeness[i], docs[i]["id"])):
        author = (docs[i].get("author") or {}).get("handle") or f"\0{docs[i]['id']}"
        if author in authors:
            continue
        authors.add(author)
        chosen.append({k: v for k, v in docs[i].items() if k not in ("embedding", "phrases")})
        if len(chosen) == REPRESENTATIVES:
            break
    return chosen


def stories(docs: list[dict[str, Any]], volume: int, previous: list[dict[str, Any]], previous_volume: int,
            k: int) -> list[dict[str, Any]]:
    """Up to ``k`` stories of the sampled ``docs`` (standing for ``volume`` posts), biggest first,
    with growth against the ``previous`` window's sample (standing for ``previous_volume``)."""
    # Products this small are slower on a BLAS thread pool than on one thread, much slower when
    # Elasticsearch holds the other cores (measured: 2 s against 60 ms for 400 x 384).
    with threadpool_limits(limits=1):
        return _stories(docs, volume, previous, previous_volume, k)


def _stories(docs: list[dict[str, Any]], volume: int, previous: list[dict[str, Any]], previous_volume: int,
             k: int) -> list[dict[str, Any]]:
    # k-means' seeding depends on row order: sorted by id, the same posts give the same stories.
    docs = sorted((d for d in docs if d.get("embedding")), key=lambda d: d["id"])
    if not docs:
        return []
    vectors = _unit(np.asarray([d["embedding"] for d in docs], dtype=np.float32))
    labels, centres = cluster(vectors, k)
    closeness = np.einsum("ij,ij->i", vectors, centres[labels])
    all_phrases = Counter(p for d in docs for p in set(d.get("phrases") or []))
    scale = volume / len(docs)

    earlier = [d for d in previous if d.get("embedding")]
    earlier_counts: Counter = Counter()
    # An earlier post counts for its nearest story if it is as close to the centre as most of the
    # story's own posts; the share of the story's posts that pass the same bar corrects the count.
    bar = {c: float(np.quantile(closeness[labels == c], MEMBER_QUANTILE)) for c in range(len(centres))
           if (labels == c).any()}
    if earlier:
        sims = _unit(np.asarray([d["embedding"] for d in earlier], dtype=np.float32)) @ centres.T
        for row, c in enumerate(sims.argmax(axis=1)):
            if int(c) in bar and sims[row, c] >= bar[int(c)]:
                earlier_counts[int(c)] += 1
    earlier_scale = previous_volume / len(earlier) if earlier else 0.0

    found = []
    for c in range(len(centres)):
        members = [i for i in range(len(docs)) if labels[i] == c]
        if not members:
            continue
        phrases = label_phrases([docs[i].get("phrases") or [] for i in members], all_phrases, len(docs))
        mix = Counter((docs[i].get("sentiment") or {}).get("label") for i in members)
        passing = float((closeness[members] >= bar[c]).mean())
        estimated, before = round(len(members) * scale), round(earlier_counts[c] * earlier_scale / passing)
        found.append({
            "label": phrases[0] if phrases else None,
            "phrases": phrases,
            "size": len(members),
            "volume": estimated,
            "previous_volume": before,
            "growth": round((estimated - before) / before, 4) if before else None,
            "sentiment": {s: mix.get(s, 0) for s in SENTIMENTS},
            "cohesion": round(float(closeness[members].mean()), 4),
            "representatives": _representatives(members, closeness, docs),
            "ids": [docs[i]["id"] for i in sorted(members, key=lambda i: -closeness[i])],
        })
    found.sort(key=lambda s: (-s["size"], s["label"] or ""))
    return found


def mention_vector_body(mention_id: str) -> dict[str, Any]:
    """The stored post's vector and what marks its near-copies."""
    return {"size": 1, "query": {"ids": {"values": [mention_id]}},
            "_source": ["id", "embedding", "duplicate_of"]}


def similar_body(vector: list[float], mention_id: str, original: str | None, brand: str | None,
                 since: datetime | None, until: datetime | None, max_spam: float | None, size: int,
                 include_duplicates: bool = False) -> dict[str, Any]:
    """kNN on ``embedding``, filtered inside the search, without the post and its copy family."""
    family = sorted({mention_id, *([original] if original else [])})
    filters: list[dict[str, Any]] = [
        *_filters(brand, since, until, max_spam),
        {"bool": {"must_not": [{"ids": {"values": family}}, {"terms": {"duplicate_of": family}}]}},
    ]
    if not include_duplicates:
        filters.append(NOT_ECHO)
    return {
        "knn": {"field": "embedding", "query_vector": vector, "k": size, "num_candidates": max(100, 10 * size),
                "filter": filters},
        "size": size,
        "_source": SIMILAR_FIELDS,
    }


def similar_hits(response: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"similarity", **post}]``, nearest first; ES scores cosine as (1 + cos) / 2."""
    return [{"similarity": round(2 * float(h["_score"]) - 1, 4), **h["_source"]}
            for h in response.get("hits", {}).get("hits", [])]
