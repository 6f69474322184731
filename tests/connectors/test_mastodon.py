"""The Mastodon connector against loopback stand-ins of an instance and its streaming server.

``FakeMastodon`` answers ``/api/v2/instance`` and the hashtag/public timelines as Mastodon
does (newest first, ``limit``, ``max_id``/``since_id``/``min_id``, a ``Link`` header), from the
fixture statuses in ``payloads/mastodon``; a second server plays the streaming API as
server-sent events, one script per connection (events, heartbeats, statuses posted while the
client is away, an abrupt drop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import Batch, Outgoing
from connectors.checkpoint import CheckpointStore
from connectors.mastodon import (
    MastodonSource, Timeline, add_arguments, build, hashtag_name, html_to_text, instance_base, status_record,
)
from connectors.polite import SourceError
from connectors.runner import encode_live, run_live
from connectors.sse import ServerSentEvent, SSEParser
from pipeline.schema import Deletion, Mention, parse_mention
from pipeline.settings import Settings
from tests.loopback import loopback

PAYLOADS = Path(__file__).parent / "payloads" / "mastodon"
NOW = datetime(2024, 5, 18, tzinfo=timezone.utc)  # after every fixture's created_at
TAG_PATH = "/api/v1/timelines/tag/acme"
PUBLIC_PATH = "/api/v1/timelines/public"
TOKEN = "mastodon-test-token-secret"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def run(coro):
    return asyncio.run(coro)


def _key(status_id: str) -> tuple[int, str]:
    return (len(status_id), status_id)


def sid(n: int) -> str:
    """Status id number ``n`` of the generated statuses (same length, so text order = time order)."""
    return str(112345678901300000 + n)


def gen(n: int) -> dict[str, Any]:
    """Generated status ``n``: the first fixture status with its own id, text and time."""
    status = copy.deepcopy(load("timeline_tag_acme.json")[-1])
    status.update(id=sid(n), content=f"<p>acme post {n}</p>", url=f"https://mastodon.social/@acme_fan/{sid(n)}",
                  uri=f"https://mastodon.social/users/acme_fan/statuses/{sid(n)}",
                  created_at=f"2024-05-17T10:{n // 60:02d}:{n % 60:02d}.000Z")
    return status


def mid(n: int, host: str = "127.0.0.1") -> str:
    return f"mastodon:{host}:{sid(n)}"


class Sleeps(list):
    """A fake ``sleep`` that records the seconds asked for and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(0)


