"""X (Twitter) API v2: filtered stream with managed rules, recent search, deletion notices.

Two modes, both with an app-only bearer token (``EARSHOT_X_BEARER_TOKEN``; never logged):

- **stream** (``--rule TAG=VALUE``): ``sync_rules`` makes the earshot-tagged filtered-stream
  rules exactly the wanted ones (rules of other tools, tags without the ``earshot:`` prefix,
  are left alone), then the stream is held open and re-opened whenever it drops or stalls,
  with X's back-off rules. The stream has no gap recovery below Pro/Enterprise
  (``backfill_minutes``), so after every reconnect, and on a restart from a checkpoint, each
  rule's value is run through recent search since the newest post id seen; duplicates are
  dropped by id. Checkpoint: ``{"newest_id": "<post id>"}``.
- **search** (``--search QUERY``): recent search polled every ``--interval`` seconds, paged
  with ``next_token`` from each query's ``since_id``, published oldest first. Checkpoint:
  ``{"since_ids": {"<query>": "<newest post id>"}}``.

Posts become mentions in ``connectors.x_posts`` (pure: HTML entities, retweets as echoes of
the original, quotes, ``note_tweet``, edits under one id, withheld notices); every deletion
format X sends (batch-compliance lines, v1.1 notices, v2 compliance events) becomes an
``Outgoing.deletion``.

X API documentation used:
- Filtered stream: https://docs.x.com/x-api/posts/filtered-stream/introduction
  GET /2/tweets/search/stream: https://developer.x.com/en/docs/x-api/tweets/filtered-stream/api-reference/get-tweets-search-stream
- Rules: https://developer.x.com/en/docs/x-api/tweets/filtered-stream/api-reference/get-tweets-search-stream-rules
  and https://developer.x.com/en/docs/x-api/tweets/filtered-stream/api-reference/post-tweets-search-stream-rules
- Matching rules (tags): https://docs.x.com/x-api/posts/filtered-stream/integrate/matching-returned-tweets
- Disconnections, keep-alives and back-off: https://docs.x.com/x-api/fundamentals/handling-disconnections
- Recovery (backfill is Pro/Enterprise): https://docs.x.com/x-api/fundamentals/recovery-and-redundancy
- Recent search: https://developer.x.com/en/docs/x-api/tweets/search/api-reference/get-tweets-search-recent
- Compliance events: https://docs.x.com/x-api/compliance/streams/introduction
- Stream message types (delete notices, blank-line keep-alives):
  https://developer.x.com/en/docs/tweets/filter-realtime/guides/streaming-message-types
- Rate limits (x-rate-limit-* headers): https://developer.x.com/en/docs/x-api/fundamentals/rate-limits
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from connectors.base import Batch, Outgoing
from connectors.common import RecentIds
from connectors.polite import Counters, PoliteClient, SourceError, reset_delay_s
from connectors.x_posts import (
    SOURCE, EditVersions, _id_key, _unparsed, deletion_outgoing, media_by_key, newest, post_outgoing, posts_by_id,
    users_by_id,
)
from connectors.x_posts import deleted_post_id, tweet_record  # noqa: F401 - re-exported: connectors.x's API
from pipeline.alerts.webhooks import retry_after_s

log = logging.getLogger(__name__)

API_URL = "https://api.x.com"
TAG_PREFIX = "earshot:"  # our rules' tags start with this; other rules on the app are not ours
USER_AGENT = "earshot/0.1 (social listening)"

STREAM_PATH = "/2/tweets/search/stream"
RULES_PATH = "/2/tweets/search/stream/rules"
SEARCH_PATH = "/2/tweets/search/recent"

# One set of fields for the stream and recent search, so both normalise the same way. The
# referenced posts (the original of a retweet, a quoted post) and their authors come through
# ``expansions`` into ``includes``: a retweet's own ``text`` is a cut-off copy.
FIELDS: dict[str, str] = {
    "tweet.fields": "created_at,lang,public_metrics,author_id,conversation_id,in_reply_to_user_id,"
                    "referenced_tweets,entities,note_tweet,edit_history_tweet_ids,attachments,withheld",
    "expansions": "author_id,referenced_tweets.id,referenced_tweets.id.author_id,attachments.media_keys",
    "user.fields": "username,name,public_metrics,verified,created_at",
    "media.fields": "alt_text,type",
}
SEARCH_PAGE_SIZE = 100  # recent search's maximum max_results

Sleep = Callable[[float], Awaitable[Any]]


# --- rules ---------------------------------------------------------------------------------


class RulesError(ValueError):
    """X refused some wanted rules (syntax, operators, length); the message lists each one."""


@dataclass(frozen=True)
class Rule:
    id: str
    value: str
    tag: str | None = None


@dataclass
class RulesReport:
    """What ``sync_rules`` did (tags are full tags, prefix included)."""

    added: list[Rule] = field(default_factory=list)
    deleted: list[Rule] = field(default_factory=list)
    kept: list[Rule] = field(default_factory=list)
    invalid: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, value, X's reason)


def earshot_tag(tag: str, prefix: str = TAG_PREFIX) -> str:
    """``tag`` with the earshot prefix (added once)."""
    return tag if tag.startswith(prefix) else f"{prefix}{tag}"


async def list_rules(client: PoliteClient, api_url: str) -> list[Rule]:
    """Every rule on the app's filtered stream, ours or not."""
    body = await client.get_json(f"{api_url}{RULES_PATH}")
    return [Rule(id=str(r["id"]), value=r["value"], tag=r.get("tag")) for r in body.get("data") or []]


