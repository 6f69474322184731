"""Searches over the raw mentions that the rollup cannot answer (text, authors), and their shaping. Pure.

Significant terms: ``significant_text`` re-analyses the ``text`` of the foreground documents (the
query's hits) with the standard analyzer and scores each word by how much more often it occurs
there than in a background set (``background_filter``); ``significant_terms`` does the same on a
keyword field (hashtags). Near-copies (``duplicate_of``: retweets, copy-paste campaigns) are left
out of every foreground, so a term counts voices, not echoes. ``significant_text`` runs under a
``sampler`` so its cost stays bounded at millions of documents: its counts are then counts within
the sample (``SAMPLE_PER_SHARD`` documents per shard).
User text reaches Elasticsearch only as values (``term``/``simple_query_string`` query values).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.analytics.series import not_spam
from api.queries import MentionFilter, search_body, time_range

SAMPLE_PER_SHARD = 2000
EXAMPLE_FIELDS = ["id", "text", "created_at", "url", "author.handle", "author.followers", "sentiment.label"]
INVESTOR = "investor"
PRODUCT_FEEDBACK = "product_feedback"  # the purpose label (models/tasks.py) routed to the product team


NOT_ECHO = {"bool": {"must_not": {"exists": {"field": "duplicate_of"}}}}


def _filters(brand: str | None, since: datetime | None, until: datetime | None,
             max_spam: float | None) -> list[dict[str, Any]]:
    return [*([{"term": {"brands": brand}}] if brand else []), *not_spam(max_spam),
            *time_range("created_at", since, until)]


# The most followed authors first: the examples a comms team would quote.
_EXAMPLE_SORT = [{"author.followers": {"order": "desc", "missing": "_last"}}, {"created_at": {"order": "desc"}}]


def _examples(n: int) -> dict[str, Any]:
    return {"top_hits": {"size": n, "_source": {"includes": EXAMPLE_FIELDS}, "sort": _EXAMPLE_SORT}}


def examples_search(foreground: list[dict[str, Any]], word: str, n: int) -> dict[str, Any]:
    """Up to ``n`` foreground posts containing ``word`` (``significant_text`` takes no sub-aggregation)."""
    return {"size": n, "query": {"bool": {"filter": [*foreground, {"match": {"text": word}}]}},
            "_source": EXAMPLE_FIELDS, "sort": _EXAMPLE_SORT}


def attach_examples(items: list[dict[str, Any]], responses: list[dict[str, Any]]) -> None:
    """Set each item's ``examples`` from the answer of its ``examples_search`` (same order)."""
    for item, response in zip(items, responses):
        item["examples"] = [hit["_source"] for hit in response.get("hits", {}).get("hits", [])]


def significant_words(background: list[dict[str, Any]], size: int, min_doc_count: int = 2) -> dict[str, Any]:
    """A sampled ``significant_text`` on ``text`` against ``background`` (filter clauses)."""
    words = {"significant_text": {
        "field": "text", "size": size, "min_doc_count": min_doc_count,
        "filter_duplicate_text": False,  # echoes are already left out of the foreground
        "background_filter": {"bool": {"filter": background}},
    }}
    return {"sampler": {"shard_size": SAMPLE_PER_SHARD}, "aggs": {"words": words}}


def significant_hashtags(background: list[dict[str, Any]], size: int, examples: int = 0,
                         min_doc_count: int = 2) -> dict[str, Any]:
    tags: dict[str, Any] = {"significant_terms": {
        "field": "entities.hashtags", "size": size, "min_doc_count": min_doc_count,
        "background_filter": {"bool": {"filter": background}},
    }}
    if examples:
        tags["aggs"] = {"examples": _examples(examples)}
    return tags


def reputation_extras_body(brand: str, since: datetime, until: datetime, max_spam: float | None,
                           themes: int = 10, authors: int = 10) -> dict[str, Any]:
    """Complaint themes (complaints' words vs all the brand's mentions in the period) and the most
    followed authors, with their engagement (likes + shares + replies)."""
    period = _filters(brand, since, until, max_spam)
    return {
        "size": 0,
        "query": {"bool": {"filter": period}},
        "aggs": {
            "complaints": {"filter": {"bool": {"filter": [{"term": {"complaint.label": True}}, NOT_ECHO]}},
                           "aggs": {"themes": significant_words(period, themes)}},
            "authors": {
                "terms": {"field": "author.handle", "size": authors, "order": [{"followers": "desc"}, {"_count": "desc"}]},
                "aggs": {"followers": {"max": {"field": "author.followers"}},
                         "likes": {"sum": {"field": "metrics.likes"}},
                         "shares": {"sum": {"field": "metrics.shares"}},
                         "replies": {"sum": {"field": "metrics.replies"}}},
            },
        },
    }


def _term_buckets(agg: dict[str, Any] | None) -> list[dict[str, Any]]:
    return (agg or {}).get("buckets", [])


