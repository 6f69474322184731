"""The Bluesky connector against loopback stand-ins of Jetstream and the XRPC API.

``FakeBluesky`` serves Jetstream's ``/subscribe`` WebSocket (it keeps the firehose's history
and replays it from a ``cursor``, as Jetstream does, then plays one script per connection:
events, events posted while the client is away, an abrupt drop) and the XRPC endpoints
``app.bsky.feed.searchPosts`` (offset cursors, an optional 403 for logged-out later pages, as
the public AppView answers), ``com.atproto.server.createSession`` and ``refreshSession``,
from the fixture payloads in ``payloads/bluesky``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import Batch, Outgoing
from connectors.bluesky import (
    JetstreamSource, SearchSource, add_arguments, build, jetstream_record, jetstream_url, search_record,
    substring_matcher,
)
from connectors.checkpoint import CheckpointStore
from connectors.polite import SourceError
from connectors.runner import encode_live, run_live
from pipeline.schema import Deletion, Mention, parse_mention
from pipeline.settings import Settings
from tests.loopback import loopback

PAYLOADS = Path(__file__).parent / "payloads" / "bluesky"
NOW = datetime(2024, 9, 10, tzinfo=timezone.utc)  # after every fixture's time
A = "did:plc:eygmaihciaxprqvxpfvl6flk"
B = "did:plc:rfov6bpyztcnedeyyzgfq42k"
C = "did:plc:ufbl4k27gp6kzas5glhz7fim"
IDENTIFIER = "fan.example.com"
PASSWORD = "abcd-efgh-ijkl-mnop"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def events() -> list[dict[str, Any]]:
    """The Jetstream fixture: identity, account, five post creates, a like, a delete."""
    return [json.loads(line) for line in (PAYLOADS / "jetstream.jsonl").read_text(encoding="utf-8").splitlines()]


def run(coro):
    return asyncio.run(coro)


def post_id(did: str, rkey: str) -> str:
    return f"bluesky:at://{did}/app.bsky.feed.post/{rkey}"


def new_post(n: int, text: str, did: str = A) -> dict[str, Any]:
    """A Jetstream create event ``n`` ms after the fixture's first (the fixture uses 1..9)."""
    base = events()[2]
    return {"did": did, "time_us": base["time_us"] + (n - 3) * 1000, "kind": "commit",
            "commit": {"rev": f"3l3qo2vut{n:03d}b", "operation": "create", "collection": "app.bsky.feed.post",
                       "rkey": f"3l3qo9{n:07d}", "cid": f"bafyrei{n:03d}",
                       "record": {"$type": "app.bsky.feed.post", "createdAt": "2024-09-09T19:46:09.000Z",
                                  "langs": ["en"], "text": text}}}


