"""Mastodon hashtag and public timelines (any instance) as a live source: polling or streaming.

Platform documents this follows (docs.joinmastodon.org):
- Timelines, https://docs.joinmastodon.org/methods/timelines/: ``GET /api/v1/timelines/tag/:hashtag``
  and ``GET /api/v1/timelines/public``, both with ``local``, ``max_id``, ``since_id``, ``min_id``
  and ``limit`` (default 20, at most 40); results newest first.
- Paging, https://docs.joinmastodon.org/api/guidelines/#pagination: the ``Link`` header's
  ``rel="next"`` (``max_id``: older) and ``rel="prev"`` (``min_id``: newer) pages. ``min_id``
  returns the statuses *immediately* newer than the id (a gapless walk forward), ``since_id``
  the *newest* ones (a gap if more than a page arrived). Ids are strings; they are decimal
  64-bit snowflakes, so a longer id is newer and equal lengths compare as text.
- Streaming, https://docs.joinmastodon.org/methods/streaming/: server-sent events from
  ``GET /api/v1/streaming/hashtag?tag=`` (``/hashtag/local``) and ``/api/v1/streaming/public``
  (``/public/local``); ``event: update`` (data: Status JSON), ``event: status.update`` (an
  edit), ``event: delete`` (data: the status id), ``:thump`` heartbeat comments. The stream
  has no replay. The streaming server may live on another host: ``GET /api/v2/instance``
  ``configuration.urls.streaming`` (``/api/v1/instance`` ``urls.streaming_api`` before 4.0).
- Entities, https://docs.joinmastodon.org/entities/Status/ and .../entities/Account/.
- Rate limits, https://docs.joinmastodon.org/api/rate-limits/: 300 requests per 5 minutes,
  reported in ``X-RateLimit-Remaining``/``-Reset`` (an ISO date), which ``PoliteClient`` honours.

How it resumes (checkpoint ``{"since_ids": {"<timeline>": "<newest status id>"}}``):
- polling: a first start reads the newest page; later polls walk forward from the checkpoint
  with ``min_id`` (the Link header's ``prev`` page) until a page comes back empty, so nothing
  newer than the checkpoint is skipped, and publish each page oldest first.
- streaming: one connection per timeline; each (re)connection first backfills the gap from the
  checkpoint through the timeline API, exactly as a poll does, then reads the stream; statuses
  seen both ways are published once. Dropped connections are re-opened with backoff.

Statuses are per instance (the same post has another id on another instance), so mention ids
are ``mastodon:<instance host>:<status id>``. Remote statuses can reach an instance late, and
their ids may be derived from their (earlier) publication time: such a status can land below a
checkpoint a poll already passed. The stream delivers them; polling can miss them.

The access token (``EARSHOT_MASTODON_ACCESS_TOKEN``, optional) is sent only as a Bearer header,
never logged or checkpointed.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from connectors.base import Batch, Outgoing
from connectors.common import RecentIds, settle_language, utc_iso
from connectors.polite import Counters, PoliteClient, SourceError
from connectors.sse import SSEParser
from pipeline.worker.retry import backoff_delay
from pipeline.alerts.webhooks import retry_after_s

log = logging.getLogger(__name__)

SOURCE = "mastodon"
DEFAULT_INSTANCE = "https://mastodon.social"
PAGE_LIMIT = 40  # the most statuses one timeline request returns
USER_AGENT = "earshot/0.1 (social listening)"
_HASHTAG = re.compile(r"^\w+$")  # Mastodon hashtags: letters, digits, underscore (any script)

Sleep = Callable[[float], Awaitable[Any]]


# --- What to follow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """One timeline: its checkpoint key, REST path and parameters, and its stream."""

    key: str
    path: str
    params: tuple[tuple[str, str], ...]
    stream_path: str
    stream_params: tuple[tuple[str, str], ...]

    @classmethod
    def hashtag(cls, tag: str, local: bool = False) -> "Timeline":
        tag = hashtag_name(tag)
        return cls(key=f"tag:{tag}" + (":local" if local else ""),
                   path=f"/api/v1/timelines/tag/{quote(tag, safe='')}",
                   params=(("local", "true"),) if local else (),
                   stream_path="/api/v1/streaming/hashtag" + ("/local" if local else ""),
                   stream_params=(("tag", tag),))

    @classmethod
    def public(cls, local: bool = False) -> "Timeline":
        return cls(key="public" + (":local" if local else ""), path="/api/v1/timelines/public",
                   params=(("local", "true"),) if local else (),
                   stream_path="/api/v1/streaming/public" + ("/local" if local else ""), stream_params=())


def hashtag_name(value: str) -> str:
    """``"#Python"`` or ``"Python"`` -> ``"Python"``; ValueError if it cannot be a hashtag."""
    name = value.strip().lstrip("#")
    if not _HASHTAG.match(name):
        raise ValueError(f"not a hashtag: {value!r}")
    return name


def instance_base(value: str) -> str:
    """``"mastodon.social"`` or ``"https://mastodon.social/"`` -> ``"https://mastodon.social"``."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an instance URL: {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def instance_host(base_url: str) -> str:
    """The host that scopes status ids: ``https://Mastodon.Social`` -> ``mastodon.social``."""
    return (urlsplit(base_url).hostname or base_url).lower()