def _example_list(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    return [hit["_source"] for hit in bucket.get("examples", {}).get("hits", {}).get("hits", [])]


def significant_list(agg: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``[{"term", "score", "count", "background_count", "examples"}]`` from a significant_* agg."""
    return [{"term": b["key"], "score": round(float(b["score"]), 6), "count": b["doc_count"],
             "background_count": b.get("bg_count", 0), "examples": _example_list(b)} for b in _term_buckets(agg)]


def parse_reputation_extras(response: dict[str, Any]) -> dict[str, Any]:
    aggs = response.get("aggregations") or {}
    themes = ((aggs.get("complaints") or {}).get("themes") or {}).get("words")
    authors = []
    for b in _term_buckets(aggs.get("authors")):
        engagement = sum(int(b[k]["value"] or 0) for k in ("likes", "shares", "replies"))
        authors.append({"handle": b["key"], "mentions": b["doc_count"],
                        "followers": int(b["followers"]["value"] or 0), "engagement": engagement})
    return {"complaint_themes": [{k: v for k, v in t.items() if k != "examples"} for t in significant_list(themes)],
            "influential_authors": authors}


def emerging_foreground(brand: str | None, window_start: datetime, until: datetime,
                        max_spam: float | None) -> list[dict[str, Any]]:
    return [*_filters(brand, window_start, until, max_spam), NOT_ECHO]


def emerging_topics_body(brand: str | None, window_start: datetime, background_start: datetime, until: datetime,
                         max_spam: float | None, size: int, examples: int) -> dict[str, Any]:
    """Words and hashtags of the recent window [window_start, until) that stand out against the
    background window [background_start, until)."""
    background = _filters(brand, background_start, until, max_spam)
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": emerging_foreground(brand, window_start, until, max_spam)}},
        "aggs": {"words": significant_words(background, size),
                 "hashtags": significant_hashtags(background, size, examples)},
    }


def parse_topics(response: dict[str, Any]) -> dict[str, Any]:
    aggs = response.get("aggregations") or {}
    words = significant_list((aggs.get("words") or {}).get("words"))
    hashtags = significant_list(aggs.get("hashtags"))
    topics = [{"kind": "word", **w} for w in words] + [{"kind": "hashtag", **h} for h in hashtags]
    topics.sort(key=lambda t: -t["score"])
    return {"total": response.get("hits", {}).get("total", {}).get("value", 0), "topics": topics}


def feedback_foreground(brand: str | None, since: datetime, until: datetime,
                        max_spam: float | None) -> list[dict[str, Any]]:
    return [*_filters(brand, since, until, max_spam), {"term": {"purposes": PRODUCT_FEEDBACK}}, NOT_ECHO]


def product_feedback_body(brand: str | None, since: datetime, until: datetime, max_spam: float | None,
                          size: int, examples: int) -> dict[str, Any]:
    """Product-feedback mentions: their sentiment, their themes (words standing out against all of the
    brand's mentions in the period) and hashtags (with example posts)."""
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": feedback_foreground(brand, since, until, max_spam)}},
        "aggs": {
            "sentiment": {"terms": {"field": "sentiment.label", "size": 3}},
            "themes": significant_words(_filters(brand, since, until, max_spam), size),
            "hashtags": {"terms": {"field": "entities.hashtags", "size": size},
                         "aggs": {"examples": _examples(examples)}},
        },
    }


def parse_product_feedback(response: dict[str, Any]) -> dict[str, Any]:
    aggs = response.get("aggregations") or {}
    sentiment = {b["key"]: b["doc_count"] for b in _term_buckets(aggs.get("sentiment"))}
    return {
        "total": response.get("hits", {}).get("total", {}).get("value", 0),
        "sentiment": {k: sentiment.get(k, 0) for k in ("negative", "neutral", "positive")},
        "themes": significant_list((aggs.get("themes") or {}).get("words")),
        "hashtags": [{"hashtag": b["key"], "count": b["doc_count"], "examples": _example_list(b)}
                     for b in _term_buckets(aggs.get("hashtags"))],
    }


def ir_chatter_body(q: str | None, brand: str | None, since: datetime | None, until: datetime | None,
                    max_spam: float | None, size: int, search_after: list[Any] | None,
                    facets: int = 10) -> dict[str, Any]:
    """The search of ``/v1/mentions/search`` restricted to investor talk: the investor purpose or
    any cashtag; plus author and cashtag facets over every match."""
    body = search_body(MentionFilter(q=q, brand=brand, since=since, until=until, max_spam=max_spam), size,
                       search_after)
    body["query"]["bool"]["filter"].append({"bool": {"should": [{"term": {"purposes": INVESTOR}},
                                                                {"exists": {"field": "entities.cashtags"}}],
                                                     "minimum_should_match": 1}})
    body["aggs"] = {"authors": {"terms": {"field": "author.handle", "size": facets}},
                    "cashtags": {"terms": {"field": "entities.cashtags", "size": facets}}}
    return body


def parse_facets(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    aggs = response.get("aggregations") or {}
    return {"authors": [{"handle": b["key"], "mentions": b["doc_count"]} for b in _term_buckets(aggs.get("authors"))],
            "cashtags": [{"cashtag": b["key"], "mentions": b["doc_count"]} for b in _term_buckets(aggs.get("cashtags"))]}