class FakeMastodon:
    """An instance (``app``) and its streaming server (``streaming_app``) on loopback."""

    def __init__(self) -> None:
        self.timelines: dict[str, list[dict[str, Any]]] = {}  # REST path -> statuses posted
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []  # timeline requests
        self.failures: list[web.Response] = []  # answered to the next timeline requests first
        self.scripts: list[list[tuple]] = []  # one per stream connection, in order
        self.stream_requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.stream_status: list[int] = []  # refuse the next stream connections with these
        self.streaming_url = ""  # what /api/v2/instance announces (set once the server listens)

    def post(self, status: dict[str, Any], path: str = TAG_PATH) -> None:
        self.timelines.setdefault(path, []).append(status)

    # -- the instance --

    async def instance(self, request: web.Request) -> web.Response:
        body = load("instance_v2.json")
        body["configuration"]["urls"]["streaming"] = self.streaming_url
        return web.json_response(body)

    async def timeline(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query), dict(request.headers)))
        if self.failures:
            return self.failures.pop(0)
        query = request.query
        statuses = sorted(self.timelines.get(request.path, []), key=lambda s: _key(s["id"]), reverse=True)
        if "max_id" in query:
            statuses = [s for s in statuses if _key(s["id"]) < _key(query["max_id"])]
        if "since_id" in query:
            statuses = [s for s in statuses if _key(s["id"]) > _key(query["since_id"])]
        limit = min(int(query.get("limit", "20")), 40)
        if "min_id" in query:  # the statuses immediately newer than min_id (still newest first)
            statuses = [s for s in statuses if _key(s["id"]) > _key(query["min_id"])]
            page = statuses[-limit:]
        else:
            page = statuses[:limit]
        headers = {}
        if page:
            url = f"http://{request.host}{request.path}"
            headers["Link"] = (f'<{url}?limit={limit}&max_id={page[-1]["id"]}>; rel="next", '
                               f'<{url}?limit={limit}&min_id={page[0]["id"]}>; rel="prev"')
        return web.json_response(page, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v2/instance", self.instance)
        app.router.add_get("/api/v1/timelines/tag/{tag}", self.timeline)
        app.router.add_get(PUBLIC_PATH, self.timeline)
        return app

    # -- the streaming server --

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_requests.append((request.path, dict(request.query), dict(request.headers)))
        if self.stream_status:
            status = self.stream_status.pop(0)
            return web.json_response({"error": "This method requires an authenticated user"}, status=status)
        script = self.scripts.pop(0) if self.scripts else [("hold",)]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            for step in script:
                kind = step[0]
                if kind == "raw":
                    await response.write(step[1].encode("utf-8"))
                elif kind == "update":  # posted now, and pushed to the stream
                    self.post(step[1])
                    await response.write(f"event: update\ndata: {json.dumps(step[1])}\n\n".encode())
                elif kind == "delete":
                    await response.write(f"event: delete\ndata: {step[1]}\n\n".encode())
                elif kind == "post":  # posted while the client cannot hear it
                    self.post(step[1])
                elif kind == "after_requests":  # go on once the client has backfilled (ordering, not timing)
                    while len(self.requests) < step[1]:
                        await asyncio.sleep(0.005)
                elif kind == "drop":  # the network drops mid-stream: no end of the chunked body
                    await asyncio.sleep(0.05)  # let the bytes already written leave first
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                elif kind == "hold":  # a healthy, quiet stream: heartbeats until the client leaves
                    while True:
                        await response.write(b":thump\n")
                        await asyncio.sleep(0.05)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):  # the client went away
            pass
        return response

    def streaming_app(self) -> web.Application:
        app = web.Application()
        for path in ("/api/v1/streaming/hashtag", "/api/v1/streaming/hashtag/local", "/api/v1/streaming/public",
                     "/api/v1/streaming/public/local"):
            app.router.add_get(path, self.stream)
        return app


@contextlib.asynccontextmanager
async def serving(fake: FakeMastodon):
    """Both servers; the instance announces the streaming server as ``ws://`` (as Mastodon says ``wss://``)."""
    async with loopback(fake.app()) as base, loopback(fake.streaming_app()) as streaming:
        fake.streaming_url = streaming.replace("http://", "ws://")
        yield base


def source(base: str, sleeps: Sleeps | None = None, timelines: list[Timeline] | None = None,
           **kwargs: Any) -> MastodonSource:
    """A source with test-sized windows (seconds) and no real waiting."""
    kwargs.setdefault("batch_window_s", 0.05)
    kwargs.setdefault("stall_timeout_s", 2.0)
    return MastodonSource(base, timelines or [Timeline.hashtag("acme")], sleep=sleeps if sleeps is not None else Sleeps(), **kwargs)


async def collect(src: MastodonSource, checkpoint: dict[str, Any] | None = None,
                  until: Callable[[list[Batch]], bool] | None = None, timeout_s: float = 5.0) -> list[Batch]:
    """Batches until ``until(batches)`` holds (or the source ends); fails after ``timeout_s``."""
    batches: list[Batch] = []

    async def take(stream) -> None:
        async for batch in stream:
            batches.append(batch)
            if until is not None and until(batches):
                return

    async with contextlib.aclosing(src.batches(checkpoint)) as stream:
        await asyncio.wait_for(take(stream), timeout_s)
    return batches


def items(batches: list[Batch]) -> list[Outgoing]:
    return [out for batch in batches for out in batch.items]