# --- Status ids -------------------------------------------------------------------------------


def id_key(status_id: str) -> tuple[int, str]:
    """Sort key of a status id: decimal snowflakes, so length first, then text, is numeric order."""
    return (len(status_id), status_id)


def newer(a: str | None, b: str | None) -> str | None:
    """The newer of two status ids (None = unknown)."""
    if a is None or b is None:
        return a if b is None else b
    return a if id_key(a) >= id_key(b) else b





# --- Normalisation ----------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """Text of Mastodon's status HTML: ``<br>`` is a line break, ``</p>`` ends a paragraph.

    Mastodon splits long links into "invisible" and "ellipsis" spans for display; their text
    together is the whole URL, which is what we want to read, so every span's text is kept.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # &amp;, &#39;, &nbsp; ... unescaped
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # <br/>

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of a status's ``content``: tags stripped, entities unescaped, breaks kept."""
    parser = _TextExtractor()
    parser.feed(html or "")
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]+\n", "\n", text)  # trailing blanks before a break
    text = re.sub(r"\n{3,}", "\n\n", text)  # at most one empty line between paragraphs
    return text.strip()


def _count(value: Any) -> int:
    """A count >= 0 (0 when missing or unreadable)."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _followers(value: Any) -> int | None:
    """Followers, or None where the server hides them (some servers answer -1)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None





def mention_id(host: str, status_id: Any) -> str:
    return f"{SOURCE}:{host}:{status_id}"


def _status_text(status: dict[str, Any]) -> str:
    """Everything a status says, for reading and matching: its content warning (marked
    ``[CW: ...]``, first, as readers see it), the content, the poll's options (``[poll: a | b]``)
    and the media descriptions (``[image: ...]``). Brands named only in a CW or a poll count."""
    parts = []
    spoiler = (status.get("spoiler_text") or "").strip()
    if spoiler:
        parts.append(f"[CW: {spoiler}]")
    content = html_to_text(status.get("content") or "")
    if content:
        parts.append(content)
    poll = status.get("poll") if isinstance(status.get("poll"), dict) else {}
    options = [str(o["title"]).strip() for o in poll.get("options") or []
               if isinstance(o, dict) and isinstance(o.get("title"), str) and o["title"].strip()]
    if options:
        parts.append("[poll: " + " | ".join(options) + "]")
    for media in status.get("media_attachments") or []:
        if isinstance(media, dict) and isinstance(media.get("description"), str) and media["description"].strip():
            kind = media.get("type") if media.get("type") in ("video", "gifv", "audio") else "image"
            parts.append(f"[{kind}: {media['description'].strip()}]")
    return "\n".join(parts)


