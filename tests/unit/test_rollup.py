"""The pure parts of the hourly rollup: hours, ids, documents from composite buckets, bulk operations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pipeline.store.rollup import (
    MAX_HOURS_PER_QUERY, empty_rollup, hour_of, hour_ranges, hours_between, rollup_aggregation_body,
    rollup_bulk_operations, rollup_documents, rollup_id,
)

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)


def test_hours_and_ids_are_utc_hour_starts():
    assert hour_of(datetime(2026, 11, 1, 2, 59, 59, tzinfo=timezone(timedelta(hours=2)))) == T0
    assert hours_between(T0 + timedelta(minutes=30), T0 + 2 * H) == [T0, T0 + H]
    assert rollup_id("acme", T0 + timedelta(minutes=5)) == "acme|2026-11-01T00:00:00+00:00"


def test_hour_ranges_join_contiguous_hours_and_cap_their_length():
    assert hour_ranges([T0 + 3 * H, T0, T0 + H, T0 + timedelta(minutes=10)]) == [(T0, T0 + 2 * H), (T0 + 3 * H, T0 + 4 * H)]
    long = hour_ranges(T0 + i * H for i in range(MAX_HOURS_PER_QUERY + 5))
    assert long == [(T0, T0 + MAX_HOURS_PER_QUERY * H), (T0 + MAX_HOURS_PER_QUERY * H, T0 + (MAX_HOURS_PER_QUERY + 5) * H)]


def test_aggregation_counts_spam_apart_and_pages_with_after_key():
    body = rollup_aggregation_body(T0, T0 + 2 * H, 0.7, after={"hour": 1, "brand": "a"})
    cells = body["aggs"]["cells"]
    assert cells["composite"]["after"] == {"hour": 1, "brand": "a"}
    assert [list(s) for s in cells["composite"]["sources"]] == [["hour"], ["brand"]]
    assert cells["aggs"]["spam"] == {"filter": {"range": {"spam.score": {"gte": 0.7}}}}
    assert cells["aggs"]["counted"]["filter"] == {"bool": {"must_not": {"range": {"spam.score": {"gte": 0.7}}}}}


def test_documents_from_composite_buckets():
    bucket = {"key": {"hour": int((T0 + H).timestamp() * 1000), "brand": "acme"}, "doc_count": 6,
              "spam": {"doc_count": 1},
              "counted": {"doc_count": 5, "voices": {"doc_count": 4}, "complaints": {"doc_count": 2},
                          "sentiment": {"buckets": [{"key": "negative", "doc_count": 3}, {"key": "positive", "doc_count": 2}]},
                          "emotion": {"buckets": [{"key": "anger", "doc_count": 5}]},
                          "purposes": {"buckets": [{"key": "customer_care", "doc_count": 2}]}}}
    computed = T0 + 3 * H
    docs = rollup_documents([bucket], 0.7, computed)
    doc = docs["acme|2026-11-01T01:00:00+00:00"]
    assert (doc["brand"], doc["hour"], doc["volume"], doc["spam"], doc["voices"], doc["complaints"]) == \
        ("acme", "2026-11-01T01:00:00+00:00", 5, 1, 4, 2)
    assert doc["sentiment"] == {"negative": 3, "neutral": 0, "positive": 2}
    assert doc["emotion"]["anger"] == 5 and doc["emotion"]["joy"] == 0
    assert doc["purposes"]["customer_care"] == 2 and doc["purposes"]["investor"] == 0
    assert set(doc) == set(empty_rollup("x", T0, 0.7, computed))
    assert rollup_documents([bucket], 0.7, computed) == docs  # deterministic: a replay writes the same


def test_bulk_operations_are_externally_versioned_overwrites():
    docs = {"b|x": {"n": 2}, "a|x": {"n": 1}}
    ops = rollup_bulk_operations("p-rollup-hourly", docs, 1234)
    assert ops == [{"index": {"_index": "p-rollup-hourly", "_id": "a|x", "version": 1234, "version_type": "external"}},
                   {"n": 1},
                   {"index": {"_index": "p-rollup-hourly", "_id": "b|x", "version": 1234, "version_type": "external"}},
                   {"n": 2}]