def keys(batches: list[Batch]) -> list[tuple[str, bool]]:
    return [(out.key, out.deleted) for out in items(batches)]


def assert_valid(outs: list[Outgoing]) -> None:
    """Each record passes the pipeline's validator as the runner publishes it."""
    for out in outs:
        parsed = parse_mention(encode_live(out, NOW), now=NOW)
        assert isinstance(parsed, Deletion if out.deleted else Mention), parsed


class Published:
    """A stand-in for ``KafkaPublisher``: every publish is acknowledged at once."""

    def __init__(self) -> None:
        self.items: list[Outgoing] = []

    async def publish(self, items: list[Outgoing], counters: Any = None) -> None:
        self.items.extend(items)


# --- normalisation ----------------------------------------------------------------------------


def test_html_to_text_keeps_breaks_and_unescapes():
    assert html_to_text("<p>a<br>b<br/>c</p><p>d &amp; e &lt;3 &#39;q&#39;</p>") == "a\nb\nc\n\nd & e <3 'q'"
    assert html_to_text('<p><a href="https://x.example/a"><span class="invisible">https://</span>'
                        '<span class="ellipsis">x.example/a</span><span class="invisible">bc</span></a></p>') \
        == "https://x.example/abc"  # Mastodon's shortened link, read in full
    assert html_to_text("") == "" and html_to_text("<p></p>") == ""


def test_timeline_statuses_normalised_field_by_field():
    fake = FakeMastodon()
    fake.timelines[TAG_PATH] = load("timeline_tag_acme.json")

    async def go():
        async with serving(fake) as base:
            return await collect(source(base, token=TOKEN, max_polls=1))

    batches = run(go())
    outs = items(batches)
    first, reply, boosted, media, warned = [out.record for out in outs]  # oldest first
    assert first == {
        "id": "mastodon:127.0.0.1:112345678901234501",
        "source": "mastodon",
        "url": "https://mastodon.social/@acme_fan/112345678901234501",
        "author": {"handle": "acme_fan", "display_name": "Acme Fan 🎧", "followers": 240, "verified": False},
        "text": "Loving my new #acme W-2 & the battery life!\nFive stars.\n\n"
                "Review: https://blog.example.com/2024/05/acme-w2-review",
        "lang": "en",
        "created_at": "2024-05-17T11:00:00+00:00",
        "metrics": {"likes": 12, "shares": 3, "replies": 2},
        "in_reply_to": None,
        "raw": {"instance": "127.0.0.1", "status_id": "112345678901234501",
                "uri": "https://mastodon.social/users/acme_fan/statuses/112345678901234501",
                "visibility": "public", "sensitive": False, "spoiler_text": None, "tags": ["acme"], "mentions": [],
                "media_count": 0, "edited_at": None, "account_id": "109301234567890001",
                "account_url": "https://mastodon.social/@acme_fan", "account_created_at": "2022-11-07T00:00:00.000Z",
                "account_statuses_count": 1523, "account_following_count": 180, "account_bot": False,
                "in_reply_to_account_id": None, "via": "timeline", "timeline": "tag:acme"},
    }
    # A remote reply: ids stay this instance's, the URL is the origin's, entities unescaped.
    assert reply["id"] == "mastodon:127.0.0.1:112345678901234502"
    assert reply["in_reply_to"] == "mastodon:127.0.0.1:112345678901234501"
    assert reply["url"] == "https://fosstodon.org/@grumpy/112345600000000777"
    assert reply["author"]["handle"] == "grumpy@fosstodon.org"
    assert reply["text"] == '@acme_fan mine died after a week. Support said "wait 2 weeks" <sigh> #acme'
    assert reply["raw"]["mentions"] == ["acme_fan"] and reply["created_at"] == "2024-05-17T11:05:30.250000+00:00"
    # A reblog is the boosted status, with who boosted it.
    assert boosted["id"] == "mastodon:127.0.0.1:112345678901234499"
    assert boosted["text"] == "Acme W-3 launches today! 🚀 #acme"
    assert boosted["author"] == {"handle": "acme@acme.example", "display_name": "Acme Inc.", "followers": 15000,
                                 "verified": False}
    assert boosted["metrics"] == {"likes": 340, "shares": 120, "replies": 45}
    assert boosted["raw"]["reblogged_by"] == "booster@mstdn.example"
    assert boosted["raw"]["reblog_status_id"] == "112345678901234503"
    # Media only: the alt text is what there is to read; hidden counts are not -1 followers.
    assert media["text"] == "[image: Photo of an Acme W-2 on a desk]" and media["lang"] is None  # alt text, marked
    assert media["author"]["followers"] is None and media["raw"]["media_count"] == 1
    # A content warning is read too (a brand named only there counts), marked, before the content.
    assert warned["text"] == "[CW: acme rant]\nDas Scharnier ist gebrochen." and warned["lang"] == "de"
    assert warned["raw"]["spoiler_text"] == "acme rant" and warned["raw"]["sensitive"] is True
    assert warned["raw"]["edited_at"] == "2024-05-17T11:21:00.000Z"
    assert_valid(outs)
    assert batches[-1].checkpoint == {"since_ids": {"tag:acme": "112345678901234505"}}
    # The request as Mastodon documents it, with the token as a Bearer header.
    (path, query, headers), = fake.requests
    assert path == TAG_PATH and query == {"limit": "40"}
    assert headers["Authorization"] == f"Bearer {TOKEN}"


