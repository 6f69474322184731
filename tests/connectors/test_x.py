"""The X connector against a loopback stand-in of the X API v2 (real HTTP, documented formats).

``FakeX`` answers the rules, recent-search and filtered-stream endpoints from the fixture
payloads in ``payloads/x``; each stream connection plays a script (lines, keep-alives, a
disconnect notice, an abrupt drop, a stall), and posts become visible to recent search when the
script "publishes" them, as on X, where a post exists before (or without) reaching the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import Batch, Outgoing
from connectors.checkpoint import CheckpointStore
from connectors.polite import PoliteClient, SourceError
from connectors.runner import encode_live, run_live
from connectors.x import (
    FIELDS, RulesError, XSource, add_arguments, build, deleted_post_id, sync_rules, tweet_record, users_by_id,
)
from pipeline.schema import Deletion, Mention, parse_mention
from pipeline.settings import Settings
from tests.loopback import loopback

PAYLOADS = Path(__file__).parent / "payloads" / "x"
TOKEN = "test-bearer-AAAA-secret"
ID = "17900000000000001{:02d}".format  # ID(1) = "1790000000000000101", the corpus' posts 101..107


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def run(coro):
    return asyncio.run(coro)


class Sleeps(list):
    """A fake ``sleep`` that records the seconds asked for and returns at once."""

    def __init__(self, on_sleep: Callable[[float], None] | None = None):
        super().__init__()
        self.on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.on_sleep:
            self.on_sleep(seconds)
        await asyncio.sleep(0)


class FakeX:
    """X API v2 on loopback: stream rules, recent search (``page_size`` posts a page), the stream."""

    def __init__(self) -> None:
        corpus = load("corpus.json")
        self.posts: dict[str, dict[str, Any]] = {p["id"]: p for p in corpus["data"]}
        self.users = {u["id"]: u for u in corpus["includes"]["users"]}
        self.published: set[str] = set()  # posts recent search can find now
        self.matches: dict[str, set[str]] = {}  # query -> post ids it matches (once published)
        self.rules: list[dict[str, Any]] = []
        self.rule_posts: list[dict[str, Any]] = []
        self.add_response: dict[str, Any] | None = None
        self.search_requests: list[dict[str, str]] = []
        self.search_refusals: list[tuple[int, dict[str, str]]] = []  # (status, headers) answered first
        self.streams: list[list[tuple]] = []  # one script per stream connection, in order
        self.stream_requests: list[dict[str, str]] = []
        self.page_size = 2
        self._next_rule_id = 1789000000000000100

    # -- helpers for scripts --

    def line(self, n: int, tags: tuple[str, ...] = ("earshot:acme",)) -> str:
        """Post ``ID(n)`` as one stream line (data, includes.users, matching_rules)."""
        post = self.posts[ID(n)]
        return json.dumps({"data": post, "includes": {"users": [self.users[post["author_id"]]]},
                           "matching_rules": [{"id": "1789000000000000001", "tag": t} for t in tags]})

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    @staticmethod
    def _unauthorised() -> web.Response:
        return web.json_response({"title": "Unauthorized", "type": "about:blank", "status": 401,
                                  "detail": "Unauthorized"}, status=401)

    # -- endpoints --

    async def get_rules(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        body: dict[str, Any] = {"meta": {"sent": "2024-05-14T10:00:00.000Z", "result_count": len(self.rules)}}
        if self.rules:  # X leaves "data" out when there are no rules
            body["data"] = self.rules
        return web.json_response(body)

    async def post_rules(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        body = await request.json()
        self.rule_posts.append(body)
        if "delete" in body:
            ids = set(body["delete"]["ids"])
            before = len(self.rules)
            self.rules = [r for r in self.rules if r["id"] not in ids]
            return web.json_response({"meta": {"sent": "2024-05-14T10:00:00.000Z", "summary": {
                "deleted": before - len(self.rules), "not_deleted": len(ids) - (before - len(self.rules))}}})
        if self.add_response is not None:
            self.rules.extend(self.add_response.get("data") or [])
            return web.json_response(self.add_response)
        created = []
        for rule in body["add"]:
            self._next_rule_id += 1
            created.append({"id": str(self._next_rule_id), **rule})
        self.rules.extend(created)
        return web.json_response({"data": created, "meta": {"sent": "2024-05-14T10:00:00.000Z", "summary": {
            "created": len(created), "not_created": 0, "valid": len(created), "invalid": 0}}})

    async def search(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        params = dict(request.query)
        self.search_requests.append(params)
        if self.search_refusals:
            status, headers = self.search_refusals.pop(0)
            return web.json_response({"title": "Too Many Requests", "status": status}, status=status, headers=headers)
        since = int(params.get("since_id", "0"))
        found = sorted((i for i in self.matches.get(params["query"], set()) & self.published if int(i) > since),
                       key=int, reverse=True)  # X: newest first
        offset = int(params.get("next_token", "0"))
        page = found[offset:offset + self.page_size]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta.update(newest_id=page[0], oldest_id=page[-1])
        if offset + self.page_size < len(found):
            meta["next_token"] = str(offset + self.page_size)
        body: dict[str, Any] = {"meta": meta}
        if page:
            posts = [self.posts[i] for i in page]
            body["data"] = posts
            body["includes"] = {"users": [self.users[a] for a in sorted({p["author_id"] for p in posts})]}
        return web.json_response(body)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self._unauthorised()
        self.stream_requests.append(dict(request.query))
        script = self.streams.pop(0) if self.streams else [("hold",)]
        if script and script[0][0] == "status":
            _, status, headers = script[0]
            return web.json_response({"title": "refused", "status": status}, status=status, headers=headers)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for step in script:
                kind = step[0]
                if kind == "line":
                    await response.write(step[1].encode("utf-8") + b"\r\n")
                elif kind == "keepalive":
                    await response.write(b"\r\n")
                elif kind == "publish":
                    self.published.update(step[1])
                elif kind == "pause":
                    await asyncio.sleep(step[1])
                elif kind == "after_searches":  # go on once the client has backfilled (ordering, not timing)
                    while len(self.search_requests) < step[1]:
                        await asyncio.sleep(0.005)
                elif kind == "drop":  # the network drops mid-stream: no end of the chunked body
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                elif kind == "hold":  # a healthy, quiet stream: keep-alives until the client leaves
                    while True:
                        await response.write(b"\r\n")
                        await asyncio.sleep(0.05)
            await response.write_eof()  # X closed the stream cleanly
        except (ConnectionResetError, RuntimeError):  # the client went away
            pass
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/2/tweets/search/stream/rules", self.get_rules)
        app.router.add_post("/2/tweets/search/stream/rules", self.post_rules)
        app.router.add_get("/2/tweets/search/recent", self.search)
        app.router.add_get("/2/tweets/search/stream", self.stream)
        return app


def x_source(url: str, sleeps: Sleeps, **kwargs: Any) -> XSource:
    """A source with test-sized windows (seconds) and no real waiting."""
    kwargs.setdefault("batch_window_s", 0.05)
    kwargs.setdefault("stall_timeout_s", 2.0)
    return XSource(TOKEN, api_url=url, sleep=sleeps, **kwargs)


async def collect(source: XSource, checkpoint: dict[str, Any] | None,
                  until: Callable[[list[Batch]], bool], timeout_s: float = 5.0) -> list[Batch]:
    """Batches from ``source`` until ``until(batches)`` holds; fails after ``timeout_s``."""
    batches: list[Batch] = []

    async def take(stream) -> None:
        async for batch in stream:
            batches.append(batch)
            if until(batches):
                return

    async with contextlib.aclosing(source.batches(checkpoint)) as stream:
        await asyncio.wait_for(take(stream), timeout_s)
    return batches


def items(batches: list[Batch]) -> list[Outgoing]:
    return [out for batch in batches for out in batch.items]


def keys(batches: list[Batch]) -> list[str]:
    return [out.key for out in items(batches)]


def has(*wanted: str) -> Callable[[list[Batch]], bool]:
    return lambda batches: set(wanted) <= set(keys(batches))


def assert_valid(outs: list[Outgoing]) -> None:
    """Each record passes the pipeline's validator as published: ``encode_live`` is the record's
    ``json.dumps`` plus ``ingested_at`` (and ``created_at`` when X gave none)."""
    now = datetime.now(timezone.utc)
    for out in outs:
        assert out.unparsed is None, out
        parsed = parse_mention(encode_live(out, now), now=now)
        assert isinstance(parsed, Deletion if out.deleted else Mention), parsed
        assert parsed.id == out.key


# --- normalisation -----------------------------------------------------------------------


def test_post_normalised_field_by_field_with_its_author_from_includes():
    line = load("stream_reply.json")
    tags = [r["tag"] for r in line["matching_rules"]]
    record = tweet_record(line["data"], users_by_id(line["includes"]), rule_tags=tags)

    assert record["id"] == "x:1790012345678901234" and record["source"] == "x"
    assert record["url"] == "https://x.com/dana_travels/status/1790012345678901234"
    # The author is the author_id's user, not the first user of includes (the replied-to account).
    assert record["author"] == {"handle": "dana_travels", "display_name": "Dana Traveller", "followers": 1234,
                                "verified": False}
    assert record["text"] == "@AcmeAir lost my bag again on AA123 #travel #fail $ACME @globexhelp"
    assert record["lang"] == "en"
    assert record["created_at"] == "2024-05-13T09:21:07+00:00"
    assert record["metrics"] == {"likes": 31, "shares": 4 + 3, "replies": 2}  # shares = reposts + quotes
    assert record["in_reply_to"] == "x:1790012000000000000"  # replied_to, not the quoted post
    assert record["raw"] == {
        "author_id": "2244994945",
        "conversation_id": "1790012000000000000",
        "matching_rules": ["earshot:acme"],
        "referenced_tweets": [{"type": "replied_to", "id": "1790012000000000000"},
                              {"type": "quoted", "id": "1789999999999999999"}],
        "hashtags": ["travel", "fail"],
        "cashtags": ["ACME"],
        "mentions": ["AcmeAir", "globexhelp"],
        "author_created_at": "2013-12-14T04:35:55.000Z",
        "author_tweet_count": 4567,
        "via": "stream",
        "quoted_id": "x:1789999999999999999",  # a quote links the post it quotes
    }
    assert_valid([Outgoing(key=record["id"], record=record)])


def test_post_without_its_author_or_language_still_validates():
    post = dict(load("corpus.json")["data"][5])  # lang "und": emoji and a hashtag only
    post.pop("created_at")
    record = tweet_record(post, {})
    assert record["url"] == f"https://x.com/i/web/status/{ID(6)}"
    assert record["author"] == {"handle": None, "display_name": None, "followers": None, "verified": False}
    assert record["lang"] is None
    assert "created_at" not in record  # the runner stamps the publication time
    assert record["in_reply_to"] is None and record["raw"]["hashtags"] == ["acme"]
    assert_valid([Outgoing(key=record["id"], record=record)])


def test_deletion_notices_in_both_formats():
    batch_format, v2_event = [json.loads(line) for line in (PAYLOADS / "deletions.jsonl").read_text().splitlines()]
    assert deleted_post_id(batch_format) == ID(2)
    assert deleted_post_id(v2_event) == ID(5)
    assert deleted_post_id(load("stream_reply.json")) is None
    assert deleted_post_id(load("operational_disconnect.json")) is None


# --- rules -------------------------------------------------------------------------------


def test_rules_sync_changes_only_what_differs_and_leaves_other_rules_alone():
    fake = FakeX()
    fake.rules = [
        {"id": "1", "value": "acme", "tag": "earshot:acme"},  # wanted as is: kept
        {"id": "2", "value": "initech", "tag": "earshot:initech"},  # no longer wanted: deleted
        {"id": "3", "value": "globex lang:en", "tag": "earshot:globex"},  # value changed: replaced
        {"id": "4", "value": "from:someone", "tag": "other-tool"},  # another tool's: untouched
        {"id": "5", "value": "untagged rule"},  # no tag: not ours either
    ]
    wanted = {"acme": "acme", "globex": "globex", "earshot:hooli": "hooli"}

    async def go():
        async with loopback(fake.app()) as url, XSource(TOKEN, rules={"a": "a"})._client() as http:
            client = PoliteClient(http, sleep=Sleeps())
            first = await sync_rules(client, url, wanted)
            posts_after_first = len(fake.rule_posts)
            second = await sync_rules(client, url, wanted)
            return first, second, posts_after_first

    first, second, posts_after_first = run(go())
    assert fake.rule_posts == [
        {"delete": {"ids": ["2", "3"]}},
        {"add": [{"value": "globex", "tag": "earshot:globex"}, {"value": "hooli", "tag": "earshot:hooli"}]},
    ]
    assert [r.id for r in first.kept] == ["1"] and [r.id for r in first.deleted] == ["2", "3"]
    assert [(r.tag, r.value) for r in first.added] == [("earshot:globex", "globex"), ("earshot:hooli", "hooli")]
    assert {(r.get("tag"), r["value"]) for r in fake.rules} == {
        ("earshot:acme", "acme"), ("other-tool", "from:someone"), (None, "untagged rule"),
        ("earshot:globex", "globex"), ("earshot:hooli", "hooli")}
    # Already in sync: nothing sent.
    assert posts_after_first == 2 and len(fake.rule_posts) == 2
    assert len(second.kept) == 3 and not second.added and not second.deleted


def test_invalid_rules_are_reported_with_xs_reason(caplog):
    fake = FakeX()
    fake.add_response = load("rules_add_invalid.json")
    wanted = {"acme": "acme lang:en -is:retweet", "broken": "(acme"}

    async def go(strict: bool):
        async with loopback(fake.app()) as url, XSource(TOKEN, rules={"a": "a"})._client() as http:
            return await sync_rules(PoliteClient(http, sleep=Sleeps()), url, wanted, strict=strict)

    with pytest.raises(RulesError) as err:
        run(go(strict=True))
    message = str(err.value)
    assert "earshot:broken" in message and "'(acme'" in message and "unbalanced parentheses" in message
    assert "earshot:acme" not in message  # the valid rule was added, not reported

    fake.rules.clear()
    with caplog.at_level(logging.ERROR, logger="connectors.x"):
        report = run(go(strict=False))
    assert report.invalid == [("earshot:broken", "(acme",
                               "Rules must not contain unbalanced parentheses (at position 1)")]
    assert [r.tag for r in report.added] == ["earshot:acme"]
    assert "X refused rule earshot:broken" in caplog.text


# --- the stream --------------------------------------------------------------------------


def test_stream_survives_keepalives_a_drop_and_a_disconnect_notice_without_losing_or_doubling():
    fake = FakeX()
    fake.matches["acme"] = {ID(n) for n in range(1, 8)}
    fake.streams = [
        # 1: two posts between keep-alives; 103 and 104 are posted while the network drops.
        [("keepalive",), ("publish", {ID(1)}), ("line", fake.line(1)), ("keepalive",),
         ("publish", {ID(2)}), ("line", fake.line(2)), ("publish", {ID(3), ID(4)}), ("drop",)],
        # 2: a new post, a late copy of backfilled 104, then X's operational disconnect; 106 is
        # posted meanwhile.
        [("after_searches", 1), ("publish", {ID(5)}), ("line", fake.line(5)), ("keepalive",),
         ("line", fake.line(4)), ("publish", {ID(6)}), ("line", json.dumps(load("operational_disconnect.json")))],
        # 3: healthy again.
        [("after_searches", 2), ("publish", {ID(7)}), ("keepalive",), ("line", fake.line(7)), ("hold",)],
    ]
    sleeps = Sleeps()

    async def go():
        async with loopback(fake.app()) as url:
            source = x_source(url, sleeps, rules={"acme": "acme"})
            batches = await collect(source, None, has(f"x:{ID(7)}"))
            return source, batches

    source, batches = run(go())
    assert keys(batches) == [f"x:{ID(n)}" for n in range(1, 8)]  # each once, oldest first
    assert source.counters.reconnects == 2
    assert sleeps == [0.25, 0.25]  # X: network errors back off linearly from 250 ms
    # Backfill: recent search for the rule's value since the newest post seen before each gap.
    assert [(r["query"], r["since_id"]) for r in fake.search_requests] == [("acme", ID(2)), ("acme", ID(5))]
    assert all(r[k] == v for r in fake.search_requests + fake.stream_requests for k, v in FIELDS.items())
    assert batches[-1].checkpoint == {"newest_id": ID(7)}
    by_key = {out.key: out.record for out in items(batches)}
    assert by_key[f"x:{ID(3)}"]["raw"]["via"] == "backfill"
    assert by_key[f"x:{ID(3)}"]["raw"]["matching_rules"] == ["earshot:acme"]
    assert by_key[f"x:{ID(5)}"]["raw"]["via"] == "stream"
    assert by_key[f"x:{ID(5)}"]["author"]["handle"] == "kimreads"
    assert_valid(items(batches))
    assert fake.rules and fake.rules[0]["tag"] == "earshot:acme"  # the rule was synced first


def test_a_stalled_stream_is_reopened():
    fake = FakeX()
    fake.matches["acme"] = {ID(1), ID(2)}
    fake.published = {ID(1)}
    # No byte for 10 s: not even the keep-alive X sends every 20 s.
    fake.streams = [[("line", fake.line(1)), ("pause", 10.0)],
                    [("publish", {ID(2)}), ("line", fake.line(2)), ("hold",)]]

    async def go():
        async with loopback(fake.app()) as url:
            source = x_source(url, Sleeps(), rules={"acme": "acme"}, stall_timeout_s=0.3)
            started = time.monotonic()
            batches = await collect(source, None, has(f"x:{ID(2)}"))
            return source, batches, time.monotonic() - started

    source, batches, seconds = run(go())
    assert keys(batches) == [f"x:{ID(1)}", f"x:{ID(2)}"]
    assert source.counters.reconnects == 1 and seconds < 3


def test_refused_stream_connections_back_off_as_x_asks():
    fake = FakeX()
    fake.matches["acme"] = {ID(1)}
    reset_at = int(time.time()) + 30
    fake.streams = [
        [("status", 429, {"Retry-After": "7"})],  # told how long: exactly that
        [("status", 429, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset_at)})],  # unix seconds
        [("status", 429, {})],  # not told: 1 min doubling -> third 429 waits 4 min
        [("status", 503, {})],  # HTTP errors: 5 s doubling
        [("status", 503, {})],
        [("line", fake.line(1)), ("hold",)],
    ]
    sleeps = Sleeps()

    async def go():
        async with loopback(fake.app()) as url:
            source = x_source(url, sleeps, rules={"acme": "acme"})
            batches = await collect(source, None, has(f"x:{ID(1)}"))
            return source, batches

    source, batches = run(go())
    assert keys(batches) == [f"x:{ID(1)}"]
    assert sleeps[0] == 7.0 and 25 <= sleeps[1] <= 30 and sleeps[2:] == [240.0, 5.0, 10.0]
    assert source.counters.reconnects == 5 and source.counters.rate_limited == 3


def test_deletion_notices_in_the_stream_become_deletions():
    fake = FakeX()
    deletions = (PAYLOADS / "deletions.jsonl").read_text().splitlines()
    fake.streams = [[("line", fake.line(1)), ("line", deletions[0]), ("keepalive",), ("line", deletions[1]),
                     ("hold",)]]

    async def go():
        async with loopback(fake.app()) as url:
            source = x_source(url, Sleeps(), rules={"acme": "acme"})
            return await collect(source, None, has(f"x:{ID(5)}"))

    outs = items(run(go()))
    assert outs[1:] == [Outgoing.deletion(f"x:{ID(2)}", "x"), Outgoing.deletion(f"x:{ID(5)}", "x")]
    assert_valid(outs)


def test_posts_matching_only_other_tools_rules_are_not_published():
    fake = FakeX()
    fake.streams = [[("line", fake.line(1, tags=("other-tool",))),
                     ("line", fake.line(2, tags=("other-tool", "earshot:acme"))), ("hold",)]]

    async def go():
        async with loopback(fake.app()) as url:
            return await collect(x_source(url, Sleeps(), rules={"acme": "acme"}), None, has(f"x:{ID(2)}"))

    assert keys(run(go())) == [f"x:{ID(2)}"]


def test_restart_from_a_checkpoint_yields_only_newer_posts():
    fake = FakeX()
    fake.matches["acme"] = {ID(n) for n in range(1, 8)}
    fake.published = {ID(n) for n in range(1, 7)}  # 105 and 106 were posted while earshot was down
    fake.streams = [[("line", fake.line(5)), ("line", fake.line(6)), ("publish", {ID(7)}),
                     ("line", fake.line(7)), ("hold",)]]

    async def go():
        async with loopback(fake.app()) as url:
            source = x_source(url, Sleeps(), rules={"acme": "acme"})
            return await collect(source, {"newest_id": ID(4)}, has(f"x:{ID(7)}"))

    batches = run(go())
    assert keys(batches) == [f"x:{ID(5)}", f"x:{ID(6)}", f"x:{ID(7)}"]
    assert fake.search_requests[0]["since_id"] == ID(4)
    assert [b.checkpoint for b in batches][-1] == {"newest_id": ID(7)}


def test_runner_saves_the_checkpoint_and_a_restart_resumes_after_it(tmp_path):
    """Through ``run_live`` (a stand-in publisher instead of Kafka): stop, restart, no gap, no repeat."""
    fake = FakeX()
    fake.matches["acme"] = {ID(n) for n in range(1, 8)}
    fake.published = {ID(1), ID(2)}
    fake.streams = [[("line", fake.line(1)), ("line", fake.line(2)), ("hold",)],
                    [("line", fake.line(5)), ("hold",)]]
    store = CheckpointStore(tmp_path)
    settings = Settings(_env_file=None)

    class Publisher:
        def __init__(self, last: str):
            self.keys: list[str] = []
            self.last, self.stop = last, asyncio.Event()

        async def publish(self, outs: list[Outgoing], counters: Any = None) -> None:
            self.keys += [out.key for out in outs]
            if self.last in self.keys:
                self.stop.set()  # the runner stops after saving this batch's checkpoint

    async def session(url: str, last: str) -> list[str]:
        publisher = Publisher(last)
        source = x_source(url, Sleeps(), rules={"acme": "acme"})
        await asyncio.wait_for(run_live(source, settings, stop=publisher.stop, store=store, publisher=publisher), 5)
        return publisher.keys

    async def go():
        async with loopback(fake.app()) as url:
            first = await session(url, f"x:{ID(2)}")
            saved = store.load("x")
            fake.published |= {ID(3), ID(4), ID(5)}  # posted while earshot was stopped
            return first, saved, await session(url, f"x:{ID(5)}")

    first, saved, second = run(go())
    assert first == [f"x:{ID(1)}", f"x:{ID(2)}"] and saved == {"newest_id": ID(2)}
    assert second == [f"x:{ID(3)}", f"x:{ID(4)}", f"x:{ID(5)}"]
    assert store.load("x") == {"newest_id": ID(5)}


# --- recent search -----------------------------------------------------------------------


def test_recent_search_pages_from_since_id_publishes_oldest_first_and_honours_retry_after():
    fake = FakeX()
    fake.matches = {"acme": {ID(n) for n in range(1, 8)}, "globex": {ID(1), ID(3), ID(5)}}
    fake.published = {ID(n) for n in range(1, 7)}
    fake.search_refusals = [(429, {"Retry-After": "3"})]
    # 107 is posted while the connector waits for its next poll.
    sleeps = Sleeps(on_sleep=lambda s: fake.published.add(ID(7)) if s == 60.0 else None)

    async def go():
        async with loopback(fake.app()) as url:
            source = x_source(url, sleeps, searches=["acme", "globex"], interval_s=60.0, max_polls=2)
            return source, await collect(source, {"since_ids": {"acme": ID(2)}}, lambda b: False)

    source, batches = run(go())
    assert sleeps == [3.0, 60.0]  # Retry-After, then the poll interval
    assert keys(batches) == [f"x:{ID(n)}" for n in (3, 4, 5, 6, 7)]
    acme = [(r.get("since_id"), r.get("next_token")) for r in fake.search_requests if r["query"] == "acme"]
    assert acme == [(ID(2), None), (ID(2), None), (ID(2), "2"), (ID(6), None)]  # 429, retried, page 2; poll 2
    globex = [(r.get("since_id"), r.get("next_token")) for r in fake.search_requests if r["query"] == "globex"]
    # A query without a cursor takes the newest page only (not seven days of history), then
    # resumes from its newest id.
    assert globex == [(None, None), (ID(5), None)]
    assert batches[-1].checkpoint == {"since_ids": {"acme": ID(7), "globex": ID(5)}}
    assert all(out.record["raw"]["via"] == "search" for out in items(batches))
    assert source.counters.rate_limited == 1
    assert_valid(items(batches))


# --- credentials and the command line ----------------------------------------------------


def test_wrong_token_fails_fast_and_no_token_is_ever_logged(caplog):
    fake = FakeX()

    async def go():
        async with loopback(fake.app()) as url:
            source = XSource("wrong-token-BBBB", rules={"acme": "acme"}, api_url=url, sleep=Sleeps())
            await collect(source, None, lambda b: True)

    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as err:
        run(go())
    assert err.value.status == 401
    assert "wrong-token-BBBB" not in caplog.text and "wrong-token-BBBB" not in str(err.value)
    assert "wrong-token-BBBB" not in repr(XSource("wrong-token-BBBB", searches=["q"]))


def test_command_line_builds_the_source_from_rules_or_searches():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--rule", "acme=acme lang:en", "--rule", "globex=globex OR #globex=1",
                              "--api-url", "http://127.0.0.1:9/", "--name", "x-brands"])
    settings = Settings(_env_file=None, x_bearer_token=TOKEN, connector_poll_s=15.0)
    source = build(args, settings)
    assert source.rules == {"earshot:acme": "acme lang:en", "earshot:globex": "globex OR #globex=1"}
    assert source.name == "x-brands" and source.api_url == "http://127.0.0.1:9"
    search = build(parser.parse_args(["--search", "acme", "--search", "#globex"]), settings)
    assert search.searches == ["acme", "#globex"] and search.interval_s == 15.0 and search.name == "x-search"

    with pytest.raises(ValueError, match="EARSHOT_X_BEARER_TOKEN"):
        build(args, Settings(_env_file=None, x_bearer_token=None))
    with pytest.raises(ValueError, match="one of the two"):
        build(parser.parse_args([]), settings)
    with pytest.raises(SystemExit):
        parser.parse_args(["--rule", "no-equals-sign"])
