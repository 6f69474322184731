"""Pure helpers of the worker (no broker: events are plain stand-ins with .value and .message)."""

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from pipeline.worker.app import by_brand_record, split_valid
from pipeline.worker.streams import BrandMention
from pipeline.worker.wire import json_bytes, json_loads

NOW = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


@dataclass
class Message:
    key: bytes | None
    topic: str = "mentions.raw"
    partition: int = 2
    offset: int = 41


@dataclass
class Event:
    value: bytes
    message: Message


def raw(i, **fields):
    record = {"id": f"x:{i}", "source": "x", "text": "hello @united", "created_at": "2026-11-24T11:00:00Z",
              "ingested_at": "2026-11-24T11:00:01Z", **fields}
    return Event(json.dumps(record).encode(), Message(f"x:{i}".encode()))


def test_split_valid_dead_letters_with_position_and_drops_in_batch_duplicates():
    events = [raw(1), raw(2, text=""), raw(1), Event(b"{nope", Message(b"k"))]
    mentions, letters = split_valid(events, NOW)
    assert [m.id for m in mentions] == ["x:1"]
    assert [(k, l["mention_id"], l["stage"], l["partition"], l["offset"]) for k, l in letters] == [
        (b"x:2", "x:2", "validate", 2, 41), (b"k", None, "validate", 2, 41)]
    assert "text is empty" in letters[0][1]["reason"] and "malformed JSON" in letters[1][1]["reason"]


def test_split_valid_tells_where_each_kept_mention_came_from():
    events = [raw(1), raw(2, text=""), raw(3)]
    sources = {}
    split_valid(events, NOW, sources)
    assert sources == {"x:1": events[0].message, "x:3": events[2].message}


def test_by_brand_records_read_back_as_the_brand_mentions_the_watcher_expects():
    record = {"id": "x:1", "ts": 1.5, "negative": True, "complaint": False, "risk": False, "spam": False,
              "text": "héllo", "author": "a", "url": None, "engagement": 3, "sentiment": "negative", "brand": "united"}
    key, value = by_brand_record(record)
    assert key == b"united"
    assert BrandMention.loads(value, serializer="json") == BrandMention(**record)
    assert json.loads(value) == json.loads(BrandMention(**record).dumps())  # the bytes Faust would write


def test_the_wire_format_is_compact_utf8_json_and_refuses_nan():
    record = {"id": "x:1", "text": "café ✈", "n": [1, 2.5, None, True]}
    assert json_bytes(record) == json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert json_loads(json_bytes(record)) == record
    with pytest.raises(ValueError):
        json_loads(b'{"score": NaN}')
