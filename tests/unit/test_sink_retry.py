"""MentionSink's retry and refusal rules, against a scripted stand-in for the ES client."""

import asyncio
from datetime import datetime, timezone

from elastic_transport import ApiResponseMeta, ConnectionError as ESConnectionError, HttpHeaders
from elasticsearch import ApiError

from pipeline.settings import Settings
from pipeline.store.mention_sink import MentionSink

T = datetime(2026, 11, 24, tzinfo=timezone.utc)


def meta(status):
    return ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=None)


class ScriptedES:
    """Answers each bulk call with the next scripted outcome; records which ids each call carried."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls: list[list[str]] = []

    async def bulk(self, operations):
        ids = [op["index"]["_id"] for op in operations[::2]]
        self.calls.append(ids)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return {"items": [{"index": {"_id": i, "status": outcome.get(i, 201),
                                     "error": {"type": "mapper_parsing_exception", "reason": "bad"}}}
                          for i in ids]}


def batch(*ids):
    return [({"id": i, "text": "t", "created_at": T.isoformat()}, T) for i in ids]


def sink(es):
    return MentionSink(es, Settings(index_retry_max_s=0.001))


def test_retries_through_outages_and_429s_and_returns_only_permanent_refusals():
    es = ScriptedES([
        ESConnectionError("down"),
        ApiError("busy", meta(503), {}),
        {"b": 429, "c": 400},
        {},
    ])
    s = sink(es)
    refused = asyncio.run(s.write(batch("a", "b", "c")))
    assert [(r.mention_id, r.reason) for r in refused] == [("c", "index: mapper_parsing_exception: bad")]
    # Only the document that got a retryable status was sent again.
    assert es.calls == [["a", "b", "c"]] * 3 + [["b"]]
    assert s.retries == 3


def test_duplicate_ids_in_one_batch_are_written_once():
    es = ScriptedES([{}])
    assert asyncio.run(sink(es).write(batch("a", "a", "b"))) == []
    assert es.calls == [["a", "b"]]


def test_a_non_retryable_request_error_is_raised_for_the_caller_to_dead_letter():
    es = ScriptedES([ApiError("unauthorised", meta(401), {})])
    try:
        asyncio.run(sink(es).write(batch("a")))
    except ApiError as exc:
        assert exc.meta.status == 401
    else:
        raise AssertionError("expected the 401 to be raised")