def test_no_token_no_authorization_header_and_public_local_timeline():
    fake = FakeMastodon()
    fake.post(gen(1), PUBLIC_PATH)

    async def go():
        async with serving(fake) as base:
            return await collect(source(base, timelines=[Timeline.public(local=True)], max_polls=1))

    batches = run(go())
    assert keys(batches) == [(mid(1), False)]
    (path, query, headers), = fake.requests
    assert path == PUBLIC_PATH and query == {"local": "true", "limit": "40"}
    assert "Authorization" not in headers
    assert batches[-1].checkpoint == {"since_ids": {"public:local": sid(1)}}


# --- polling: paging and restarts -------------------------------------------------------------


def test_restart_catches_up_everything_newer_than_the_checkpoint_oldest_first(tmp_path):
    fake = FakeMastodon()
    for n in range(1, 96):
        fake.post(gen(n))
    store = CheckpointStore(tmp_path)
    settings = Settings(checkpoint_dir=tmp_path)

    async def session(base: str) -> list[str]:
        """One connector run through the real runner: one poll, every batch acknowledged."""
        published = Published()
        await run_live(source(base, name="mastodon-test", max_polls=1), settings, store=store, publisher=published)
        return [out.key for out in published.items]

    async def go():
        async with serving(fake) as base:
            first = await session(base)  # first start: the newest page only
            for n in range(96, 181):  # 85 statuses while the connector was down
                fake.post(gen(n))
            fake.requests.clear()
            second = await session(base)
            min_ids = [query.get("min_id") for _, query, _ in fake.requests]
            fake.requests.clear()
            third = await session(base)  # nothing new
            return first, second, min_ids, third, len(fake.requests)

    first, second, min_ids, third, last_requests = run(go())
    assert first == [mid(n) for n in range(56, 96)]
    assert second == [mid(n) for n in range(96, 181)]  # no gap, no duplicate, oldest first
    assert min_ids == [sid(95), sid(135), sid(175), sid(180)]  # forward from the checkpoint, Link's prev
    assert third == [] and last_requests == 1
    assert store.load("mastodon-test") == {"since_ids": {"tag:acme": sid(180)}}


