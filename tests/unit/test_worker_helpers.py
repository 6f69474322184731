"""Pure helpers of the worker (no broker: events are plain stand-ins with .value and .message)."""

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from pipeline.worker.app import read_enriched, split_valid

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


def test_read_enriched_accepts_documents_and_explains_unreadable_ones():
    doc, created = read_enriched(raw(1), NOW)
    assert doc["id"] == "x:1" and created == datetime(2026, 11, 24, 11, tzinfo=timezone.utc)
    for bad in [b"[1]", b'{"text": "no id"}', b'{"id": "x", "created_at": "soon"}', b"\xff",
                b'{"id": "x", "created_at": "2026-11-24T11:00:00Z", "score": NaN}']:
        letter = read_enriched(Event(bad, Message(b"k")), NOW)
        assert isinstance(letter, dict) and letter["stage"] == "index"
        assert letter["reason"].startswith("unreadable enriched record")
