import json
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.schema import SCHEMA_VERSION, Mention, Rejection, parse_mention

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def record(**overrides):
    base = {
        "id": "x:1",
        "source": "x",
        "text": "@united lost my bag again",
        "created_at": "2026-11-24T11:59:00Z",
        "ingested_at": "2026-11-24T11:59:01Z",
    }
    base.update(overrides)
    return base


def test_valid_record_becomes_a_mention_with_schema_version():
    mention = parse_mention(json.dumps(record()).encode(), now=NOW)
    assert isinstance(mention, Mention)
    assert mention.schema_version == SCHEMA_VERSION
    assert mention.created_at == datetime(2026, 11, 24, 11, 59, tzinfo=timezone.utc)
    assert mention.author.followers is None and mention.metrics.likes == 0


def test_unknown_fields_are_kept_under_raw():
    mention = parse_mention(record(retweeted_status={"id": 7}, raw={"platform": "x"}), now=NOW)
    assert isinstance(mention, Mention)
    assert mention.raw == {"platform": "x", "retweeted_status": {"id": 7}}


def test_naive_and_offset_timestamps_are_normalised_to_utc():
    mention = parse_mention(record(created_at="2026-11-24T13:30:00+02:00", ingested_at="2026-11-24T11:40:00"), now=NOW)
    assert mention.created_at == datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc)
    assert mention.ingested_at.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b'{"id": "x:1", "text": ', "malformed JSON"),
        (b"\xff\xfe not utf8", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps(record(text="   ")).encode(), "text is empty"),
        (json.dumps({k: v for k, v in record().items() if k != "text"}).encode(), "text: Field required"),
        (json.dumps(record(created_at="yesterday-ish")).encode(), "created_at"),
        (json.dumps(record(created_at="2026-11-24T12:05:01Z")).encode(), "in the future"),
        (json.dumps(record(raw="not a dict")).encode(), "raw"),
        (json.dumps(record(metrics={"likes": -3})).encode(), "metrics.likes"),
        (json.dumps(record(id="")).encode(), "id"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(payload, reason):
    result = parse_mention(payload, now=NOW)
    assert isinstance(result, Rejection)
    assert reason in result.reason


def test_text_over_64_kib_is_rejected_but_64_kib_is_not():
    assert isinstance(parse_mention(record(text="a" * (64 * 1024 + 1)), now=NOW), Rejection)
    # Multi-byte characters count in bytes, not characters.
    assert isinstance(parse_mention(record(text="é" * (32 * 1024 + 1)), now=NOW), Rejection)
    assert isinstance(parse_mention(record(text="a" * (64 * 1024)), now=NOW), Mention)


def test_slightly_future_timestamp_within_skew_is_accepted():
    ok = parse_mention(record(created_at=(NOW + timedelta(minutes=4)).isoformat()), now=NOW)
    assert isinstance(ok, Mention)


def test_rejection_carries_the_mention_id_when_known():
    result = parse_mention(record(text=""), now=NOW)
    assert isinstance(result, Rejection) and result.mention_id == "x:1"


def test_deeply_nested_json_is_rejected_not_crashing():
    payload = b'{"id":"x:1","raw":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert isinstance(parse_mention(payload, now=NOW), (Rejection, Mention))
