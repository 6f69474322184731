"""Fuzz the validator with hostile input: it answers Mention, Deletion or Rejection, never raises."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.schema import Deletion, Mention, Rejection, parse_mention

NOW = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
HOSTILE = st.sampled_from([
    "<script>alert(1)</script>", '{"query": {"match_all": {}}}', "../../etc/passwd", "\x00\x01\xff",
    "'; DROP TABLE mentions; --", "${jndi:ldap://x}", "\ud800", "op", "delete",
]) | st.builds(lambda: "a" * 70_000)  # over the 64 KiB text limit (built lazily: a short repr)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | HOSTILE,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10) | HOSTILE, children, max_size=5),
    max_leaves=30,
)
FIELDS = st.fixed_dictionaries({}, optional={
    "id": JSON, "source": JSON, "text": JSON | HOSTILE, "created_at": JSON | st.just("2026-11-24T10:00:00Z"),
    "ingested_at": st.just("2026-11-24T10:00:00Z") | JSON, "author": JSON, "metrics": JSON, "raw": JSON,
    "op": st.just("delete") | JSON, "requested_at": JSON,
})


def answered(payload) -> None:
    result = parse_mention(payload, now=NOW)
    assert isinstance(result, (Mention, Deletion, Rejection))
    if isinstance(result, Rejection):
        assert result.reason and len(result.reason) <= 1000


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS)
def test_mention_shaped_objects_with_hostile_fields(record):
    answered(record)
    answered(json.dumps(record, default=str).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(blob):
    answered(blob)


def test_deeply_nested_and_huge_records_are_rejected_not_crashing():
    deep = "[" * 100_000 + "]" * 100_000
    answered(deep.encode())
    answered(json.dumps({"id": "x", "source": "s", "text": "hi", "created_at": "2026-11-24T10:00:00Z",
                         "ingested_at": "2026-11-24T10:00:00Z", "raw": {"a": [[[[[[[[[[1]]]]]]]]]]}}).encode())
    assert isinstance(parse_mention(b'{"text": "' + b"a" * 200_000 + b'"}', now=NOW), Rejection)