def _error_reason(error: Mapping[str, Any]) -> str:
    details = error.get("details")
    if isinstance(details, list) and details:
        return "; ".join(str(d) for d in details)
    return str(error.get("detail") or error.get("title") or error)


async def _post_rules(client: PoliteClient, api_url: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        response = await client.request("POST", f"{api_url}{RULES_PATH}", json=body)
    except SourceError as exc:
        if exc.status == 400:  # X answers a malformed rule request (or rule) with 400
            raise RulesError(f"X refused the rule change {json.dumps(body)[:300]}: {exc}") from exc
        raise
    return response.json()


async def sync_rules(client: PoliteClient, api_url: str, wanted: Mapping[str, str], *,
                     prefix: str = TAG_PREFIX, strict: bool = True) -> RulesReport:
    """Make the app's earshot-tagged rules exactly ``wanted`` (tag -> rule value).

    Tags get ``prefix`` if they lack it. Rules whose tag does not start with ``prefix`` belong
    to other tools and are never touched. A rule whose value changed is deleted and added
    again (X cannot edit a rule); stale ones are deleted before new ones are added, so a value
    moving to another tag is not refused as a duplicate. Invalid rules are logged with X's
    reason; with ``strict`` a ``RulesError`` listing them is raised after the valid ones were
    applied.
    """
    want = {earshot_tag(tag, prefix): value for tag, value in wanted.items()}
    ours = [r for r in await list_rules(client, api_url) if r.tag and r.tag.startswith(prefix)]
    report = RulesReport(kept=[r for r in ours if want.get(r.tag or "") == r.value])
    kept_tags = {r.tag for r in report.kept}
    report.deleted = [r for r in ours if r not in report.kept]
    to_add = [(tag, value) for tag, value in want.items() if tag not in kept_tags]
    if report.deleted:
        body = await _post_rules(client, api_url, {"delete": {"ids": [r.id for r in report.deleted]}})
        for error in body.get("errors") or []:
            log.warning("X did not delete a rule: %s", _error_reason(error))
    if to_add:
        body = await _post_rules(client, api_url, {"add": [{"value": v, "tag": t} for t, v in to_add]})
        report.added = [Rule(id=str(r["id"]), value=r["value"], tag=r.get("tag")) for r in body.get("data") or []]
        tag_of = {value: tag for tag, value in to_add}
        for error in body.get("errors") or []:
            value = str(error.get("value", ""))
            if "duplicate" in str(error.get("type", "")).lower() or error.get("title") == "DuplicateRule":
                # The same value already exists under another tag (another tool's rule): the
                # stream delivers its posts, but tagged with that rule, not ours.
                log.warning("X rule %r for %s already exists as rule %s", value, tag_of.get(value), error.get("id"))
                continue
            report.invalid.append((tag_of.get(value, "?"), value, _error_reason(error)))
    for tag, value, reason in report.invalid:
        log.error("X refused rule %s = %r: %s", tag, value, reason)
    log.info("X rules: %d kept, %d added, %d deleted, %d invalid", len(report.kept), len(report.added),
             len(report.deleted), len(report.invalid))
    if strict and report.invalid:
        raise RulesError("X refused these rules: " + "; ".join(
            f"{tag} = {value!r} ({reason})" for tag, value, reason in report.invalid))
    return report


# --- recent search -------------------------------------------------------------------------


@dataclass
class SearchResult:
    """Posts of one recent search, oldest first, with their authors."""

    posts: list[dict[str, Any]]
    users: dict[str, dict[str, Any]]
    newest_id: str | None  # newest post id matched (meta.newest_id of the first page)
    pages: int
    referenced: dict[str, dict[str, Any]] = field(default_factory=dict)  # includes.tweets by id
    media: dict[str, dict[str, Any]] = field(default_factory=dict)  # includes.media by key


async def search_recent(client: PoliteClient, api_url: str, query: str, *, since_id: str | None = None,
                        start_time: str | None = None, all_pages: bool = True) -> SearchResult:
    """Recent search (last 7 days) for ``query``, newer than ``since_id`` or from ``start_time``.

    Pages with ``next_token`` until the last page (or just the first one: ``all_pages=False``).
    X returns newest first; the result is sorted oldest first, for publishing in order.
    """
    params: dict[str, str] = {"query": query, "max_results": str(SEARCH_PAGE_SIZE), **FIELDS}
    if since_id:
        params["since_id"] = since_id
    elif start_time:
        params["start_time"] = start_time
    posts: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    referenced: dict[str, dict[str, Any]] = {}
    media: dict[str, dict[str, Any]] = {}
    newest_id: str | None = None
    token: str | None = None
    pages = 0
    while True:
        page_params = {**params, "next_token": token} if token else params
        page = await client.get_json(f"{api_url}{SEARCH_PATH}", params=page_params)
        pages += 1
        meta = page.get("meta") or {}
        newest_id = newest(newest_id, meta.get("newest_id"))
        for post in page.get("data") or []:
            posts[str(post["id"])] = post
            newest_id = newest(newest_id, str(post["id"]))
        users.update(users_by_id(page.get("includes")))
        referenced.update(posts_by_id(page.get("includes")))
        media.update(media_by_key(page.get("includes")))
        token = meta.get("next_token")
        if not token or not all_pages:
            break
    ordered = sorted(posts.values(), key=lambda p: _id_key(str(p["id"])))
    return SearchResult(posts=ordered, users=users, newest_id=newest_id, pages=pages, referenced=referenced,
                        media=media)


# --- the stream ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamBackoff:
    """Waits before re-opening the stream, in seconds, after X's "handling disconnections".

    Network errors (drops, stalls, refused connections): linear, +``network_step_s`` per
    failure up to ``network_cap_s``. HTTP errors (5xx, 408, 420): exponential from
    ``http_base_s``, doubling up to ``http_cap_s``. 429: exponential from ``rate_limit_base_s``
    (X: 1 minute) up to ``rate_limit_cap_s``, unless the response says how long to wait.
    """

    network_step_s: float = 0.25
    network_cap_s: float = 16.0
    http_base_s: float = 5.0
    http_cap_s: float = 320.0
    rate_limit_base_s: float = 60.0
    rate_limit_cap_s: float = 960.0  # a bit over X's 15-minute rate-limit window

    def network(self, failures: int) -> float:
        return min(self.network_step_s * failures, self.network_cap_s)

    def http(self, failures: int) -> float:
        return min(self.http_base_s * 2 ** min(failures - 1, 30), self.http_cap_s)

    def rate_limited(self, failures: int) -> float:
        return min(self.rate_limit_base_s * 2 ** min(failures - 1, 30), self.rate_limit_cap_s)


@dataclass
class _Failures:
    """Consecutive failures per kind; reset by a connection that works."""

    network: int = 0
    http: int = 0
    rate: int = 0





class _LineReader:
    """Reads the stream's lines in a task into a FIFO queue (X's advice: never stop reading).

    ``None`` in the queue marks the end of the connection; ``error`` then holds why (a
    ``httpx.ReadTimeout`` = stalled, ``httpx.RemoteProtocolError`` = dropped), or None if the
    server closed it cleanly.
    """

    def __init__(self, response: httpx.Response, maxsize: int = 10_000):
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self.error: Exception | None = None
        self._task = asyncio.create_task(self._pump(response))

    async def _pump(self, response: httpx.Response) -> None:
        try:
            async for line in response.aiter_lines():
                await self.queue.put(line)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which decides
            self.error = exc
        await self.queue.put(None)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


_DISCONNECT = object()  # a line saying X is about to close the stream


@dataclass
class _StreamState:
    newest_id: str | None  # newest post id handed out (the checkpoint)
    since_time: str | None = None  # backfill start when no post was seen yet (first connection)
    ended_why: str = ""  # why the last connection ended, for the log

    def checkpoint(self) -> dict[str, Any] | None:
        return {"newest_id": self.newest_id} if self.newest_id else None


def _search_time(when: datetime) -> str:
    """Recent search's ``start_time`` format (RFC 3339, seconds)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class XSource:
    """X as a ``LiveSource``: the filtered stream (``rules``) or recent-search polling (``searches``).

    Times are seconds. ``stall_timeout_s``: re-open the stream after this long without a byte
    (X sends a keep-alive every ~20 s). Stream items are batched up to ``batch_size`` or
    ``batch_window_s`` after the first. ``sleep`` is injectable so tests need not wait;
    ``max_polls`` ends search mode after that many rounds (None = forever).
    """

    def __init__(self, token: str, *, rules: Mapping[str, str] | None = None, searches: Sequence[str] = (),
                 api_url: str = API_URL, name: str | None = None, interval_s: float = 60.0,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0,
                 stream_backoff: StreamBackoff = StreamBackoff(), stall_timeout_s: float = 30.0,
                 batch_size: int = 100, batch_window_s: float = 1.0, sleep: Sleep = asyncio.sleep,
                 max_polls: int | None = None, request_timeout_s: float = 30.0):
        if not token or not token.strip():
            raise ValueError("X needs an app-only bearer token: set EARSHOT_X_BEARER_TOKEN")
        if bool(rules) == bool(searches):
            raise ValueError("X: give stream rules (--rule TAG=VALUE) or recent-search queries (--search Q), "
                             "one of the two")
        self._token = token  # kept out of reprs and logs; only sent in the Authorization header
        self.rules = {earshot_tag(tag): value for tag, value in (rules or {}).items()}
        self.searches = list(searches)
        self.api_url = api_url.rstrip("/")
        self.name = name or (SOURCE if self.rules else f"{SOURCE}-search")
        self.interval_s = interval_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.stream_backoff = stream_backoff
        self.stall_timeout_s = stall_timeout_s
        self.batch_size = batch_size
        self.batch_window_s = batch_window_s
        self.sleep = sleep
        self.max_polls = max_polls
        self.request_timeout_s = request_timeout_s
        self.counters = Counters()
        self._seen = RecentIds()
        self._versions = EditVersions()

    def __repr__(self) -> str:
        return f"XSource(name={self.name!r}, api_url={self.api_url!r}, rules={len(self.rules)}, " \
               f"searches={len(self.searches)})"

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(self.request_timeout_s),
        )

    async def batches(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        """Batches from the stream or the search polls, resuming after ``checkpoint``."""
        async with self._client() as http:
            polite = PoliteClient(http, counters=self.counters, backoff_base_s=self.backoff_base_s,
                                  backoff_cap_s=self.backoff_cap_s, sleep=self.sleep)
            inner = self._poll(polite, checkpoint) if self.searches else self._stream(http, polite, checkpoint)
            # aclosing: closing this generator closes the inner one (and its stream) at once.
            async with contextlib.aclosing(inner) as batches:
                async for batch in batches:
                    yield batch

    # -- shared pieces --

    def _post(self, post: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], tags: Sequence[str],
              via: str, posts: Mapping[str, Mapping[str, Any]] | None = None,
              media: Mapping[str, Mapping[str, Any]] | None = None) -> Outgoing | None:
        """The record for one post, or None if it was already handed out (or a later version
        of the same edited post was)."""
        native_id = str(post.get("id", ""))
        if not native_id or not self._seen.add(native_id):
            return None
        out = post_outgoing(post, users, tags, via, posts, media)
        if out.record is None or out.deleted:
            return out
        record = out.record
        if not self._versions.newer(record["id"], int(record["raw"].get("edit_version") or 1)):
            return None  # an earlier version arriving late: the later one is in the index already
        return out

    def _chunks(self, items: list[tuple[str, Outgoing]]) -> list[list[tuple[str, Outgoing]]]:
        return [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]

    async def _search_since(self, polite: PoliteClient, query: str, since_id: str | None,
                            start_time: str | None = None) -> SearchResult:
        """Recent search for ``query`` after ``since_id`` (or ``start_time``), every page.

        With neither, only the newest page: a first start does not page back seven days. X
        refuses a ``since_id`` older than the search window (400); then the gap cannot be
        recovered, so it is logged and the newest page is taken.
        """
        if since_id is None and start_time is None:
            return await search_recent(polite, self.api_url, query, all_pages=False)
        try:
            return await search_recent(polite, self.api_url, query, since_id=since_id, start_time=start_time)
        except SourceError as exc:
            if exc.status != 400:
                raise
            log.warning("X recent search for %r since %s refused (%s): posts in between are not recovered",
                        query, since_id or start_time, exc)
            return await search_recent(polite, self.api_url, query, all_pages=False)

    # -- search mode --

    async def _poll(self, polite: PoliteClient, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        since: dict[str, str] = dict((checkpoint or {}).get("since_ids") or {})
        polls = 0
        while True:
            for query in self.searches:
                result = await self._search_since(polite, query, since.get(query))
                items = [(str(p["id"]), out) for p in result.posts
                         if (out := self._post(p, result.users, (), "search", result.referenced, result.media))
                         is not None]
                for chunk in self._chunks(items):
                    since[query] = newest(since.get(query), chunk[-1][0]) or chunk[-1][0]  # oldest first
                    yield Batch(items=[out for _, out in chunk], checkpoint={"since_ids": dict(since)})
                if result.newest_id and newest(since.get(query), result.newest_id) != since.get(query):
                    # Nothing new to publish (all seen), but the cursor still moves on.
                    since[query] = result.newest_id
                    yield Batch(items=[], checkpoint={"since_ids": dict(since)})
            polls += 1
            if self.max_polls is not None and polls >= self.max_polls:
                return
            await self.sleep(self.interval_s)

    # -- stream mode --

    async def _stream(self, http: httpx.AsyncClient, polite: PoliteClient,
                      checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        """Sync the rules, then hold the stream open, re-opening it with X's back-off forever."""
        await sync_rules(polite, self.api_url, self.rules)
        state = _StreamState(newest_id=(checkpoint or {}).get("newest_id"))
        failures = _Failures()
        timeout = httpx.Timeout(self.request_timeout_s, read=self.stall_timeout_s)  # read: stall detection
        for attempt in itertools.count():
            if attempt:
                self.counters.reconnects += 1
            self.counters.requests += 1
            try:
                async with http.stream("GET", f"{self.api_url}{STREAM_PATH}", params=FIELDS,
                                       timeout=timeout) as response:
                    if response.status_code != 200:
                        delay, why = await self._refused(response, failures)
                    else:
                        async with contextlib.aclosing(self._connected(polite, response, state, failures)) as got:
                            async for batch in got:
                                yield batch
                        failures.network += 1  # closed by X: reconnect soon, as after a drop
                        delay, why = self.stream_backoff.network(failures.network), state.ended_why
            except httpx.TransportError as exc:
                failures.network += 1
                delay = self.stream_backoff.network(failures.network)
                why = f"no data for {self.stall_timeout_s:g} s" if isinstance(exc, httpx.ReadTimeout) \
                    else f"stream failed: {exc!r}"
            log.warning("X stream closed (%s); reconnecting in %.2f s", why, delay)
            if delay > 0:
                await self.sleep(delay)

    async def _connected(self, polite: PoliteClient, response: httpx.Response, state: _StreamState,
                         failures: _Failures) -> AsyncIterator[Batch]:
        """Batches of one open connection: the gap before it (recent search), then its lines.

        Ends when X closes the stream or says it will; raises the ``httpx.TransportError`` of a
        dropped or stalled connection.
        """
        failures.http = failures.rate = 0
        # Connected first, backfilled second: posts of the gap come from search while newer
        # ones wait in the stream; the overlap is dropped by id.
        for batch in await self._backfill(polite, state):
            yield batch
        if state.since_time is None:  # lets a reconnect backfill even if no post arrived yet
            state.since_time = _search_time(datetime.now(timezone.utc) - timedelta(seconds=5))
        reader = _LineReader(response)
        try:
            while True:
                items, ended, state.ended_why = await self._collect(reader, state, failures)
                if items:
                    yield Batch(items=items, checkpoint=state.checkpoint())
                if ended:
                    break
        finally:
            await reader.close()
        if reader.error is not None:
            raise reader.error

    async def _refused(self, response: httpx.Response, failures: _Failures) -> tuple[float, str]:
        """The wait before retrying a refused stream connection, or ``SourceError`` if retrying is futile."""
        body = (await response.aread()).decode("utf-8", "replace")
        status = response.status_code
        if status == 429:
            failures.rate += 1
            self.counters.rate_limited += 1
            hint = retry_after_s(response.headers.get("retry-after"), datetime.now(timezone.utc))
            if hint is None:
                hint = reset_delay_s(response.headers.get("x-rate-limit-reset"), time.time())
            delay = hint if hint is not None else self.stream_backoff.rate_limited(failures.rate)
            delay = min(delay, self.stream_backoff.rate_limit_cap_s)
            self.counters.throttled_s += delay
            return delay, f"HTTP 429: {body[:200]}"
        if status in (408, 420) or status >= 500:
            failures.http += 1
            self.counters.errors += 1
            return self.stream_backoff.http(failures.http), f"HTTP {status}: {body[:200]}"
        hint = " (check EARSHOT_X_BEARER_TOKEN and the app's access level)" if status in (401, 403) else ""
        raise SourceError(status, f"{self.api_url}{STREAM_PATH}{hint}", body)

    async def _collect(self, reader: _LineReader, state: _StreamState,
                       failures: _Failures) -> tuple[list[Outgoing], bool, str]:
        """Stream items until a full batch, ``batch_window_s`` after the first, or the end.

        Returns (items, the connection ended, why it ended).
        """
        loop = asyncio.get_running_loop()
        items: list[Outgoing] = []
        deadline: float | None = None
        while len(items) < self.batch_size:
            wait = None if deadline is None else deadline - loop.time()
            if wait is not None and wait <= 0:
                break
            try:
                line = await asyncio.wait_for(reader.queue.get(), wait)
            except TimeoutError:
                break
            if line is None:
                return items, True, "connection closed"
            failures.network = 0  # bytes arrived: the connection works
            handled = self._handle_line(line, state)
            if handled is _DISCONNECT:
                return items, True, "X sent a disconnect notice"
            if handled:
                items.extend(handled)
                deadline = deadline or loop.time() + self.batch_window_s
        return items, False, ""

    def _handle_line(self, line: str, state: _StreamState) -> list[Outgoing] | object:
        """Records for one stream line: a post, a deletion, nothing (keep-alive, notice) or ``_DISCONNECT``."""
        if not line.strip():
            return []  # keep-alive ("\r\n" about every 20 s)
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return [_unparsed(line)]
        if not isinstance(message, dict):
            return [_unparsed(line)]
        deletion = deletion_outgoing(message)
        if deletion is not None:
            return [deletion]
        post = message.get("data")
        if isinstance(post, dict) and "id" in post and "text" in post:
            return self._stream_post(message, post, state)
        if message.get("errors"):
            return self._error_line(message["errors"])
        log.debug("X stream message ignored: %s", line[:200])  # other notices (withheld, ...)
        return []

    def _stream_post(self, message: Mapping[str, Any], post: Mapping[str, Any],
                     state: _StreamState) -> list[Outgoing]:
        tags = [str(r.get("tag")) for r in message.get("matching_rules") or [] if isinstance(r, dict) and r.get("tag")]
        native_id = str(post["id"])
        try:
            state.newest_id = newest(state.newest_id, native_id)
        except ValueError:
            return [_unparsed(json.dumps(message, ensure_ascii=False), native_id)]
        if tags and not any(t.startswith(TAG_PREFIX) for t in tags):
            # The app's stream carries every rule on it; posts matching only other tools'
            # rules are theirs, not ours.
            return []
        includes = message.get("includes")
        out = self._post(post, users_by_id(includes), tags, "stream", posts_by_id(includes), media_by_key(includes))
        return [out] if out is not None else []

    @staticmethod
    def _error_line(errors: Iterable[Any]) -> list[Outgoing] | object:
        """An ``{"errors": [...]}`` line: a disconnect notice ends the connection, others are logged."""
        disconnect = False
        for error in errors:
            if not isinstance(error, dict):
                continue
            disconnect = disconnect or bool(error.get("disconnect_type")) or "disconnect" in str(error.get("title", ""))
            log.warning("X stream error: %s: %s", error.get("title"), error.get("detail") or error)
        return _DISCONNECT if disconnect else []

    async def _backfill(self, polite: PoliteClient, state: _StreamState) -> list[Batch]:
        """Posts of the gap before this connection, from recent search per rule, oldest first."""
        if state.newest_id is None and state.since_time is None:
            return []  # first start without a checkpoint: nothing to recover
        posts: dict[str, dict[str, Any]] = {}
        tags: dict[str, list[str]] = {}
        users: dict[str, dict[str, Any]] = {}
        referenced: dict[str, dict[str, Any]] = {}
        media: dict[str, dict[str, Any]] = {}
        for tag, value in self.rules.items():
            try:
                result = await self._search_since(polite, value, state.newest_id,
                                                  None if state.newest_id else state.since_time)
            except SourceError as exc:  # keep streaming; the gap is logged
                log.warning("X backfill for rule %s failed: %s", tag, exc)
                continue
            users.update(result.users)
            referenced.update(result.referenced)
            media.update(result.media)
            for post in result.posts:
                posts[str(post["id"])] = post
                tags.setdefault(str(post["id"]), []).append(tag)
        ordered = sorted(posts, key=_id_key)
        items = [(pid, out) for pid in ordered if (out := self._post(posts[pid], users, tags[pid], "backfill", referenced, media))]
        batches = []
        for chunk in self._chunks(items):
            state.newest_id = newest(state.newest_id, chunk[-1][0])
            batches.append(Batch(items=[out for _, out in chunk], checkpoint=state.checkpoint()))
        if ordered:
            state.newest_id = newest(state.newest_id, ordered[-1])
        log.info("X backfill: %d posts found, %d new", len(ordered), len(items))
        return batches


# --- command line --------------------------------------------------------------------------


def parse_rule(text: str) -> tuple[str, str]:
    """``TAG=VALUE`` (the first ``=`` splits) as (tag, value)."""
    tag, sep, value = text.partition("=")
    if not sep or not tag.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected TAG=VALUE, got {text!r}")
    return tag.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rule", action="append", type=parse_rule, default=[], metavar="TAG=VALUE",
                        help=f"filtered-stream rule (repeatable); tags get the {TAG_PREFIX!r} prefix, and "
                             "earshot rules not given here are deleted")
    parser.add_argument("--search", action="append", default=[], metavar="QUERY",
                        help="poll recent search for QUERY (repeatable) instead of the stream")
    parser.add_argument("--api-url", default=API_URL, help=f"X API base URL (default {API_URL})")
    parser.add_argument("--interval", type=float, default=None,
                        help="seconds between recent-search polls (default: EARSHOT_CONNECTOR_POLL_S)")
    parser.add_argument("--stall-timeout", type=float, default=30.0,
                        help="re-open the stream after this many seconds without data or keep-alive")
    parser.add_argument("--name", default=None, help="connector (and checkpoint) name; default x or x-search")


def build(args: argparse.Namespace, settings: Any) -> XSource:
    """The source ``earshot connect x`` runs; the token comes from the settings only."""
    secret = settings.x_bearer_token
    token = secret.get_secret_value() if secret is not None else ""
    if not token.strip():
        raise ValueError("X needs an app-only bearer token: set EARSHOT_X_BEARER_TOKEN (environment or .env)")
    rules = dict(args.rule or [])
    if len(rules) != len(args.rule or []):
        raise ValueError("X: each --rule TAG must be unique")
    return XSource(token, rules=rules, searches=args.search or [], api_url=args.api_url, name=args.name,
                   interval_s=args.interval or settings.connector_poll_s,
                   backoff_base_s=settings.connector_backoff_base_s,
                   backoff_cap_s=settings.connector_backoff_cap_s,
                   stall_timeout_s=getattr(args, "stall_timeout", 30.0))