def status_record(status: dict[str, Any], host: str, *, timeline: str | None = None,
                  via: str = "timeline") -> dict[str, Any] | None:
    """The Mention-shaped dict of a Status (a reblog: of the status it boosts), or None.

    None when there is nothing to read (no text, content warning or media description).
    ``timeline``: the key of the timeline it came from; ``via``: timeline, stream or backfill.
    """
    inner = status.get("reblog") if isinstance(status.get("reblog"), dict) else None
    post = inner or status
    text = _status_text(post)
    if not text or post.get("id") is None:
        return None
    account = post.get("account") if isinstance(post.get("account"), dict) else {}
    acct = account.get("acct") or account.get("username")
    display_name = account.get("display_name")
    language = post.get("language")
    reply_to = post.get("in_reply_to_id")
    raw: dict[str, Any] = {
        "instance": host,
        "status_id": str(post["id"]),
        "uri": post.get("uri"),
        "visibility": post.get("visibility"),
        "sensitive": bool(post.get("sensitive", False)),
        "spoiler_text": post.get("spoiler_text") or None,
        "tags": [str(t["name"]) for t in post.get("tags") or [] if isinstance(t, dict) and t.get("name")],
        "mentions": [str(m["acct"]) for m in post.get("mentions") or [] if isinstance(m, dict) and m.get("acct")],
        "media_count": len(post.get("media_attachments") or []),
        "edited_at": post.get("edited_at"),
        "account_id": account.get("id"),
        "account_url": account.get("url"),
        "account_created_at": account.get("created_at"),
        "account_statuses_count": account.get("statuses_count"),
        "account_following_count": account.get("following_count"),
        "account_bot": bool(account.get("bot", False)),
        "in_reply_to_account_id": post.get("in_reply_to_account_id"),
        "via": via,
    }
    if timeline:
        raw["timeline"] = timeline
    if inner is not None:
        booster = status.get("account") if isinstance(status.get("account"), dict) else {}
        raw["reblogged_by"] = booster.get("acct")
        raw["reblog_status_id"] = str(status.get("id"))
    record: dict[str, Any] = {
        "id": mention_id(host, post["id"]),
        "source": SOURCE,
        "url": post.get("url") or post.get("uri"),
        "author": {
            "handle": str(acct) if acct else None,
            "display_name": str(display_name)[:512] if display_name else None,  # the schema's limit
            "followers": _followers(account.get("followers_count")),
            "verified": False,  # Mastodon has no verified accounts (profile link checks are not that)
        },
        "text": text,
        "lang": settle_language(language if isinstance(language, str) and 0 < len(language) <= 16 else None,
                                text, raw),
        "metrics": {
            "likes": _count(post.get("favourites_count")),
            "shares": _count(post.get("reblogs_count")),
            "replies": _count(post.get("replies_count")),
        },
        "in_reply_to": mention_id(host, reply_to) if reply_to else None,
        "raw": raw,
    }
    created_at = utc_iso(post.get("created_at"))
    if created_at is not None:  # absent: the runner stamps the publication time instead
        record["created_at"] = created_at
    return record


def _unparsed(data: str, host: str, status_id: Any = None) -> Outgoing:
    """Input we could not read: published as-is so the pipeline dead-letters it with a reason."""
    key = mention_id(host, status_id) if status_id is not None else f"{SOURCE}:{host}:unparsed"
    return Outgoing(key=key, unparsed=data.encode("utf-8"))


# --- Timeline API -----------------------------------------------------------------------------


def _link_min_id(response: httpx.Response) -> str | None:
    """``min_id`` of the Link header's ``prev`` page (the page just newer than this one)."""
    prev = response.links.get("prev") or {}
    values = parse_qs(urlsplit(prev.get("url", "")).query).get("min_id")
    return values[0] if values else None


def _statuses(response: httpx.Response, url: str) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        raise SourceError(response.status_code, url, f"not JSON: {response.text}") from None
    if not isinstance(body, list):
        raise SourceError(response.status_code, url, f"not a list of statuses: {response.text}")
    return [s for s in body if isinstance(s, dict) and s.get("id") is not None]


