"""The RSS connector on real-world feeds (rss-parser's test inputs, MIT; customfields.rss cut
to its first three items).

Entries go through the connector's own ``normalise`` (and ``RssSource``'s poll step), then
``encode_live`` and ``parse_mention``; fields are compared with the feed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import feedparser
import httpx

from connectors.rss import RssSource, normalise, parse_date
from pipeline.schema import Mention
from tests.connectors.recordings import DATA, NOW, roundtrip, rss_pairs, tally

RSS = DATA / "rss"


def read(name: str) -> list[tuple[dict, Mention]]:
    return [(entry, roundtrip(out)) for entry, out in rss_pairs(RSS / name)]


def test_portuguese_dates_with_numeric_offsets_are_read():
    entries = read("uolNoticias.rss")
    feed = (RSS / "uolNoticias.rss").read_text(encoding="iso-8859-1")  # no XML declaration: Latin-1 bytes
    raw_dates = re.findall(r"<pubDate>([^<]+)</pubDate>", feed)
    assert len(entries) == 15 and raw_dates[0] == "Seg, 24 Set 2018 19:42:40 -0300"
    for (entry, mention), claimed in zip(entries, raw_dates[-15:], strict=True):
        assert entry["published"] == claimed
        day, month, year, clock, offset = claimed.split(", ")[1].split()
        assert (month, offset) == ("Set", "-0300")  # setembro, Brasília time
        local = datetime.strptime(f"{day} 09 {year} {clock}", "%d %m %Y %H:%M:%S")
        assert mention.created_at == (local + timedelta(hours=3)).replace(tzinfo=timezone.utc)
        assert not mention.created_at_estimated
    # The character set is read right too (a Latin-1 feed without a declaration).
    assert "Últimas Notícias" in feed and any("Líder" in m.text for _, m in entries)
    assert parse_date("Seg, 24 Set 2018 19:42:40 -0300") == datetime(2018, 9, 24, 22, 42, 40, tzinfo=timezone.utc)


def test_undated_entries_take_the_feeds_own_date_marked_as_an_estimate():
    entries = read("heraldsun.rss")
    assert len(entries) == 2
    for entry, mention in entries:
        assert "published" not in entry and "updated" not in entry
        # <lastBuildDate>03 Apr 02 1500 GMT</lastBuildDate>: a two-digit year, a time without colons.
        assert mention.created_at == datetime(2002, 4, 3, 15, 0, tzinfo=timezone.utc)
        assert mention.created_at_estimated is True and mention.raw["created_at_from"] == "feed"


def test_with_no_date_anywhere_the_entry_is_first_seen_now_and_marked():
    parsed = feedparser.parse((RSS / "heraldsun.rss").read_bytes())
    record = normalise(parsed.entries[0], {"title": "no dates"}, "https://feeds.example/h", NOW)
    mention = roundtrip_record(record)
    assert mention.created_at == NOW and mention.created_at_estimated is True
    assert mention.raw["created_at_from"] == "first_seen"


def roundtrip_record(record: dict) -> Mention:
    from connectors.base import Outgoing

    return roundtrip(Outgoing(key=record["id"], record=record))


def test_dated_entries_are_not_marked_estimated():
    for entry, mention in read("customfields.rss"):
        assert entry["published"] and mention.created_at_estimated is False
        assert "created_at_estimated" not in mention.raw


def test_a_feed_declaring_kannada_for_english_entries_is_overruled():
    entries = read("customfields.rss")
    assert "<language>kn</language>" in (RSS / "customfields.rss").read_text(encoding="utf-8")
    assert len(entries) == 3
    for _entry, mention in entries:
        assert mention.lang == "en" and mention.raw["declared_lang"] == "kn"


def test_a_first_polls_backlog_is_marked_and_later_polls_are_not():
    source = RssSource(["https://feeds.example/uol"], clock=lambda: NOW)
    parsed = feedparser.parse((RSS / "uolNoticias.rss").read_bytes())
    first = source._fresh("https://feeds.example/uol", parsed, source_state(), httpx.Headers())
    assert len(first.items) == 15 and all(o.record["raw"]["backlog"] is True for o in first.items)
    # The next poll: one new entry, published as news.
    parsed.entries.insert(0, {**parsed.entries[0], "id": "new-entry", "link": "https://example.org/new"})
    second = source._fresh("https://feeds.example/uol", parsed, first.state, httpx.Headers())
    assert len(second.items) == 1 and "backlog" not in second.items[0].record["raw"]


def source_state():
    from connectors.rss import FeedState

    return FeedState()


def test_every_recorded_entry_validates():
    result = tally("rss", lambda *_: {})
    assert result.produced == 20 == result.valid, result.failures[:5]