def test_429_retry_after_is_honoured_and_an_unknown_tag_does_not_stop_the_others():
    fake = FakeMastodon()
    fake.post(gen(1))
    fake.post(gen(2), "/api/v1/timelines/tag/other")
    fake.failures = [web.json_response({"error": "Too many requests"}, status=429, headers={"Retry-After": "7"}),
                     web.json_response({"error": "Record not found"}, status=404)]
    sleeps = Sleeps()

    async def go():
        async with serving(fake) as base:
            src = source(base, sleeps, timelines=[Timeline.hashtag("acme"), Timeline.hashtag("other")],
                         max_polls=2, interval_s=30)
            return src, await collect(src)

    src, batches = run(go())
    assert sleeps[0] == 7.0 and src.counters.rate_limited == 1  # the 429's wait, then the first poll
    assert 30 in sleeps  # the poll interval
    # The 429 was retried; the retry found #acme unknown (404): #other still came, #acme next poll.
    assert keys(batches) == [(mid(2), False), (mid(1), False)]
    assert batches[-1].checkpoint == {"since_ids": {"tag:acme": sid(1), "tag:other": sid(2)}}


# --- streaming --------------------------------------------------------------------------------


def test_sse_parser_handles_any_chunking_comments_and_fields():
    stream = ":)\r\nevent: update\r\ndata: {\"a\":\r\ndata: 1}\r\nid: 7\r\n\r\n:thump\rretry: 3000\rdata:x\r\r" \
             "event: delete\ndata\n\nevent: nothing\n\nunknown: field\ndata: tail-without-blank-line"
    expected = [ServerSentEvent("update", '{"a":\n1}', "7", None), ServerSentEvent("message", "x", "7", 3000),
                ServerSentEvent("delete", "", "7", 3000)]
    for size in (1, 2, 3, 7, len(stream)):
        parser = SSEParser()
        events = [e for i in range(0, len(stream), size) for e in parser.feed(stream[i:i + size])]
        assert events == expected, size
        assert parser.comments == 2
    assert SSEParser().feed("\ufeffdata: bom\n\n") == [ServerSentEvent("message", "bom")]
    parser = SSEParser()  # a CR inside a chunk: the next chunk's LF ends the following line, not it
    assert parser.feed("data: a\rdata: b") + parser.feed("\n\n") == [ServerSentEvent("message", "a\nb")]


def test_stream_fixture_updates_deletes_edits_and_ignores_the_rest():
    fake = FakeMastodon()
    fake.scripts = [[("raw", (PAYLOADS / "stream_sample.sse").read_text(encoding="utf-8")), ("hold",)]]

    async def go():
        async with serving(fake) as base:
            # Checkpointed: the backfill finds nothing newer, the stream brings the rest.
            src = source(base, stream=True)
            return await collect(src, {"since_ids": {"tag:acme": "112345678901234501"}},
                                 lambda b: len(items(b)) >= 3)

    batches = run(go())
    update, deletion, edit = items(batches)
    assert update.key == "mastodon:127.0.0.1:112345678901234501" and update.record["raw"]["via"] == "stream"
    assert update.record["text"].startswith("Loving my new #acme W-2")
    assert deletion == Outgoing.deletion("mastodon:127.0.0.1:112345678901234502", "mastodon")
    # An edit is published again under the same id (the index keeps the latest version).
    assert edit.key == update.key and "(edited: four stars)" in edit.record["text"]
    assert edit.record["raw"]["edited_at"] == "2024-05-17T12:00:00.000Z"
    assert_valid([update, deletion, edit])
    (path, query, headers), = fake.stream_requests
    assert path == "/api/v1/streaming/hashtag" and query == {"tag": "acme"}
    assert headers["Accept"] == "text/event-stream"