class Sleeps(list):
    """A fake ``sleep`` that records the seconds asked for and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(0)


class FakeBluesky:
    """Jetstream and the XRPC API on loopback."""

    def __init__(self) -> None:
        # Jetstream
        self.history: list[dict[str, Any]] = []  # every event the firehose carried, in order
        self.scripts: list[list[tuple]] = []  # one per WebSocket connection
        self.connections: list[dict[str, str]] = []  # query of each connection
        # XRPC
        self.posts: list[dict[str, Any]] = []  # searchPosts results, newest first
        self.searches: list[tuple[str, dict[str, str], dict[str, str]]] = []  # (path, query, headers)
        self.failures: list[web.Response] = []  # answered to the next searches first
        self.logged_out_first_page_only = False
        self.sessions: list[dict[str, Any]] = []  # createSession bodies
        self.refreshes: list[str] = []  # refreshSession Authorization headers
        self.expired: set[str] = set()  # access tokens that now answer 400 ExpiredToken
        self.base = ""
        self._issued = 1

    # -- Jetstream --

    async def subscribe(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections.append(dict(request.query))
        cursor = request.query.get("cursor")
        if cursor is not None:  # playback from the cursor, then live
            for event in list(self.history):
                if event["time_us"] >= int(cursor):
                    await ws.send_str(json.dumps(event))
        script = self.scripts.pop(0) if self.scripts else [("hold",)]
        for step in script:
            kind = step[0]
            if kind == "send":
                for event in step[1]:
                    self.history.append(event)
                    await ws.send_str(json.dumps(event))
            elif kind == "post":  # on the network while the client is away
                self.history.extend(step[1])
            elif kind == "drop":  # the network drops: no close frame
                await asyncio.sleep(0.05)  # let the frames already sent leave first
                assert request.transport is not None
                request.transport.abort()
                return ws
            elif kind == "hold":  # live but quiet until the client leaves
                async for _ in ws:
                    pass
        return ws

    # -- XRPC --

    async def search(self, request: web.Request) -> web.Response:
        self.searches.append((request.path, dict(request.query), dict(request.headers)))
        if self.failures:
            return self.failures.pop(0)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") in self.expired:
            return web.json_response({"error": "ExpiredToken", "message": "Token has expired"}, status=400)
        offset = int(request.query.get("cursor", "0"))
        if offset and not auth and self.logged_out_first_page_only:
            return web.json_response({"error": "Forbidden"}, status=403)
        limit = int(request.query.get("limit", "25"))
        page = self.posts[offset:offset + limit]
        body: dict[str, Any] = {"hitsTotal": len(self.posts), "posts": page}
        if offset + limit < len(self.posts):
            body["cursor"] = str(offset + limit)
        return web.json_response(body)

    def _session(self) -> dict[str, Any]:
        session = load("create_session.json")
        session["accessJwt"] = f"ACCESS-{self._issued}"
        session["refreshJwt"] = f"REFRESH-{self._issued}"
        self._issued += 1
        session["didDoc"]["service"][0]["serviceEndpoint"] = f"{self.base}/pds"  # the account's PDS
        return session

    async def create_session(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sessions.append(body)
        if body != {"identifier": IDENTIFIER, "password": PASSWORD}:
            return web.json_response({"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
                                     status=401)
        return web.json_response(self._session())

    async def refresh_session(self, request: web.Request) -> web.Response:
        self.refreshes.append(request.headers.get("Authorization", ""))
        return web.json_response(self._session())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/subscribe", self.subscribe)
        app.router.add_get("/xrpc/app.bsky.feed.searchPosts", self.search)
        app.router.add_get("/pds/xrpc/app.bsky.feed.searchPosts", self.search)
        app.router.add_post("/xrpc/com.atproto.server.createSession", self.create_session)
        app.router.add_post("/xrpc/com.atproto.server.refreshSession", self.refresh_session)
        return app


@contextlib.asynccontextmanager
async def serving(fake: FakeBluesky):
    async with loopback(fake.app()) as base:
        fake.base = base
        yield base


def jetstream(base: str, sleeps: Sleeps | None = None, **kwargs: Any) -> JetstreamSource:
    """A firehose source keeping posts that mention acme, with test-sized windows (seconds)."""
    kwargs.setdefault("keep", substring_matcher(["acme"]))
    kwargs.setdefault("batch_window_s", 0.05)
    kwargs.setdefault("stall_timeout_s", 2.0)
    return JetstreamSource(base.replace("http://", "ws://") + "/subscribe",
                           sleep=sleeps if sleeps is not None else Sleeps(), **kwargs)


def searching(base: str, queries: list[str], sleeps: Sleeps | None = None, **kwargs: Any) -> SearchSource:
    kwargs.setdefault("api_url", None if kwargs.get("identifier") else base)
    return SearchSource(queries, auth_url=base, sleep=sleeps if sleeps is not None else Sleeps(), **kwargs)


async def collect(source: Any, checkpoint: dict[str, Any] | None = None,
                  until: Callable[[list[Batch]], bool] | None = None, timeout_s: float = 5.0) -> list[Batch]:
    """Batches until ``until(batches)`` holds (or the source ends); fails after ``timeout_s``."""
    batches: list[Batch] = []

    async def take(stream) -> None:
        async for batch in stream:
            batches.append(batch)
            if until is not None and until(batches):
                return

    async with contextlib.aclosing(source.batches(checkpoint)) as stream:
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
    """A stand-in for ``KafkaPublisher``: acknowledges at once; sets ``stop`` once ``enough``."""

    def __init__(self, stop: asyncio.Event | None = None, enough: Callable[[list[Outgoing]], bool] | None = None):
        self.items: list[Outgoing] = []
        self.stop = stop
        self.enough = enough

    async def publish(self, items: list[Outgoing], counters: Any = None) -> None:
        self.items.extend(items)
        if self.stop is not None and self.enough is not None and self.enough(self.items):
            self.stop.set()


# Fixture posts by id.
P_ACME = post_id(A, "3l3qo2vutsw2b")
P_MORNING = post_id(B, "3l3qo2xxxxx2b")
P_REPLY = post_id(C, "3l3qo3aaaaa2c")
P_FUTURE = post_id(B, "3l3qo3bbbbb2c")
P_IMAGES = post_id(A, "3l3qo3ccccc2c")  # no text: its image's alt text "acme box" is read


# --- Jetstream --------------------------------------------------------------------------------


def test_jetstream_post_normalised_field_by_field():
    stream = events()
    record = jetstream_record(stream[2])
    assert record == {
        "id": P_ACME,
        "source": "bluesky",
        "url": f"https://bsky.app/profile/{A}/post/3l3qo2vutsw2b",
        "author": {"handle": A, "display_name": None, "followers": None, "verified": False},
        "text": "My Acme W-2 arrived today and the battery is amazing #acme",
        "lang": "en",
        "created_at": "2024-09-09T19:46:02.102000+00:00",
        "metrics": {"likes": 0, "shares": 0, "replies": 0},
        "in_reply_to": None,
        "raw": {"did": A, "rkey": "3l3qo2vutsw2b", "uri": f"at://{A}/app.bsky.feed.post/3l3qo2vutsw2b",
                "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgz003", "rev": "3l3qo2vut003b",
                "time_us": stream[2]["time_us"], "operation": "create",
                "facets": [{"index": {"byteStart": 53, "byteEnd": 58},
                            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "acme"}]}],
                "reply": None, "langs": ["en"], "tags": [], "embed_type": None, "via": "jetstream",
                "links": [], "mentioned_dids": [], "hashtags": ["acme"]},
    }
    reply = jetstream_record(stream[4])
    assert reply["in_reply_to"] == P_ACME and reply["lang"] == "en-US"  # the first of langs
    assert reply["raw"]["reply"]["root"]["uri"] == f"at://{A}/app.bsky.feed.post/3l3qo2vutsw2b"
    # A createdAt in the future (a wrong clock) gives way to when the network saw the post.
    future = jetstream_record(stream[5])
    assert future["created_at"] == "2024-09-09T19:46:02.335308+00:00"  # its time_us
    assert future["raw"]["claimed_created_at"] == "2031-01-01T00:00:00.000Z"
    assert jetstream_record(stream[6])["text"] == "[image: acme box]"  # images only: their alt text is read
    assert_valid([Outgoing(key=r["id"], record=r) for r in (record, reply, future)])
    assert jetstream_url("wss://js.example/subscribe?compress=false", 17) == \
        "wss://js.example/subscribe?compress=false&wantedCollections=app.bsky.feed.post&cursor=17"


def test_jetstream_keeps_matches_forwards_deletions_and_resumes_after_a_drop_without_duplicates():
    fake = FakeBluesky()
    fixture = events()
    later = new_post(10, "acme again, after the drop")
    fake.scripts = [
        [("send", fixture), ("drop",)],
        # The reconnection replays from its cursor (the whole fixture: it is < 3 s old), then live.
        [("send", [later]), ("hold",)],
    ]
    sleeps = Sleeps()

    async def go():
        async with serving(fake) as base:
            source = jetstream(base, sleeps)
            batches = await collect(source, None, lambda b: (post_id(A, "3l3qo90000010"), False) in keys(b))
            return source, batches

    source, batches = run(go())
    assert keys(batches) == [(P_ACME, False), (P_REPLY, False), (P_FUTURE, False), (P_IMAGES, False), (P_MORNING, True),
                             (post_id(A, "3l3qo90000010"), False)]  # the replayed overlap dropped
    assert source.counters.reconnects == 1 and len(sleeps) == 1 and 0 <= sleeps[0] <= 1.0
    assert source.filtered >= 2  # "Good morning everyone", once live and once replayed
    first, second = fake.connections
    assert first == {"wantedCollections": "app.bsky.feed.post"}  # a first start: live tail
    assert second == {"wantedCollections": "app.bsky.feed.post",
                      "cursor": str(fixture[-1]["time_us"] - 3_000_000)}  # rewound 3 s
    assert batches[-1].checkpoint["cursor"] == later["time_us"]
    assert_valid(items(batches))


def test_jetstream_restart_from_the_saved_checkpoint_yields_only_new_events(tmp_path):
    fake = FakeBluesky()
    fixture = events()
    store = CheckpointStore(tmp_path)
    settings = Settings(checkpoint_dir=tmp_path)
    fake.scripts = [
        [("send", fixture[:5]), ("hold",)],  # run 1: up to the reply
        # While stopped: the rest of the fixture and a new post; run 2 gets them by playback.
        [("hold",)],
    ]

    async def session(base: str, want: set[str]) -> list[tuple[str, bool]]:
        """One connector run through the real runner, stopped once ``want`` were acknowledged."""
        stop = asyncio.Event()
        published = Published(stop, lambda outs: want <= {o.key for o in outs})
        await asyncio.wait_for(run_live(jetstream(base, name="bluesky-test"), settings, stop=stop, store=store,
                                        publisher=published), 5)
        return [(o.key, o.deleted) for o in published.items]

    async def go():
        async with serving(fake) as base:
            first = await session(base, {P_ACME, P_REPLY})
            fake.history.extend(fixture[5:] + [new_post(10, "more acme")])
            second = await session(base, {P_MORNING, post_id(A, "3l3qo90000010")})
            return first, second

    first, second = run(go())
    assert first == [(P_ACME, False), (P_REPLY, False)]
    assert second == [(P_FUTURE, False), (P_IMAGES, False), (P_MORNING, True), (post_id(A, "3l3qo90000010"), False)]
    saved = store.load("bluesky-test")
    assert fake.connections[1]["cursor"] == str(fixture[4]["time_us"] - 3_000_000)
    assert saved["cursor"] == fixture[4]["time_us"] + 5000  # the new post (n=10), the last event
    assert [k for _, k in saved["recent"]][-1].startswith("create:at://")


def test_jetstream_saves_the_cursor_while_the_filter_keeps_nothing():
    fake = FakeBluesky()
    quiet = [new_post(n, f"nothing to see {n}") for n in (20, 21, 22)]
    fake.scripts = [[("send", quiet), ("hold",)]]

    async def go():
        async with serving(fake) as base:
            source = jetstream(base, checkpoint_every_s=0.1)
            return await collect(source, None, lambda b: b[-1].checkpoint["cursor"] == quiet[-1]["time_us"])

    batches = run(go())
    assert items(batches) == [] and batches[-1].checkpoint == {"cursor": quiet[-1]["time_us"], "recent": []}


# --- searchPosts ------------------------------------------------------------------------------


def test_search_posts_normalised_field_by_field():
    fake = FakeBluesky()
    fake.posts = load("search_posts.json")

    async def go():
        async with serving(fake) as base:
            return await collect(searching(base, ["acme"], max_polls=1))

    batches = run(go())
    outs = items(batches)
    records = [out.record for out in outs]  # oldest first
    assert [r["raw"]["rkey"] for r in records] == [f"3kz0000000{n}aa" for n in range(1, 7)]
    one, two, three, four, five, six = records
    assert four == {
        "id": post_id(A, "3kz00000004aa"),
        "source": "bluesky",
        "url": f"https://bsky.app/profile/{A}/post/3kz00000004aa",
        "author": {"handle": "fan.example.com", "display_name": "Acme Fan", "followers": None, "verified": False},
        "text": "acme W-2: two weeks in, still love it",
        "lang": "en",
        "created_at": "2024-05-17T11:30:00+00:00",
        "metrics": {"likes": 40, "shares": 7, "replies": 3},  # shares: 5 reposts + 2 quotes
        "in_reply_to": None,
        "raw": {"did": A, "rkey": "3kz00000004aa", "uri": f"at://{A}/app.bsky.feed.post/3kz00000004aa",
                "cid": "bafyreib004search", "indexed_at": "2024-05-17T11:30:00.500Z", "facets": [], "reply": None,
                "langs": ["en"], "tags": [], "embed_type": None, "quotes": 2, "via": "search", "query": "acme",
                "links": [], "mentioned_dids": [], "hashtags": []},
    }
    # A reply with a createdAt in the future: created_at is when it was indexed.
    assert three["in_reply_to"] == post_id(A, "3kz00000002aa")
    assert three["created_at"] == "2024-05-17T11:20:00+00:00"
    assert three["raw"]["claimed_created_at"] == "2031-01-01T00:00:00.000Z"
    # A handle that no longer resolves: the DID stands in.
    assert five["author"] == {"handle": C, "display_name": None, "followers": None, "verified": False}
    assert one["lang"] is None and one["text"] == "Unboxing my acme W-2 📦"
    assert_valid(outs)
    state = batches[-1].checkpoint["queries"]["acme"]
    assert state == {"newest": "2024-05-17T11:50:01.000Z", "recent": {six["raw"]["uri"]: "2024-05-17T11:50:01.000Z"}}
    (path, query, headers), = fake.searches
    assert path == "/xrpc/app.bsky.feed.searchPosts" and query == {"q": "acme", "limit": "100", "sort": "latest"}
    assert "Authorization" not in headers


def test_search_pages_with_the_cursor_honours_429_and_restarts_with_only_new_posts(tmp_path):
    fake = FakeBluesky()
    corpus = load("search_posts.json")  # newest first
    fake.posts = corpus[4:]  # posts 2 and 1
    store = CheckpointStore(tmp_path)
    settings = Settings(checkpoint_dir=tmp_path)
    sleeps = Sleeps()

    async def session(base: str) -> list[str]:
        published = Published()
        source = searching(base, ["acme"], sleeps, name="bluesky-search-test", max_polls=1, page_limit=2)
        await run_live(source, settings, store=store, publisher=published)
        return [o.record["raw"]["rkey"] for o in published.items]

    async def go():
        async with serving(fake) as base:
            first = await session(base)
            fake.posts = corpus  # posts 3..6 arrive
            fake.failures = [web.json_response({"error": "RateLimitExceeded"}, status=429, headers={"Retry-After": "1"})]
            fake.searches.clear()
            second = await session(base)
            cursors = [query.get("cursor") for _, query, _ in fake.searches]
            fake.searches.clear()
            third = await session(base)
            return first, second, cursors, third, len(fake.searches)

    first, second, cursors, third, last_requests = run(go())
    assert first == ["3kz00000001aa", "3kz00000002aa"]
    assert second == ["3kz00000003aa", "3kz00000004aa", "3kz00000005aa", "3kz00000006aa"]  # oldest first
    assert sleeps == [1.0]  # Retry-After: 1
    # 429, its retry, then back with the cursor until a post older than the checkpoint shows up.
    assert cursors == [None, None, "2", "4"]
    assert third == [] and last_requests == 1
    assert store.load("bluesky-search-test")["queries"]["acme"]["newest"] == "2024-05-17T11:50:01.000Z"


def test_search_with_an_app_password_uses_the_pds_and_renews_an_expired_token(caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeBluesky()
    fake.posts = load("search_posts.json")

    async def go():
        async with serving(fake) as base:
            source = searching(base, ["acme"], identifier=IDENTIFIER, password=PASSWORD, max_polls=2, page_limit=3)
            first = await collect(source, None, lambda b: len(items(b)) >= 3)
            fake.expired.add("ACCESS-2")  # the second run's token expires before its first search
            fake.posts = [dict(load("search_posts.json")[0], uri=f"at://{B}/app.bsky.feed.post/3kz00000007aa",
                               indexedAt="2024-05-17T11:55:00.000Z")] + fake.posts
            later = await collect(source, first[-1].checkpoint)
            return source, first, later

    source, first, later = run(go())
    assert fake.sessions == [{"identifier": IDENTIFIER, "password": PASSWORD},  # one per batches() run
                             {"identifier": IDENTIFIER, "password": PASSWORD}]
    # Every search went to the PDS with the session's token; the expired one was refreshed once.
    paths = {path for path, _, _ in fake.searches}
    assert paths == {"/pds/xrpc/app.bsky.feed.searchPosts"}  # the account's PDS from the didDoc
    auths = [headers["Authorization"] for _, _, headers in fake.searches]
    assert auths == ["Bearer ACCESS-1", "Bearer ACCESS-2", "Bearer ACCESS-3", "Bearer ACCESS-3"]
    assert fake.refreshes == ["Bearer REFRESH-2"]
    assert [o.record["raw"]["rkey"] for o in items(first)] == ["3kz00000004aa", "3kz00000005aa", "3kz00000006aa"]
    assert [o.record["raw"]["rkey"] for o in items(later)] == ["3kz00000007aa"]
    for secret in (PASSWORD, "ACCESS-1", "REFRESH-1"):
        assert secret not in caplog.text
        assert secret not in json.dumps([b.checkpoint for b in first + later])
        assert secret not in repr(source)


def test_logged_out_later_pages_refused_keeps_the_first_page():
    fake = FakeBluesky()
    fake.posts = load("search_posts.json")
    fake.logged_out_first_page_only = True

    async def go():
        async with serving(fake) as base:
            source = searching(base, ["acme"], max_polls=1, page_limit=2)
            # A checkpoint older than every post: the poll wants more than one page.
            return await collect(source, {"queries": {"acme": {"newest": "2024-05-17T10:00:00.000Z", "recent": {}}}})

    batches = run(go())
    assert [o.record["raw"]["rkey"] for o in items(batches)] == ["3kz00000005aa", "3kz00000006aa"]
    assert [q.get("cursor") for _, q, _ in fake.searches] == [None, "2"]


def test_wrong_app_password_stops_with_the_reason():
    fake = FakeBluesky()

    async def go():
        async with serving(fake) as base:
            await collect(searching(base, ["acme"], identifier=IDENTIFIER, password="wrong", max_polls=1))

    with pytest.raises(SourceError, match="EARSHOT_BLUESKY_APP_PASSWORD"):
        run(go())


def test_search_record_needs_text():
    post = dict(load("search_posts.json")[0], record={"$type": "app.bsky.feed.post", "text": "",
                                                       "createdAt": "2024-05-17T11:50:00.000Z"})
    assert search_record(post) is None


# --- command line -----------------------------------------------------------------------------


def test_command_line_modes_filter_and_credentials():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = Settings(bluesky_identifier=IDENTIFIER, bluesky_app_password=PASSWORD, connector_poll_s=90.0)
    firehose = build(parser.parse_args(["--jetstream", "--match", "Acme", "--match", "widget",
                                        "--jetstream-url", "ws://127.0.0.1:1/subscribe"]), settings)
    assert isinstance(firehose, JetstreamSource) and firehose.name == "bluesky"
    assert firehose.url == "ws://127.0.0.1:1/subscribe"
    assert firehose.keep({"text": "my ACME thing"}) and firehose.keep({"text": "Widgets!"})
    assert not firehose.keep({"text": "nothing"})
    matcher = build(parser.parse_args(["--jetstream"]), settings, keep=lambda r: True)  # the caller's matcher
    assert matcher.keep({"text": "anything"})
    search = build(parser.parse_args(["--search", "acme", "--search", "acme w-2", "--interval", "15"]), settings)
    assert isinstance(search, SearchSource) and search.queries == ["acme", "acme w-2"]
    assert search.interval_s == 15.0 and search.name == "bluesky-search" and search.identifier == IDENTIFIER
    assert PASSWORD not in repr(search) and PASSWORD not in repr(vars(search))
    with pytest.raises(SystemExit, match="one of the two"):
        build(parser.parse_args([]), settings)
    with pytest.raises(SystemExit, match="one of the two"):
        build(parser.parse_args(["--jetstream", "--search", "x"]), settings)
    with pytest.raises(SystemExit, match="ws://"):
        build(parser.parse_args(["--jetstream", "--jetstream-url", "https://x.example/subscribe"]), settings)
