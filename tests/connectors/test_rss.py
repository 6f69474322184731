"""The RSS/Atom connector against a feed host on loopback: real HTTP, real feed documents.

The host serves fixture documents (``payloads/rss``) with ``ETag`` and ``Last-Modified`` and
answers conditional GETs with 304, as web servers and feed hosts do (RFC 9110 13.1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import Batch, Outgoing
from connectors.checkpoint import CheckpointStore
from connectors.rss import RssSource, add_arguments, build, normalise, remember, strip_html
from connectors.runner import encode_live, run_live
from pipeline.schema import Mention, parse_mention
from pipeline.settings import Settings
from tests.loopback import loopback

PAYLOADS = Path(__file__).parent / "payloads" / "rss"
NOW = datetime(2024, 5, 20, 12, 0, tzinfo=timezone.utc)  # "now" of the tests: after every fixture date
RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))  # a hung poll fails the test, not the run


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Sleeps(list):
    """An injected ``sleep``: records each wait (seconds) instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(0)


class FeedHost:
    """Serves one document per path, with validators; 304 when the client's validators match.

    ``failures[path]``: statuses to answer (in order) before serving the document, e.g. ``[429]``.
    ``conditional=False``: a server that ignores ``If-None-Match``/``If-Modified-Since``.
    """

    def __init__(self) -> None:
        self.docs: dict[str, tuple[bytes, str, str, str]] = {}
        self.failures: dict[str, list[int]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.conditional = True

    def serve(self, path: str, fixture: str, etag: str, modified: str, content_type: str = RSS) -> None:
        self.docs[path] = ((PAYLOADS / fixture).read_bytes(), etag, modified, content_type)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        pending = self.failures.get(request.path)
        if pending:
            status = pending.pop(0)
            return web.Response(status=status, headers={"Retry-After": "2"} if status == 429 else {})
        if request.path not in self.docs:
            return web.Response(status=404, text="no such feed")
        body, etag, modified, content_type = self.docs[request.path]
        validators = {"ETag": etag, "Last-Modified": modified}
        if self.conditional and (request.headers.get("If-None-Match") == etag
                                 or request.headers.get("If-Modified-Since") == modified):
            return web.Response(status=304, headers=validators)
        return web.Response(body=body, headers={**validators, "Content-Type": content_type})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app


async def collect(source: RssSource, checkpoint: dict[str, Any] | None = None) -> list[Batch]:
    """Every batch of a source that stops by itself (``max_polls``)."""
    async with contextlib.aclosing(source.batches(checkpoint)) as batches:
        return [batch async for batch in batches]


def items_of(batches: list[Batch]) -> list[Outgoing]:
    return [item for batch in batches for item in batch.items]


def assert_valid(items: list[Outgoing]) -> None:
    """Each record, as the runner would publish it, passes the pipeline's validator."""
    for out in items:
        parsed = parse_mention(encode_live(out, NOW), now=NOW)
        assert isinstance(parsed, Mention), parsed
        assert parsed.id == out.key


class Published:
    """A stand-in for ``KafkaPublisher``: every publish is acknowledged at once."""

    def __init__(self) -> None:
        self.items: list[Outgoing] = []

    async def publish(self, items: list[Outgoing], counters: Any = None) -> None:
        self.items.extend(items)


def source_for(urls: list[str], **kwargs: Any) -> RssSource:
    kwargs.setdefault("sleep", Sleeps())
    return RssSource(urls, clock=lambda: NOW, interval_s=30.0, **kwargs)


def test_rss2_entries_are_normalised_field_by_field():
    host = FeedHost()
    host.serve("/feed.xml", "newsroom.xml", '"v1"', "Thu, 16 May 2024 08:00:00 GMT")

    async def go():
        async with loopback(host.app()) as base:
            return base, await collect(source_for([f"{base}/feed.xml"], max_polls=1))

    base, batches = run(go())
    feed_url = f"{base}/feed.xml"
    assert len(batches) == 1
    recall, ceo, cafe = [out.record for out in batches[0].items]  # oldest first, undated last

    # A permalink guid is global: the id hashes it alone, so other feeds carrying it agree.
    assert recall == {
        "id": f"rss:{sha('https://news.example.com/2024/05/widget-recall')}",
        "source": "rss",
        "url": "https://news.example.com/2024/05/widget-recall",
        "author": {"handle": "Jo Doe", "display_name": "Jo Doe", "followers": None, "verified": False},
        "text": "Acme recalls 10,000 widgets\n\nAcme Corp. will recall 10,000 widgets & refund buyers.\n\n"
                "Shares fell 3% in early trading.",
        "lang": "en",
        "created_at": "2024-05-14T07:30:00+00:00",  # "Tue, 14 May 2024 09:30:00 +0200" in UTC
        "metrics": {"likes": 0, "shares": 0, "replies": 0},
        "in_reply_to": None,
        "raw": {"feed_url": feed_url, "feed_title": "Acme Newsroom",
                "entry_id": "https://news.example.com/2024/05/widget-recall", "tags": ["recall", "widgets"],
                "backlog": True},  # the feed's first poll: what it held already
    }
    # guid "4711" is only unique within its feed: qualified by the feed URL before hashing.
    assert ceo["id"] == f"rss:{sha(feed_url + '#4711')}"
    assert ceo["author"]["handle"] == "Sam Lee"  # dc:creator
    # Tags stripped, entities unescaped, <script> dropped, <br/> kept as a line break.
    assert ceo["text"] == "Acme\u2019s CEO answers questions\n\nQ&A with the CEO:\npricing, support and more."
    assert ceo["created_at"] == "2024-05-15T12:00:00+00:00"
    assert ceo["raw"]["entry_id"] == "4711" and ceo["raw"]["tags"] == ["leadership"]
    # No guid: the link is the key; no author: the feed's title; no date: the feed's own date
    # (lastBuildDate), marked as an estimate so spike counting and trends leave it out.
    assert cafe["id"] == f"rss:{sha('https://news.example.com/2024/05/repair-cafe')}"
    assert cafe["author"]["handle"] == "Acme Newsroom"
    assert cafe["text"] == "Acme opens a repair caf\u00e9 in Berlin\n\nBring your broken widgets. Coffee is on us."
    assert cafe["created_at"] == "2024-05-16T08:00:00+00:00" and cafe["created_at_estimated"] is True
    assert cafe["raw"]["created_at_from"] == "feed" and "created_at_estimated" not in ceo
    assert_valid(batches[0].items)
    assert batches[0].checkpoint == {"feeds": {feed_url: {
        "etag": '"v1"', "modified": "Thu, 16 May 2024 08:00:00 GMT",
        "seen": [recall["id"][4:], ceo["id"][4:], cafe["id"][4:]]}}}  # document order reversed: oldest first
    _, headers = host.requests[0]
    assert "If-None-Match" not in headers and headers["User-Agent"].startswith("earshot-rss/")


def test_atom_entries_relative_links_and_dates():
    host = FeedHost()
    host.serve("/blog/feed.atom", "blog.atom", 'W/"a1"', "Thu, 16 May 2024 10:00:00 GMT", ATOM)

    async def go():
        async with loopback(host.app()) as base:
            return base, await collect(source_for([f"{base}/blog/feed.atom"], max_polls=1))

    base, batches = run(go())
    mailbag, review = [out.record for out in batches[0].items]
    assert review["id"] == f"rss:{sha('tag:widgetweekly.example,2024:posts/42')}"
    assert review["url"] == f"{base}/posts/acme-w2-review"  # relative href resolved against the feed's URL
    assert review["author"] == {"handle": "Ana Ruiz", "display_name": "Ana Ruiz", "followers": None,
                                "verified": False}
    assert review["text"] == "Review: the Acme W-2 finally fixes the hinge\n\nFour stars & a caveat: battery life."
    assert review["created_at"] == "2024-05-16T03:30:00+00:00"  # published 09:00+05:30, not updated
    assert review["lang"] == "en"  # xml:lang="en-GB"
    assert review["raw"]["tags"] == ["reviews", "acme"] and review["raw"]["feed_title"] == "Widget Weekly"
    # Only <updated>; only <content type="xhtml">; the author inherited from the feed.
    assert mailbag["created_at"] == "2024-05-10T18:20:00+00:00"
    assert mailbag["text"] == ("Readers ask: is the Acme W-1 still worth it?\n\n"
                               "Short answer: yes, if you find one under 50 \u20ac.")
    assert mailbag["author"]["handle"] == "Widget Weekly"
    assert_valid(batches[0].items)


def test_conditional_get_sends_validators_and_304_yields_nothing():
    host = FeedHost()
    host.serve("/feed.xml", "newsroom.xml", '"v1"', "Thu, 16 May 2024 08:00:00 GMT")
    sleeps = Sleeps()

    async def go():
        async with loopback(host.app()) as base:
            first = await collect(source_for([f"{base}/feed.xml"], max_polls=2, sleep=sleeps))
            # A restart sends the saved validators too.
            again = await collect(source_for([f"{base}/feed.xml"], max_polls=1), first[0].checkpoint)
            return first, again

    first, again = run(go())
    assert [len(b.items) for b in first] == [3, 0]
    assert first[1].checkpoint is None  # 304: nothing new, nothing to save
    assert sleeps == [30.0]  # one poll interval between the two polls
    for _, headers in host.requests[1:]:
        assert headers["If-None-Match"] == '"v1"'
        assert headers["If-Modified-Since"] == "Thu, 16 May 2024 08:00:00 GMT"
    assert again == [Batch(items=[], checkpoint=None)]
    assert len(host.requests) == 3


def test_restart_from_checkpoint_publishes_new_entries_only(tmp_path):
    host = FeedHost()
    host.serve("/feed.xml", "newsroom.xml", '"v1"', "Thu, 16 May 2024 08:00:00 GMT")
    store = CheckpointStore(tmp_path)
    settings = Settings(checkpoint_dir=tmp_path)

    async def session(url: str) -> list[str]:
        """One connector run through the real runner, until its first batch is acknowledged."""
        published = Published()
        source = source_for([url], name="rss-test")
        await run_live(source, settings, store=store, publisher=published, max_batches=1)
        return [out.record["url"] for out in published.items]

    async def go():
        async with loopback(host.app()) as base:
            url = f"{base}/feed.xml"
            first = await session(url)
            # The feed moves on: two new items, the oldest one rolled off.
            host.serve("/feed.xml", "newsroom-later.xml", '"v2"', "Fri, 17 May 2024 10:00:00 GMT")
            second = await session(url)
            # A host that ignores conditional GET: the seen ids alone keep duplicates out.
            host.conditional = False
            third = await session(url)
            return first, second, third

    first, second, third = run(go())
    assert first == ["https://news.example.com/2024/05/widget-recall", "https://news.example.com/2024/05/ceo-qa",
                     "https://news.example.com/2024/05/repair-cafe"]
    assert second == ["https://news.example.com/2024/05/q1", "https://news.example.com/2024/05/recall-canada"]
    assert third == []
    saved = store.load("rss-test")["feeds"]
    (state,) = saved.values()
    assert state["etag"] == '"v2"' and len(state["seen"]) == 5  # the rolled-off entry is remembered too


def test_429_retry_after_is_honoured():
    host = FeedHost()
    host.serve("/feed.xml", "newsroom.xml", '"v1"', "Thu, 16 May 2024 08:00:00 GMT")
    host.failures["/feed.xml"] = [429, 503]
    sleeps = Sleeps()

    async def go():
        async with loopback(host.app()) as base:
            source = source_for([f"{base}/feed.xml"], max_polls=1, sleep=sleeps, backoff_base_s=0.5)
            return source, await collect(source)

    source, batches = run(go())
    assert len(batches[0].items) == 3
    assert sleeps[0] == 2.0  # Retry-After: 2
    assert 0 <= sleeps[1] <= 1.0  # then the 503, the 2nd failed try: full jitter under base * 2
    assert source.counters.rate_limited == 1 and source.counters.requests == 3


def test_a_broken_feed_does_not_stop_the_others():
    host = FeedHost()
    host.serve("/feed.xml", "newsroom.xml", '"v1"', "Thu, 16 May 2024 08:00:00 GMT")
    host.docs["/page.html"] = (b"<html><body>Moved to our new site!</body></html>", '"h"', "", "text/html")

    async def go():
        async with loopback(host.app()) as base:
            urls = [f"{base}/gone.xml", f"{base}/page.html", f"{base}/feed.xml"]
            return base, await collect(source_for(urls, max_polls=1))

    base, batches = run(go())
    assert len(batches) == 3  # one per feed and poll
    assert len(items_of(batches)) == 3
    good = [b for b in batches if b.items][0]
    states = good.checkpoint["feeds"]
    assert len(states[f"{base}/feed.xml"]["seen"]) == 3
    # The failed feeds keep an empty state: their next poll is a full fetch again.
    assert states[f"{base}/gone.xml"] == states[f"{base}/page.html"] == {"etag": None, "modified": None, "seen": []}


def test_seen_ids_are_bounded_but_keep_every_id_still_in_the_feed():
    previous = [f"old{i}" for i in range(10)] + ["a", "b"]
    assert remember(previous, ["b", "c", "d"], limit=5) == ["old9", "a", "b", "c", "d"]
    assert remember(previous, ["b", "c", "d"], limit=2) == ["b", "c", "d"]  # never forget what is in the feed
    assert remember([], ["x", "x"], limit=5) == ["x"]


def test_html_stripping_and_future_dates():
    assert strip_html("<p>a &amp; b</p><p>c&nbsp;&nbsp;d<br>e</p>") == "a & b\n\nc d\ne"
    assert strip_html("<style>p {}</style>Fish &lt;3 chips") == "Fish <3 chips"
    future = time.struct_time((2024, 6, 1, 0, 0, 0, 5, 153, 0))
    entry = {"id": "https://x.example/1", "link": "https://x.example/1", "title": "Scheduled post",
             "published_parsed": future, "summary": "<b>soon</b>", "summary_detail": {"type": "text/html"}}
    record = normalise(entry, {"title": "X"}, "https://x.example/feed", NOW)
    # The pipeline refuses dates in the future: "now", with the feed's claim kept.
    assert record["created_at"] == NOW.isoformat()
    assert record["raw"]["created_at_reported"] == "2024-06-01T00:00:00+00:00"
    assert record["text"] == "Scheduled post\n\nsoon"
    assert normalise({"id": "tag:x,1", "title": " "}, {}, "https://x.example/feed", NOW) is None  # no text


def test_command_line_options_and_settings():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = Settings(connector_poll_s=45.0)
    args = parser.parse_args(["--url", "https://a.example/feed", "--url", "https://b.example/atom",
                              "--url", "https://a.example/feed"])
    source = build(args, settings)
    assert source.urls == ["https://a.example/feed", "https://b.example/atom"]  # each feed once
    assert source.name == "rss" and source.interval_s == 45.0
    source = build(parser.parse_args(["--url", "https://a.example/feed", "--interval", "5", "--name", "news"]),
                   settings)
    assert source.interval_s == 5.0 and source.name == "news"
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --url is required
    with pytest.raises(SystemExit, match="http"):
        build(parser.parse_args(["--url", "/etc/passwd"]), settings)  # feedparser must never open files