async def timeline_pages(polite: PoliteClient, base_url: str, timeline: Timeline, since_id: str | None, *,
                         limit: int = PAGE_LIMIT, max_pages: int = 50) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of statuses newer than ``since_id``, each oldest first, oldest page first.

    Without ``since_id`` (a first start): the newest page only. With it: forward with
    ``min_id`` (the Link header's ``prev`` page, else the newest id of the page) until a page
    comes back empty, or ``max_pages`` were read (the rest waits for the next call: no gap).
    """
    url = f"{base_url}{timeline.path}"
    cursor = since_id
    for _ in range(max_pages if since_id is not None else 1):
        params = dict(timeline.params, limit=str(limit))
        if cursor is not None:
            params["min_id"] = cursor
        response = await polite.request("GET", url, params=params)
        page = _statuses(response, url)
        if not page:
            return
        page.sort(key=lambda s: id_key(str(s["id"])))
        yield page
        if cursor is None:
            return
        following = newer(_link_min_id(response), str(page[-1]["id"]))
        if following is None or id_key(following) <= id_key(cursor):
            return  # no progress: never loop on one page
        cursor = following
    if since_id is not None:
        log.info("mastodon: %s: %d pages read; the rest follows on the next round", timeline.key, max_pages)


async def discover_streaming_url(polite: PoliteClient, base_url: str) -> str:
    """The streaming server's base URL (https), from the instance's metadata; else the instance.

    ``/api/v2/instance`` gives ``configuration.urls.streaming`` (``wss://...``), servers before
    4.0 ``/api/v1/instance`` ``urls.streaming_api``; SSE uses the same host over http(s).
    """
    for path, keys in (("/api/v2/instance", ("configuration", "urls", "streaming")),
                       ("/api/v1/instance", ("urls", "streaming_api"))):
        try:
            body: Any = await polite.get_json(f"{base_url}{path}")
        except (SourceError, ValueError) as exc:
            log.debug("mastodon: %s unavailable (%s)", path, exc)
            continue
        for key in keys:
            body = body.get(key) if isinstance(body, dict) else None
        if isinstance(body, str) and body:
            return re.sub(r"^ws(s?)://", r"http\1://", body.rstrip("/"))
    return base_url


# --- The source -------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One thing a stream follower hands to the batcher."""

    timeline: str
    status_id: str | None = None  # advances the timeline's checkpoint (None: an edit or a deletion)
    out: Outgoing | None = None
    once: bool = True  # publish only if not handed out before (False: edits and deletions)


@dataclass
class _Failed:
    """A follower stopped for good (credentials refused, unknown timeline): the source stops too."""

    error: Exception


class _Attempts:
    """Consecutive failed connections of one stream; reset once the stream delivers anything."""

    def __init__(self) -> None:
        self.count = 0


class MastodonSource:
    """Mastodon timelines of one instance as a ``LiveSource``: polled, or streamed (``stream=True``).

    Seconds throughout. ``interval_s``: between polls. ``stall_timeout_s``: re-open a stream
    silent this long (Mastodon sends a heartbeat every ~15 s). Stream items are batched up to
    ``batch_size`` or ``batch_window_s`` after the first. ``max_polls`` ends polling after that
    many rounds (None = forever). ``sleep`` serves every wait (poll interval, backoff, rate
    limits), so tests need not wait.
    """

    def __init__(self, instance_url: str, timelines: Iterable[Timeline], *, token: str | None = None,
                 stream: bool = False, name: str | None = None, interval_s: float = 60.0,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0, stall_timeout_s: float = 60.0,
                 batch_size: int = 100, batch_window_s: float = 1.0, page_limit: int = PAGE_LIMIT,
                 max_pages: int = 50, max_polls: int | None = None, streaming_url: str | None = None,
                 request_timeout_s: float = 30.0, sleep: Sleep = asyncio.sleep):
        self.base_url = instance_base(instance_url)
        self.host = instance_host(self.base_url)
        self.timelines = list(dict.fromkeys(timelines))
        if not self.timelines:
            raise ValueError("mastodon: give at least one --hashtag or --public")
        self._token = token or None  # only ever sent in the Authorization header
        self.stream = stream
        self.name = name or f"{SOURCE}-{self.host}"
        self.interval_s = interval_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.stall_timeout_s = stall_timeout_s
        self.batch_size = max(1, batch_size)
        self.batch_window_s = batch_window_s
        self.page_limit = max(1, min(page_limit, PAGE_LIMIT))
        self.max_pages = max(1, max_pages)
        self.max_polls = max_polls
        self.streaming_url = instance_base(streaming_url) if streaming_url else None
        self.request_timeout_s = request_timeout_s
        self.sleep = sleep
        self.counters = Counters()
        self._seen = RecentIds()

    def __repr__(self) -> str:
        return (f"MastodonSource(name={self.name!r}, instance={self.base_url!r}, "
                f"timelines={[t.key for t in self.timelines]}, stream={self.stream})")

    def _client(self) -> httpx.AsyncClient:
        headers = {"User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        # Redirects are followed: some instances move their streaming endpoint elsewhere.
        return httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.request_timeout_s),
                                 follow_redirects=True)

    async def batches(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        """Batches of new statuses (and, streaming, deletions), resuming after ``checkpoint``."""
        since = _load_since(checkpoint, self.timelines)
        async with self._client() as http:
            polite = PoliteClient(http, counters=self.counters, backoff_base_s=self.backoff_base_s,
                                  backoff_cap_s=self.backoff_cap_s, sleep=self.sleep)
            inner = self._streaming(http, polite, since) if self.stream else self._polling(polite, since)
            # aclosing: closing this generator closes the inner one (and its connections) at once.
            async with contextlib.aclosing(inner) as batches:
                async for batch in batches:
                    yield batch

    def _out(self, status: dict[str, Any], timeline: str, via: str) -> Outgoing | None:
        """The record of one status, unparsed if it cannot be normalised, None if it has no text."""
        try:
            record = status_record(status, self.host, timeline=timeline, via=via)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("mastodon status %s not normalised (%r): dead-lettered", status.get("id"), exc)
            return _unparsed(json.dumps(status, ensure_ascii=False), self.host, status.get("id"))
        return Outgoing(key=record["id"], record=record) if record is not None else None

    # -- polling --

    async def _polling(self, polite: PoliteClient, since: dict[str, str]) -> AsyncIterator[Batch]:
        for polls in itertools.count(1):
            for timeline in self.timelines:
                async with contextlib.aclosing(self._poll_timeline(polite, timeline, since)) as batches:
                    async for batch in batches:
                        yield batch
            if self.max_polls is not None and polls >= self.max_polls:
                return
            await self.sleep(self.interval_s)

    async def _poll_timeline(self, polite: PoliteClient, timeline: Timeline,
                             since: dict[str, str]) -> AsyncIterator[Batch]:
        """One batch per page newer than the checkpoint (oldest first), each with its checkpoint."""
        pages = timeline_pages(polite, self.base_url, timeline, since.get(timeline.key),
                               limit=self.page_limit, max_pages=self.max_pages)
        try:
            async with contextlib.aclosing(pages) as each:
                async for page in each:
                    items = [out for status in page if (out := self._out(status, timeline.key, "timeline"))
                             and (out.unparsed is not None or self._seen.add(out.key))]
                    since[timeline.key] = newer(since.get(timeline.key), str(page[-1]["id"])) or ""
                    yield Batch(items=items, checkpoint=_dump_since(since))
        except SourceError as exc:
            if exc.status in (401, 403):
                raise  # every request would be refused the same way: stop with the reason
            # An unknown or refused timeline: the others go on; this one is tried again next poll.
            log.error("%s: %s: %s", self.name, timeline.key, exc)

    # -- streaming --

    async def _streaming(self, http: httpx.AsyncClient, polite: PoliteClient,
                         since: dict[str, str]) -> AsyncIterator[Batch]:
        """One follower task per timeline feeds a queue; this batches what they hand over."""
        stream_base = self.streaming_url or await discover_streaming_url(polite, self.base_url)
        cursors = dict(since)  # newest id handed to the queue per timeline: where a backfill starts
        queue: asyncio.Queue[_Entry | _Failed] = asyncio.Queue(maxsize=10_000)
        tasks = [asyncio.create_task(self._follow(http, polite, stream_base, t, cursors, queue))
                 for t in self.timelines]
        try:
            while True:
                entries = await self._collect(queue)
                items: list[Outgoing] = []
                for entry in entries:
                    if isinstance(entry, _Failed):
                        raise entry.error
                    if entry.status_id is not None:
                        since[entry.timeline] = newer(since.get(entry.timeline), entry.status_id) or ""
                    out = entry.out
                    if out is not None and (not entry.once or out.unparsed is not None or self._seen.add(out.key)):
                        items.append(out)
                yield Batch(items=items, checkpoint=_dump_since(since) if since else None)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _collect(self, queue: asyncio.Queue[_Entry | _Failed]) -> list[_Entry | _Failed]:
        """Entries until a full batch or ``batch_window_s`` after the first."""
        loop = asyncio.get_running_loop()
        entries = [await queue.get()]
        deadline = loop.time() + self.batch_window_s
        while len(entries) < self.batch_size and not isinstance(entries[-1], _Failed):
            wait = deadline - loop.time()
            if wait <= 0:
                break
            try:
                entries.append(await asyncio.wait_for(queue.get(), wait))
            except TimeoutError:
                break
        return entries

    async def _follow(self, http: httpx.AsyncClient, polite: PoliteClient, stream_base: str, timeline: Timeline,
                      cursors: dict[str, str], queue: asyncio.Queue[_Entry | _Failed]) -> None:
        """Hold one timeline's stream open forever: connect, backfill the gap, read; on a drop, again."""
        attempts = _Attempts()
        url = f"{stream_base}{timeline.stream_path}"
        timeout = httpx.Timeout(self.request_timeout_s, read=self.stall_timeout_s)  # read: stall detection
        try:
            for attempt in itertools.count():
                if attempt:
                    self.counters.reconnects += 1
                self.counters.requests += 1
                try:
                    async with http.stream("GET", url, params=dict(timeline.stream_params), timeout=timeout,
                                           headers={"Accept": "text/event-stream"}) as response:
                        if response.status_code != 200:
                            delay = await self._refused(response, url, attempts)
                        else:
                            # Connected first, backfilled second: statuses posted meanwhile wait in
                            # the stream, and the overlap is dropped by id.
                            await self._backfill(polite, timeline, cursors, queue)
                            await self._read(response, timeline, cursors, queue, attempts)
                            attempts.count += 1  # closed by the server: reconnect, as after a drop
                            delay = self._backoff(attempts.count)
                            log.warning("mastodon stream %s closed; reconnecting in %.1f s", timeline.key, delay)
                except httpx.TransportError as exc:
                    attempts.count += 1
                    self.counters.errors += 1
                    delay = self._backoff(attempts.count)
                    log.warning("mastodon stream %s failed (%r); reconnecting in %.1f s", timeline.key, exc, delay)
                await self.sleep(delay)
        except Exception as exc:  # noqa: BLE001 - handed to the batcher, which raises it
            await queue.put(_Failed(exc))

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)

    async def _refused(self, response: httpx.Response, url: str, attempts: _Attempts) -> float:
        """Seconds to wait before retrying a refused stream, or ``SourceError`` if retrying is futile."""
        body = (await response.aread()).decode("utf-8", "replace")
        status = response.status_code
        attempts.count += 1
        if status == 429:
            self.counters.rate_limited += 1
            wait = retry_after_s(response.headers.get("retry-after"), datetime.now(timezone.utc))
            wait = min(wait if wait is not None else self._backoff(attempts.count), self.backoff_cap_s)
            self.counters.throttled_s += wait
            return wait
        if status == 408 or status >= 500:
            self.counters.errors += 1
            return self._backoff(attempts.count)
        hint = " (set EARSHOT_MASTODON_ACCESS_TOKEN: this instance wants a token)" if status in (401, 403) else ""
        raise SourceError(status, f"{url}{hint}", body)

    async def _backfill(self, polite: PoliteClient, timeline: Timeline, cursors: dict[str, str],
                        queue: asyncio.Queue[_Entry | _Failed]) -> None:
        """Statuses the stream missed (before this connection, or before a first start's stream)."""
        pages = timeline_pages(polite, self.base_url, timeline, cursors.get(timeline.key),
                               limit=self.page_limit, max_pages=self.max_pages)
        found = 0
        async with contextlib.aclosing(pages) as each:
            async for page in each:
                for status in page:
                    status_id = str(status["id"])
                    await queue.put(_Entry(timeline.key, status_id, self._out(status, timeline.key, "backfill")))
                    cursors[timeline.key] = newer(cursors.get(timeline.key), status_id) or status_id
                    found += 1
        if found:
            log.info("mastodon stream %s: %d statuses backfilled", timeline.key, found)

    async def _read(self, response: httpx.Response, timeline: Timeline, cursors: dict[str, str],
                    queue: asyncio.Queue[_Entry | _Failed], attempts: _Attempts) -> None:
        """Hand over the stream's events until it ends; raises the error of a dropped stream."""
        parser = SSEParser()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # SSE is always UTF-8
        async for chunk in response.aiter_bytes():
            attempts.count = 0  # bytes arrived (an event or a heartbeat): the connection works
            for event in parser.feed(decoder.decode(chunk)):
                entry = self._event_entry(event.event, event.data, timeline)
                if entry is None:
                    continue
                if entry.status_id is not None:
                    cursors[timeline.key] = newer(cursors.get(timeline.key), entry.status_id) or entry.status_id
                await queue.put(entry)

    def _event_entry(self, kind: str, data: str, timeline: Timeline) -> _Entry | None:
        """What one stream event means: a status, an edit, a deletion, or nothing we follow."""
        if kind == "delete":
            status_id = data.strip()
            if not status_id:
                return None
            return _Entry(timeline.key, None, Outgoing.deletion(mention_id(self.host, status_id), SOURCE), once=False)
        if kind not in ("update", "status.update"):
            return None  # notifications, filters_changed, announcements: not ours
        try:
            status = json.loads(data)
        except json.JSONDecodeError:
            return _Entry(timeline.key, None, _unparsed(data, self.host))
        if not isinstance(status, dict) or status.get("id") is None:
            return _Entry(timeline.key, None, _unparsed(data, self.host))
        out = self._out(status, timeline.key, "stream")
        if kind == "status.update":
            return _Entry(timeline.key, None, out, once=False)  # an edit: publish the new version again
        return _Entry(timeline.key, str(status["id"]), out)


def _load_since(checkpoint: dict[str, Any] | None, timelines: list[Timeline]) -> dict[str, str]:
    """The checkpointed newest status id of each configured timeline (absent: a first start)."""
    saved = (checkpoint or {}).get("since_ids")
    saved = saved if isinstance(saved, dict) else {}
    keys = {t.key for t in timelines}
    return {k: str(v) for k, v in saved.items() if k in keys and isinstance(v, (str, int)) and str(v)}


def _dump_since(since: dict[str, str]) -> dict[str, Any]:
    return {"since_ids": {k: v for k, v in since.items() if v}}


# --- Command line -----------------------------------------------------------------------------


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``earshot connect mastodon`` options (the token is a setting, never an option)."""
    parser.add_argument("--instance", default=DEFAULT_INSTANCE,
                        help=f"instance base URL or host (default {DEFAULT_INSTANCE})")
    parser.add_argument("--hashtag", action="append", default=[], metavar="TAG",
                        help="follow the hashtag timeline of TAG (with or without #); repeatable")
    parser.add_argument("--public", action="store_true", help="follow the public (federated) timeline")
    parser.add_argument("--local", action="store_true",
                        help="only statuses posted on this instance (public and hashtag timelines)")
    parser.add_argument("--stream", action="store_true",
                        help="use the streaming API (server-sent events) instead of polling")
    parser.add_argument("--streaming-url", default=None,
                        help="streaming server base URL (default: asked from the instance)")
    parser.add_argument("--interval", type=_positive_float, default=None, metavar="S",
                        help="seconds between polls (default: EARSHOT_CONNECTOR_POLL_S)")
    parser.add_argument("--name", default=None, help="checkpoint name (default: mastodon-<instance host>)")


def build(args: argparse.Namespace, settings: Any) -> MastodonSource:
    """The source ``earshot connect mastodon`` runs; the token comes from the settings only."""
    try:
        timelines = [Timeline.hashtag(tag, local=args.local) for tag in args.hashtag]
        if args.public:
            timelines.append(Timeline.public(local=args.local))
        if not timelines:
            raise ValueError("give at least one --hashtag or --public")
        secret = settings.mastodon_access_token
        token = secret.get_secret_value() if secret is not None else None
        return MastodonSource(args.instance, timelines, token=token, stream=args.stream, name=args.name,
                              interval_s=args.interval or settings.connector_poll_s,
                              backoff_base_s=settings.connector_backoff_base_s,
                              backoff_cap_s=settings.connector_backoff_cap_s,
                              streaming_url=getattr(args, "streaming_url", None))
    except ValueError as exc:
        raise SystemExit(f"mastodon: {exc}") from None
