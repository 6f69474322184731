"""The Reddit connector against a Reddit stand-in on loopback: real HTTP, Reddit's JSON formats.

The stand-in issues app-only tokens like ``POST /api/v1/access_token`` (basic auth, form
``grant_type=client_credentials``) and answers ``/search``, ``/r/<sub>/new`` and
``/r/<sub>/comments`` with Listings paged by ``after``/``limit``, newest first, from fixture
payloads (``payloads/reddit``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import Batch, Outgoing
from connectors.checkpoint import CheckpointStore
from connectors.reddit import RedditAuthError, RedditSource, Stream, add_arguments, build
from connectors.runner import encode_live, run_live
from pipeline.schema import Deletion, Mention, parse_mention
from pipeline.settings import Settings
from tests.loopback import loopback

PAYLOADS = Path(__file__).parent / "payloads" / "reddit"
NOW = datetime(2024, 5, 20, 12, 0, tzinfo=timezone.utc)
CLIENT_ID = "p-jcoLKBynTLew"
SECRET = "gko_LXELoV07ZBNUXrvWZfzE3aI-not-real"
USER_AGENT = "linux:earshot-tests:0.1 (by /u/earshot)"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def children(name: str) -> list[dict[str, Any]]:
    return load(name)["data"]["children"]


def post(n: int) -> dict[str, Any]:
    """Post number ``n`` (higher = newer), shaped like the self post of the search fixture."""
    child = copy.deepcopy(children("search_new.json")[2])
    data = child["data"]
    data.update(id=f"p{n:04d}", name=f"t3_p{n:04d}", title=f"Acme post {n}", created_utc=1715900000.0 + 60 * n,
                permalink=f"/r/BuyItForLife/comments/p{n:04d}/acme_post_{n}/")
    return child


class Sleeps(list):
    """An injected ``sleep``: records each wait (seconds); ``clock`` advances by it."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0  # monotonic seconds

    def clock(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class FakeReddit:
    """Reddit's token endpoint and listing endpoints, recording what the connector sent."""

    def __init__(self) -> None:
        self.listings: dict[str, list[dict[str, Any]]] = {}  # path -> children, newest first
        self.tokens: list[str] = []  # issued, in order
        self.revoked: set[str] = set()
        self.failures: list[web.Response] = []  # answered to the next listing requests first
        self.refuse_tokens = False
        self.token_forms: list[dict[str, str]] = []
        self.auth_headers: list[str] = []
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []  # path, query, headers

    async def access_token(self, request: web.Request) -> web.Response:
        self.auth_headers.append(request.headers.get("Authorization", ""))
        self.token_forms.append(dict(await request.post()))
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
        if self.refuse_tokens or request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        token = f"{load('token.json')['access_token']}-{len(self.tokens) + 1}"
        self.tokens.append(token)
        return web.json_response({**load("token.json"), "access_token": token})

    async def listing(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query), dict(request.headers)))
        if self.failures:
            return self.failures.pop(0)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens or token in self.revoked:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if request.path not in self.listings:
            # What Reddit does for an unknown subreddit: send the browser to the subreddit search.
            raise web.HTTPFound(f"/subreddits/search.json?q={request.path}")
        return web.json_response(page(self.listings[request.path], request.query.get("after"),
                                      int(request.query.get("limit", "25"))),
                                 headers={"x-ratelimit-remaining": "99.0", "x-ratelimit-used": "1",
                                          "x-ratelimit-reset": "420"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/access_token", self.access_token)
        app.router.add_get("/{tail:.*}", self.listing)
        return app

    def source(self, base: str, streams: list[Stream], **kwargs: Any) -> RedditSource:
        sleeps = kwargs.pop("sleep") if "sleep" in kwargs else Sleeps()  # (an empty Sleeps is falsy)
        return RedditSource(streams, client_id=CLIENT_ID, client_secret=SECRET, user_agent=USER_AGENT,
                            auth_url=f"{base}/api/v1/access_token", api_url=base, interval_s=60.0,
                            sleep=sleeps, clock=sleeps.clock, **kwargs)


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """A Listing page as Reddit pages one: the ``limit`` things after ``after``, and the next cursor."""
    names = [c["data"]["name"] for c in items]
    start = 0 if after is None else (names.index(after) + 1 if after in names else len(items))
    chunk = items[start:start + limit]
    more = start + limit < len(items)
    return {"kind": "Listing", "data": {"after": chunk[-1]["data"]["name"] if chunk and more else None,
                                       "dist": len(chunk), "modhash": "", "geo_filter": "", "before": None,
                                       "children": chunk}}


async def collect(source: RedditSource, checkpoint: dict[str, Any] | None = None) -> list[Batch]:
    async with contextlib.aclosing(source.batches(checkpoint)) as batches:
        return [batch async for batch in batches]


def records(batches: list[Batch]) -> list[dict[str, Any]]:
    return [out.record for batch in batches for out in batch.items]


def assert_valid(items: list[Outgoing]) -> None:
    """Each record, as the runner would publish it, passes the pipeline's validator."""
    for out in items:
        parsed = parse_mention(encode_live(out, NOW), now=NOW)
        assert isinstance(parsed, Deletion if out.deleted else Mention), parsed


class Published:
    """A stand-in for ``KafkaPublisher``: every publish is acknowledged at once."""

    def __init__(self) -> None:
        self.items: list[Outgoing] = []

    async def publish(self, items: list[Outgoing], counters: Any = None) -> None:
        self.items.extend(items)


def test_token_then_search_posts_normalised_field_by_field():
    reddit = FakeReddit()
    reddit.listings["/search"] = children("search_new.json")

    async def go():
        async with loopback(reddit.app()) as base:
            return await collect(reddit.source(base, [Stream.search("acme")], max_polls=1))

    batches = run(go())
    review, recall, removed = records(batches)  # oldest first
    assert review == {
        "id": "reddit:t3_1cv7abc",
        "source": "reddit",
        "url": "https://www.reddit.com/r/BuyItForLife/comments/1cv7abc/acme_w1_review_after_3_years_still_going/",
        "author": {"handle": "widget_fan_42", "display_name": None, "followers": None, "verified": False},
        # raw_json=1: Reddit sends & and < unescaped, and so do we.
        "text": "Acme W-1 review after 3 years: still going\n\nHad it 3 years & it still works. Support replaced "
                "the <charger> for free when it died.\n\nWould buy again.",
        "lang": None,
        "created_at": "2024-05-17T11:00:00+00:00",  # created_utc 1715943600
        "metrics": {"likes": 87, "shares": 0, "replies": 23},
        "in_reply_to": None,
        "raw": {"subreddit": "BuyItForLife", "fullname": "t3_1cv7abc", "kind": "t3", "stream": "search:acme",
                "subreddit_id": "t5_2ss1q", "author_fullname": "t2_1kq2m", "domain": "self.BuyItForLife",
                "is_self": True, "over_18": False, "spoiler": False, "stickied": False,
                "link_flair_text": "Review", "upvote_ratio": 0.97, "edited": 1715944000.0, "num_crossposts": 0},
    }
    # A link post: the title is the text, the link goes under raw; crossposts count as shares.
    assert recall["text"] == "Acme recalls 10,000 widgets over overheating batteries"
    assert recall["raw"]["link_url"] == "https://news.example.com/2024/05/widget-recall"
    assert recall["metrics"] == {"likes": 2314, "shares": 3, "replies": 412}
    assert recall["author"]["handle"] == "newsbot_9000"
    # A removed post by a deleted account: title only, no author.
    assert removed["text"] == "Acme W-2 hinge cracked after two weeks"
    assert removed["author"]["handle"] is None and removed["raw"]["removed_by_category"] == "moderator"
    assert_valid(batches[0].items)
    assert batches[0].checkpoint == {"streams": {"search:acme": {
        "newest": "t3_1cv9k3z", "newest_utc": 1715950800.0, "recent": ["t3_1cv9k3z", "t3_1cv8f0a", "t3_1cv7abc"]}}}

    # The app-only grant, and the listing request as Reddit documents it.
    assert reddit.auth_headers == ["Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()]
    assert reddit.token_forms == [{"grant_type": "client_credentials"}]
    (path, query, headers), = reddit.requests
    assert path == "/search"
    assert query == {"q": "acme", "sort": "new", "type": "link", "limit": "100", "raw_json": "1"}
    assert headers["Authorization"] == f"bearer {reddit.tokens[0]}" and headers["User-Agent"] == USER_AGENT


def test_comments_are_normalised_as_replies():
    reddit = FakeReddit()
    reddit.listings["/r/gadgets/comments"] = children("comments.json")

    async def go():
        async with loopback(reddit.app()) as base:
            return await collect(reddit.source(base, [Stream.comments("r/gadgets")], max_polls=1))

    batches = run(go())
    # The deleted comment has no text left: not published as a mention, but as a deletion, so a
    # copy indexed before it was deleted goes too.
    deletions = [out for batch in batches for out in batch.items if out.deleted]
    assert [(d.key, d.record["reason"]) for d in deletions] == [("reddit:t1_l4x0003", "deleted")]
    first, second = [out.record for batch in batches for out in batch.items if not out.deleted]
    assert first["id"] == "reddit:t1_l4x0001" and first["in_reply_to"] == "reddit:t3_1cv6zzz"
    assert first["text"] == "The hinge feels much sturdier than the W-1's."
    assert first["url"] == "https://www.reddit.com/r/gadgets/comments/1cv6zzz/acme_w2_first_impressions/l4x0001/"
    assert first["raw"]["link_id"] == "t3_1cv6zzz" and first["raw"]["is_submitter"] is True
    assert second["in_reply_to"] == "reddit:t1_l4x0001"
    assert second["text"] == "Mine died in a week. Acme support > 2 hours on hold & no fix."
    assert second["metrics"] == {"likes": 0, "shares": 0, "replies": 0}  # score -4: no negative likes
    assert second["created_at"] == "2024-05-17T11:30:00+00:00"
    assert_valid(batches[0].items)
    # The deleted comment still moves the cursor: it is not fetched as new again.
    assert batches[0].checkpoint["streams"]["r/gadgets/comments"]["newest"] == "t1_l4x0003"


def test_restart_pages_back_to_the_last_published_post(tmp_path):
    reddit = FakeReddit()
    reddit.listings["/r/BuyItForLife/new"] = [post(n) for n in range(5, 0, -1)]  # newest first
    store = CheckpointStore(tmp_path)
    settings = Settings(checkpoint_dir=tmp_path)

    async def session(base: str) -> list[str]:
        """One connector run through the real runner, until its first batch is acknowledged."""
        published = Published()
        source = reddit.source(base, [Stream.subreddit("BuyItForLife")], name="reddit-test", page_limit=2)
        await run_live(source, settings, store=store, publisher=published, max_batches=1)
        return [out.key for out in published.items]

    async def go():
        async with loopback(reddit.app()) as base:
            first = await session(base)  # first start: one page (--backfill-pages 1)
            reddit.listings["/r/BuyItForLife/new"] = [post(n) for n in range(10, 0, -1)]
            reddit.requests.clear()
            second = await session(base)  # five new posts: three pages back to post 5
            afters = [query.get("after") for _, query, _ in reddit.requests]
            third = await session(base)  # nothing new
            # The newest published post (10) is deleted, one new post arrives: stop at post 9.
            reddit.listings["/r/BuyItForLife/new"] = [post(11)] + [post(n) for n in range(9, 0, -1)]
            reddit.requests.clear()
            fourth = await session(base)
            return first, second, afters, third, fourth, len(reddit.requests)

    first, second, afters, third, fourth, last_requests = run(go())
    assert first == ["reddit:t3_p0004", "reddit:t3_p0005"]  # oldest first
    assert second == [f"reddit:t3_p{n:04d}" for n in range(6, 11)]  # no gap, no duplicate
    assert afters == [None, "t3_p0009", "t3_p0007"]
    assert third == []
    assert fourth == ["reddit:t3_p0011"] and last_requests == 1
    saved = store.load("reddit-test")["streams"]["r/BuyItForLife/new"]
    assert saved["newest"] == "t3_p0011" and saved["recent"][:3] == ["t3_p0011", "t3_p0010", "t3_p0009"]


def test_backfill_pages_on_first_start():
    reddit = FakeReddit()
    reddit.listings["/search"] = [post(n) for n in range(7, 0, -1)]

    async def go():
        async with loopback(reddit.app()) as base:
            source = reddit.source(base, [Stream.search("acme")], max_polls=1, page_limit=3, backfill_pages=2)
            return await collect(source)

    batches = run(go())
    assert [out.key for out in batches[0].items] == [f"reddit:t3_p{n:04d}" for n in range(2, 8)]


def test_token_is_replaced_once_when_refused_or_expired():
    reddit = FakeReddit()
    reddit.listings["/search"] = children("search_new.json")
    sleeps = Sleeps()

    async def go():
        async with loopback(reddit.app()) as base:
            source = reddit.source(base, [Stream.search("acme")], max_polls=3, sleep=sleeps)
            async with contextlib.aclosing(source.batches(None)) as batches:
                await anext(batches)
                reddit.revoked.add(reddit.tokens[0])  # poll 2: the token is refused -> a new one
                await anext(batches)
                sleeps.now += 86400  # poll 3: past expires_in -> a new one before asking
                await anext(batches)

    run(go())
    used = [headers["Authorization"] for _, _, headers in reddit.requests]
    t1, t2, t3 = (f"bearer {t}" for t in reddit.tokens)
    assert used == [t1, t1, t2, t3]  # the refused request is repeated once, with the new token


def test_a_fresh_token_refused_too_stops_the_connector():
    reddit = FakeReddit()
    reddit.listings["/search"] = children("search_new.json")
    reddit.failures = [web.json_response({"message": "Unauthorized", "error": 401}, status=401) for _ in range(2)]

    async def go():
        async with loopback(reddit.app()) as base:
            with pytest.raises(RedditAuthError, match="fresh token"):
                await collect(reddit.source(base, [Stream.search("acme")], max_polls=1))
            reddit.refuse_tokens = True
            with pytest.raises(RedditAuthError, match="EARSHOT_REDDIT_CLIENT_SECRET") as bad_secret:
                await collect(reddit.source(base, [Stream.search("acme")], max_polls=1))
            return str(bad_secret.value)

    message = run(go())
    assert len(reddit.tokens) == 2 and SECRET not in message


def test_429_retry_after_is_honoured():
    reddit = FakeReddit()
    reddit.listings["/search"] = children("search_new.json")
    reddit.failures = [web.json_response({"message": "Too Many Requests", "error": 429}, status=429,
                                         headers={"Retry-After": "3"})]
    sleeps = Sleeps()

    async def go():
        async with loopback(reddit.app()) as base:
            source = reddit.source(base, [Stream.search("acme")], max_polls=1, sleep=sleeps)
            return source, await collect(source)

    source, batches = run(go())
    assert sleeps == [3.0] and len(batches[0].items) == 3
    assert source.counters.rate_limited == 1 and source.counters.requests == 3  # token, 429, retry


def test_an_unknown_subreddit_does_not_stop_the_others():
    reddit = FakeReddit()
    reddit.listings["/search"] = children("search_new.json")

    async def go():
        async with loopback(reddit.app()) as base:
            streams = [Stream.subreddit("no_such_sub"), Stream.search("acme")]
            return await collect(reddit.source(base, streams, max_polls=1))

    unknown, search = run(go())
    assert unknown == Batch(items=[], checkpoint=None)
    assert len(search.items) == 3 and list(search.checkpoint["streams"]) == ["search:acme"]


def test_secret_and_token_are_never_logged_or_saved(caplog):
    caplog.set_level(logging.DEBUG)
    reddit = FakeReddit()
    reddit.listings["/search"] = children("search_new.json")
    reddit.failures = [web.json_response({"message": "Unauthorized", "error": 401}, status=401)]

    async def go():
        async with loopback(reddit.app()) as base:
            source = reddit.source(base, [Stream.search("acme")], max_polls=2)
            return source, await collect(source)

    source, batches = run(go())
    assert len(reddit.tokens) == 2 and "fetching a new one" in caplog.text  # a refresh happened, and was logged
    assert "HTTP Request: GET" in caplog.text  # httpx's own request log was captured too
    for secret in [SECRET, *reddit.tokens]:
        assert secret not in caplog.text
        assert secret not in json.dumps([b.checkpoint for b in batches])
        assert secret not in repr(vars(source))


def test_command_line_options_and_credentials():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = Settings(reddit_client_id=CLIENT_ID, reddit_client_secret=SECRET, reddit_user_agent=USER_AGENT,
                        connector_poll_s=90.0)
    args = parser.parse_args(["--search", "acme widgets", "--subreddit", "r/gadgets", "--comments", "gadgets",
                              "--backfill-pages", "3", "--api-url", "http://127.0.0.1:1",
                              "--auth-url", "http://127.0.0.1:1/api/v1/access_token"])
    source = build(args, settings)
    assert [s.key for s in source.streams] == ["search:acme widgets", "r/gadgets/new", "r/gadgets/comments"]
    assert source.backfill_pages == 3 and source.interval_s == 90.0 and source.user_agent == USER_AGENT
    assert source.api_url == "http://127.0.0.1:1" and source.name == "reddit"
    assert build(parser.parse_args(["--search", "x", "--interval", "15"]), settings).interval_s == 15.0

    with pytest.raises(SystemExit, match="EARSHOT_REDDIT_CLIENT_ID"):
        build(args, Settings(reddit_client_id=None, reddit_client_secret=None))
    with pytest.raises(SystemExit, match="at least one"):
        build(parser.parse_args([]), settings)
    with pytest.raises(SystemExit, match="subreddit"):
        build(parser.parse_args(["--subreddit", "../api/v1/me"]), settings)
