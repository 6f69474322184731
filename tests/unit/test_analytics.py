"""The pure analytics builders: read plans, count parsing from both sources, shares, deltas, bodies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from api.analytics.bodies import (
    authors_body, emerging_topics_body, parse_authors, parse_topics, ir_chatter_body, parse_facets,
    parse_reputation_extras, reputation_extras_body, significant_list,
)
from api.analytics.mixes import deltas, mix, net_sentiment, share_of_voice, shares
from api.analytics.series import (
    Counts, default_range, merge_series, parse_counts, parse_volume_check, plan_reads, raw_counts_body,
    rollup_counts_body, series_totals,
)
from api.queries import BadQuery
from api.routes.competitors import parse_brands

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)


# -- which source answers --------------------------------------------------------------------------

def test_plan_reads_uses_the_rollup_only_where_it_is_exact():
    now = T0 + 30 * H + timedelta(minutes=20)
    closed = plan_reads(T0, T0 + 24 * H, "1h", False, "auto", now)
    assert (closed.rollup, closed.raw, closed.check, closed.label) == ((T0, T0 + 24 * H), None, True, "rollup")
    live = plan_reads(T0 + 24 * H, T0 + 31 * H, "1h", False, "auto", now)
    assert live.rollup == (T0 + 24 * H, T0 + 30 * H) and live.raw == (T0 + 30 * H, T0 + 31 * H)
    assert live.label == "rollup+raw"
    for args in [(T0, T0 + 24 * H, "30m", False), (T0, T0 + 24 * H, "1h", True),
                 (T0 + timedelta(minutes=5), T0 + 24 * H, "1h", False)]:
        assert plan_reads(*args, "auto", now).rollup is None
        with pytest.raises(BadQuery):
            plan_reads(*args, "rollup", now)
    assert plan_reads(T0, T0 + 24 * H, "1h", False, "raw", now).rollup is None
    assert plan_reads(T0 + 30 * H, T0 + 31 * H, "1h", False, "auto", now).rollup is None  # the current hour
    assert plan_reads(T0, T0 + 48 * H, None, False, "auto", now).rollup == (T0, T0 + 30 * H)


def test_default_range_rounds_up_to_the_hour_for_hourly_intervals():
    now = T0 + timedelta(hours=5, minutes=10)
    assert default_range(None, None, "1h", now) == (T0 + 6 * H - 24 * H, T0 + 6 * H)
    assert default_range(None, None, "5m", now) == (now - 24 * H, now)
    assert default_range(None, None, "1h", T0) == (T0 - 24 * H, T0)
    with pytest.raises(BadQuery):
        default_range(T0, T0, "1h", now)


# -- the same counts from both sources -------------------------------------------------------------

def _raw_bucket(brand, volume, voices, complaints, sentiment, emotion, purposes):
    terms = lambda d: {"buckets": [{"key": k, "doc_count": v} for k, v in d.items()]}  # noqa: E731
    return {"key": brand, "doc_count": volume, "voices": {"doc_count": voices}, "complaints": {"doc_count": complaints},
            "sentiment": terms(sentiment), "emotion": terms(emotion), "purposes": terms(purposes)}


def _rollup_bucket(brand, volume, voices, complaints, sentiment, emotion, purposes):
    sums = {"volume": volume, "voices": voices, "complaints": complaints,
            **{f"sentiment_{k}": v for k, v in sentiment.items()}, **{f"emotion_{k}": v for k, v in emotion.items()},
            **{f"purposes_{k}": v for k, v in purposes.items()}}
    bucket = {name: {"value": 0.0} for name in rollup_counts_body(["x"], T0, T0 + H, None)["aggs"]["brand"]["aggs"]}
    bucket.update({name: {"value": float(value)} for name, value in sums.items()})
    return {"key": brand, "doc_count": 3, **bucket}


CELLS = [  # (hour, brand, volume, voices, complaints, sentiment, emotion, purposes)
    (0, "acme", 5, 4, 2, {"negative": 2, "positive": 3}, {"anger": 2, "joy": 3}, {"customer_care": 2}),
    (0, "globex", 1, 1, 0, {"neutral": 1}, {"optimism": 1}, {}),
    (1, "acme", 2, 2, 1, {"negative": 1, "neutral": 1}, {"sadness": 2}, {"praise": 1, "investor": 1}),
]


def _response(make):
    hours = []
    for hour in (0, 1):
        inner = [make(b, *rest) for h, b, *rest in CELLS if h == hour]
        hours.append({"key": int((T0 + hour * H).timestamp() * 1000), "brand": {"buckets": inner}})
    return {"aggregations": {"by_time": {"buckets": hours}}}


def test_raw_and_rollup_answers_parse_to_the_same_series():
    brands = ["acme", "globex", "initech"]
    raw = parse_counts(_response(_raw_bucket), "raw", brands, T0, T0 + 2 * H, "1h")
    rolled = parse_counts(_response(_rollup_bucket), "rollup", brands, T0, T0 + 2 * H, "1h")
    assert raw == rolled
    assert raw[T0]["initech"] == Counts()  # every (bucket, brand) is there, zero when absent
    assert raw[T0 + H]["acme"].purposes["investor"] == 1
    totals = series_totals(raw)
    assert totals["acme"].volume == 7 and totals["acme"].sentiment == {"negative": 3, "neutral": 1, "positive": 3}
    empty = parse_counts({}, "rollup", brands, T0, T0 + 2 * H, "1h")
    assert list(empty) == [T0, T0 + H] and series_totals(empty)["acme"].volume == 0
    assert series_totals(merge_series(raw, rolled))["acme"].volume == 14


def test_count_bodies_filter_the_listed_brands_and_leave_spam_out():
    raw = raw_counts_body(["b", "a"], T0, T0 + 2 * H, "1h", 0.7)
    filters = raw["query"]["bool"]["filter"]
    assert {"terms": {"brands": ["a", "b"]}} in filters
    assert {"bool": {"must_not": {"range": {"spam.score": {"gte": 0.7}}}}} in filters
    assert raw["aggs"]["by_time"]["date_histogram"]["field"] == "created_at"
    assert "spam.score" not in json.dumps(raw_counts_body(["a"], T0, T0 + H, None, None))
    rolled = rollup_counts_body(["a"], T0, T0 + 2 * H, None)
    assert rolled["query"]["bool"]["filter"][1] == {"range": {"hour": {"gte": T0.isoformat(), "lt": (T0 + 2 * H).isoformat()}}}
    check = {"aggregations": {"brand": {"buckets": [{"key": "a", "doc_count": 3}]}}}
    assert parse_volume_check(check, ["a", "b"]) == {"a": 3, "b": 0}


# -- shares and deltas -----------------------------------------------------------------------------

def test_shares_net_sentiment_and_share_of_voice():
    assert shares({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75} and shares({"a": 0}) == {"a": 0.0}
    assert net_sentiment({"negative": 1, "neutral": 1, "positive": 2}) == 0.25
    series = parse_counts(_response(_raw_bucket), "raw", ["acme", "globex"], T0, T0 + 2 * H, "1h")
    voice = share_of_voice(series, ["acme", "globex"])
    assert voice["totals"]["acme"] == {"volume": 7, "share": 7 / 8, "positive_share": 1.0, "negative_share": 1.0}
    assert voice["buckets"][1] == {"start": T0 + H, "volume": {"acme": 2, "globex": 0}, "share": {"acme": 1.0, "globex": 0.0},
                                   "positive_share": {"acme": 0.0, "globex": 0.0},
                                   "negative_share": {"acme": 1.0, "globex": 0.0}}


def test_mix_and_deltas():
    now = mix(Counts(volume=10, complaints=5, sentiment={"negative": 6, "neutral": 2, "positive": 2}))
    before = mix(Counts(volume=5, complaints=1, sentiment={"negative": 1, "neutral": 2, "positive": 2}))
    assert now["net_sentiment"] == -0.4 and now["complaint_share"] == 0.5
    d = deltas(now, before)
    assert d["volume"] == 5 and d["volume_change"] == 1.0 and d["complaints"] == 4
    assert d["net_sentiment"] == pytest.approx(-0.4 - 0.2)
    assert deltas(before, mix(Counts()))["volume_change"] is None
    counts = Counts(volume=4)
    counts.purposes.update(praise=1, investor=3)
    assert mix(counts, top_purposes=1)["purposes"] == [{"purpose": "investor", "count": 3, "share": 0.75}]
    assert mix(Counts())["purposes"] == []


# -- the other searches ----------------------------------------------------------------------------

def test_ir_chatter_is_the_search_restricted_to_investor_or_cashtag_posts():
    hostile = '"}}, {"match_all": {}}'
    body = ir_chatter_body(hostile, "acme", T0, T0 + H, 0.7, 20, None)
    restrict = {"bool": {"should": [{"term": {"purposes": "investor"}}, {"exists": {"field": "entities.cashtags"}}],
                         "minimum_should_match": 1}}
    assert restrict in body["query"]["bool"]["filter"]
    assert body["query"]["bool"]["must"][0]["simple_query_string"]["query"] == hostile  # a value, never DSL
    assert body["highlight"]["encoder"] == "html" and body["aggs"]["authors"]["terms"]["field"] == "author.handle"
    facets = parse_facets({"aggregations": {"authors": {"buckets": [{"key": "jo", "doc_count": 2}]},
                                            "cashtags": {"buckets": []}}})
    assert facets == {"authors": [{"handle": "jo", "mentions": 2}], "cashtags": []}


def test_emerging_topics_compare_the_window_with_the_background():
    body = emerging_topics_body("acme", T0 + 18 * H, T0 - 6 * 24 * H, T0 + 24 * H, 0.7, 10, 3)
    phrases = body["aggs"]["phrases"]["significant_terms"]
    assert phrases["field"] == "phrases" and phrases["size"] == 30  # over-fetched for prefer_phrases
    assert "significant_text" not in json.dumps(body)  # re-analysing text is what made themes slow
    assert {"range": {"created_at": {"gte": (T0 - 6 * 24 * H).isoformat(), "lt": (T0 + 24 * H).isoformat()}}} in \
        phrases["background_filter"]["bool"]["filter"]
    assert {"range": {"created_at": {"gte": (T0 + 18 * H).isoformat(), "lt": (T0 + 24 * H).isoformat()}}} in \
        body["query"]["bool"]["filter"]
    assert body["aggs"]["phrases"]["aggs"]["examples"]["top_hits"]["size"] == 3
    assert body["aggs"]["hashtags"]["significant_terms"]["field"] == "entities.hashtags"
    found = significant_list({"buckets": [{"key": "zorblax", "score": 1.5, "doc_count": 5, "bg_count": 5}]})
    assert found == [{"term": "zorblax", "score": 1.5, "count": 5, "background_count": 5, "examples": []}]


def test_topics_prefer_the_phrase_that_covers_a_word():
    bucket = lambda key, score, n: {"key": key, "score": score, "doc_count": n, "bg_count": n}  # noqa: E731
    response = {"hits": {"total": {"value": 9}}, "aggregations": {
        "phrases": {"buckets": [bucket("luggage", 3.0, 8), bucket("lost luggage", 2.5, 7), bucket("gate", 2.0, 5)]},
        "hashtags": {"buckets": [bucket("fail", 1.0, 2)]}}}
    found = parse_topics(response, size=1)
    assert [(t["kind"], t["term"]) for t in found["topics"]] == [("phrase", "lost luggage"), ("hashtag", "fail")]


def test_reputation_extras_take_the_most_followed_authors_then_their_engagement():
    body = reputation_extras_body("acme", T0, T0 + H, 0.7)
    assert body["collapse"] == {"field": "author.handle"} and body["size"] == 10
    assert body["sort"][0] == {"author.followers": {"order": "desc", "missing": "_last"}}
    assert "authors" not in body["aggs"]  # a bucket per author of the period was the slow part
    response = {"hits": {"hits": [{"_source": {"author": {"handle": "big", "followers": 9e5}}},
                                  {"_source": {"author": {"handle": "small", "followers": 10}}}]},
                "aggregations": {"complaints": {"doc_count": 0, "themes": {"buckets": []}}}}
    extras = parse_reputation_extras(response)
    assert extras == {"complaint_themes": [], "author_handles": ["big", "small"]}
    assert {"terms": {"author.handle": ["big", "small"]}} in \
        authors_body("acme", T0, T0 + H, 0.7, ["big", "small"])["query"]["bool"]["filter"]
    bucket = lambda key, n, followers, likes: {  # noqa: E731
        "key": key, "doc_count": n, "followers": {"value": followers}, "likes": {"value": likes},
        "shares": {"value": 2.0}, "replies": {"value": 1.0}}
    answer = {"aggregations": {"authors": {"buckets": [bucket("small", 5, 10.0, 0.0), bucket("big", 2, 9e5, 10.0)]}}}
    assert parse_authors(answer, ["big", "small"]) == [
        {"handle": "big", "mentions": 2, "followers": 900000, "engagement": 13},
        {"handle": "small", "mentions": 5, "followers": 10, "engagement": 3}]
    assert parse_reputation_extras({}) == {"complaint_themes": [], "author_handles": []}


def test_parse_brands():
    assert parse_brands("acme, globex,acme") == ["acme", "globex"]
    for bad in ("", "ACME", "a,b,c,d,e,f,g,h,i,j,k", 'x"}}'):
        with pytest.raises(BadQuery):
            parse_brands(bad)