def test_stream_drop_reconnects_and_backfills_the_gap_without_loss_or_duplicates():
    fake = FakeMastodon()
    fake.post(gen(1))
    fake.post(gen(2))  # posted after the last checkpoint (1), before the connector started
    fake.scripts = [
        # 1: once backfilled (2 requests: status 2, then an empty page), a new status, a heartbeat,
        # a deletion; 4 and 5 are posted while the network drops.
        [("after_requests", 2), ("raw", ":)\n"), ("update", gen(3)), ("raw", ":thump\n"), ("delete", sid(2)),
         ("post", gen(4)), ("post", gen(5)), ("drop",)],
        # 2: after the gap's backfill (4 and 5), a late copy of 5 and a new status 6.
        [("after_requests", 4), ("update", gen(5)), ("raw", ":thump\n"), ("update", gen(6)), ("hold",)],
    ]
    sleeps = Sleeps()

    async def go():
        async with serving(fake) as base:
            src = source(base, sleeps, token=TOKEN, stream=True)
            batches = await collect(src, {"since_ids": {"tag:acme": sid(1)}},
                                    lambda b: (mid(6), False) in keys(b))
            return src, batches

    src, batches = run(go())
    assert keys(batches) == [(mid(2), False), (mid(3), False), (mid(2), True), (mid(4), False), (mid(5), False),
                             (mid(6), False)]  # each once, in order, the deletion after its post
    by_key = {out.key: out.record for out in items(batches) if not out.deleted}
    assert [by_key[mid(n)]["raw"]["via"] for n in (2, 3, 4, 5, 6)] == \
        ["backfill", "stream", "backfill", "backfill", "stream"]
    assert src.counters.reconnects == 1 and len(sleeps) == 1 and 0 <= sleeps[0] <= 1.0  # jittered backoff
    # The gap is read forward from the newest status handed out before each connection.
    assert [query["min_id"] for _, query, _ in fake.requests] == [sid(1), sid(2), sid(3), sid(5)]
    assert batches[-1].checkpoint == {"since_ids": {"tag:acme": sid(6)}}
    # The streaming server the instance announced, with the token.
    assert len(fake.stream_requests) == 2
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, _, h in fake.stream_requests)
    assert_valid(items(batches))


def test_stream_refused_for_good_stops_with_the_reason():
    fake = FakeMastodon()
    fake.stream_status = [401]

    async def go():
        async with serving(fake) as base:
            await collect(source(base, timelines=[Timeline.public()], stream=True))

    with pytest.raises(SourceError, match="EARSHOT_MASTODON_ACCESS_TOKEN") as err:
        run(go())
    assert err.value.status == 401
    assert fake.stream_requests[0][0] == "/api/v1/streaming/public"


# --- command line -----------------------------------------------------------------------------


def test_command_line_options_and_token():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = Settings(mastodon_access_token=TOKEN, connector_poll_s=90.0)
    args = parser.parse_args(["--instance", "fosstodon.org", "--hashtag", "#acme", "--hashtag", "AcmeW2", "--public",
                              "--local", "--stream"])
    src = build(args, settings)
    assert src.base_url == "https://fosstodon.org" and src.host == "fosstodon.org"
    assert [t.key for t in src.timelines] == ["tag:acme:local", "tag:AcmeW2:local", "public:local"]
    assert [t.stream_path for t in src.timelines] == ["/api/v1/streaming/hashtag/local"] * 2 + \
        ["/api/v1/streaming/public/local"]
    assert src.stream and src.interval_s == 90.0 and src.name == "mastodon-fosstodon.org"
    assert TOKEN not in repr(src)
    polled = build(parser.parse_args(["--hashtag", "acme", "--interval", "15", "--name", "m1"]), Settings())
    assert not polled.stream and polled.interval_s == 15.0 and polled.name == "m1" and polled._token is None
    assert polled.base_url == "https://mastodon.social"
    with pytest.raises(SystemExit, match="at least one"):
        build(parser.parse_args([]), settings)
    with pytest.raises(SystemExit, match="not a hashtag"):
        build(parser.parse_args(["--hashtag", "no spaces"]), settings)
    assert hashtag_name("#Café") == "Café" and instance_base("https://m.example/") == "https://m.example"


def test_status_without_anything_to_read_is_skipped():
    status = gen(1)
    status.update(content="", spoiler_text="", media_attachments=[])
    assert status_record(status, "m.example") is None
