"""Searches over the raw mentions that the rollup cannot answer (text, authors), and their shaping. Pure.

Themes and topics: ``significant_terms`` on the keyword field ``phrases`` (the keyphrases the
pipeline extracted: no stop words, URL fragments or brand names; ``pipeline/enrich/phrases.py``)
scores each phrase by how much more often it occurs in the foreground documents (the query's
hits) than in a background set (``background_filter``); the same on ``entities.hashtags``. Reading
doc values of a keyword field is cheap at millions of documents, unlike ``significant_text``,
which re-analysed every hit's text. Each asks for ``OVERFETCH`` times the phrases wanted, so that
``prefer_phrases`` can drop a word a longer phrase covers and still fill the list. Near-copies
(``duplicate_of``: retweets, copy-paste campaigns) are left out of every foreground, so a phrase
counts voices, not echoes.
User text reaches Elasticsearch only as values (``term``/``simple_query_string`` query values).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.analytics.series import not_spam
from api.queries import MentionFilter, search_body, time_range
from pipeline.enrich.phrases import prefer_phrases

OVERFETCH = 3
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


def significant_phrases(background: list[dict[str, Any]], size: int, examples: int = 0,
                        min_doc_count: int = 2) -> dict[str, Any]:
    """``significant_terms`` on ``phrases`` against ``background`` (filter clauses), ``OVERFETCH`` x
    ``size`` of them for ``prefer_phrases``; with ``examples``, that many posts per phrase."""
    phrases: dict[str, Any] = {"significant_terms": {
        "field": "phrases", "size": size * OVERFETCH, "min_doc_count": min_doc_count,
        "background_filter": {"bool": {"filter": background}},
    }}
    if examples:
        phrases["aggs"] = {"examples": _examples(examples)}
    return phrases


def readable(items: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The ``size`` best phrases, a longer phrase replacing a word it covers (``prefer_phrases``)."""
    return prefer_phrases(items, size)


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
    """Complaint themes (complaints' phrases vs all the brand's mentions in the period) and the
    ``authors`` most followed authors: the hits, one per handle (``collapse``), by followers.

    A ``terms`` agg on the handle ordered by max followers (as before) builds a bucket for every
    author of the period (tens of thousands at a million mentions: most of the endpoint's time);
    a sorted, collapsed top-10 reads only the best documents. Their mentions and engagement come
    from ``authors_body``, a second cheap search restricted to those handles."""
    period = _filters(brand, since, until, max_spam)
    return {
        "size": authors,
        "track_total_hits": False,
        "query": {"bool": {"filter": period}},
        "post_filter": {"exists": {"field": "author.handle"}},  # hits only: themes count every mention
        "collapse": {"field": "author.handle"},
        "sort": [{"author.followers": {"order": "desc", "missing": "_last"}}, {"author.handle": {"order": "asc"}}],
        "_source": ["author.handle", "author.followers"],
        "aggs": {
            "complaints": {"filter": {"bool": {"filter": [{"term": {"complaint.label": True}}, NOT_ECHO]}},
                           "aggs": {"themes": significant_phrases(period, themes)}},
        },
    }


def authors_body(brand: str, since: datetime, until: datetime, max_spam: float | None,
                 handles: list[str]) -> dict[str, Any]:
    """Mentions, largest follower count and engagement (likes + shares + replies) of ``handles``."""
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": [*_filters(brand, since, until, max_spam), {"terms": {"author.handle": handles}}]}},
        "aggs": {"authors": {
            "terms": {"field": "author.handle", "size": len(handles)},
            "aggs": {"followers": {"max": {"field": "author.followers"}},
                     "likes": {"sum": {"field": "metrics.likes"}},
                     "shares": {"sum": {"field": "metrics.shares"}},
                     "replies": {"sum": {"field": "metrics.replies"}}},
        }},
    }


def parse_authors(response: dict[str, Any], handles: list[str]) -> list[dict[str, Any]]:
    """``authors_body``'s answer in the order of ``handles`` (most followed first; ties: most mentions)."""
    found = {}
    for b in _term_buckets((response.get("aggregations") or {}).get("authors")):
        engagement = sum(int(b[k]["value"] or 0) for k in ("likes", "shares", "replies"))
        found[b["key"]] = {"handle": b["key"], "mentions": b["doc_count"],
                           "followers": int(b["followers"]["value"] or 0), "engagement": engagement}
    authors = [found[h] for h in handles if h in found]
    return sorted(authors, key=lambda a: (-a["followers"], -a["mentions"], a["handle"]))


def _term_buckets(agg: dict[str, Any] | None) -> list[dict[str, Any]]:
    return (agg or {}).get("buckets", [])


def _example_list(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    return [hit["_source"] for hit in bucket.get("examples", {}).get("hits", {}).get("hits", [])]


def significant_list(agg: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``[{"term", "score", "count", "background_count", "examples"}]`` from a significant_* agg."""
    return [{"term": b["key"], "score": round(float(b["score"]), 6), "count": b["doc_count"],
             "background_count": b.get("bg_count", 0), "examples": _example_list(b)} for b in _term_buckets(agg)]


def parse_reputation_extras(response: dict[str, Any], themes_size: int = 10) -> dict[str, Any]:
    aggs = response.get("aggregations") or {}
    themes = readable(significant_list((aggs.get("complaints") or {}).get("themes")), themes_size)
    handles = [h["_source"]["author"]["handle"] for h in response.get("hits", {}).get("hits", [])
               if (h.get("_source", {}).get("author") or {}).get("handle")]
    return {"complaint_themes": [{k: v for k, v in t.items() if k != "examples"} for t in themes],
            "author_handles": handles}


def emerging_foreground(brand: str | None, window_start: datetime, until: datetime,
                        max_spam: float | None) -> list[dict[str, Any]]:
    return [*_filters(brand, window_start, until, max_spam), NOT_ECHO]


def emerging_topics_body(brand: str | None, window_start: datetime, background_start: datetime, until: datetime,
                         max_spam: float | None, size: int, examples: int) -> dict[str, Any]:
    """Phrases and hashtags of the recent window [window_start, until) that stand out against the
    background window [background_start, until)."""
    background = _filters(brand, background_start, until, max_spam)
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": emerging_foreground(brand, window_start, until, max_spam)}},
        "aggs": {"phrases": significant_phrases(background, size, examples),
                 "hashtags": significant_hashtags(background, size, examples)},
    }


def parse_topics(response: dict[str, Any], size: int = 10) -> dict[str, Any]:
    aggs = response.get("aggregations") or {}
    phrases = readable(significant_list(aggs.get("phrases")), size)
    hashtags = significant_list(aggs.get("hashtags"))
    topics = [{"kind": "phrase", **p} for p in phrases] + [{"kind": "hashtag", **h} for h in hashtags]
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
            "themes": significant_phrases(_filters(brand, since, until, max_spam), size, examples),
            "hashtags": {"terms": {"field": "entities.hashtags", "size": size},
                         "aggs": {"examples": _examples(examples)}},
        },
    }


def parse_product_feedback(response: dict[str, Any], size: int = 10) -> dict[str, Any]:
    aggs = response.get("aggregations") or {}
    sentiment = {b["key"]: b["doc_count"] for b in _term_buckets(aggs.get("sentiment"))}
    return {
        "total": response.get("hits", {}).get("total", {}).get("value", 0),
        "sentiment": {k: sentiment.get(k, 0) for k in ("negative", "neutral", "positive")},
        "themes": readable(significant_list(aggs.get("themes")), size),
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
