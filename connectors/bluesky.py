"""Bluesky as a live source: the Jetstream firehose (filtered here), or searchPosts backfill.

Platform documents this follows:
- Jetstream, https://github.com/bluesky-social/jetstream (README, "Consuming Jetstream"):
  ``GET wss://<host>/subscribe?wantedCollections=app.bsky.feed.post&cursor=<unix µs>`` over
  WebSocket; JSON messages ``{"did", "time_us", "kind": "commit", "commit": {"rev",
  "operation": "create"|"update"|"delete", "collection", "rkey", "record", "cid"}}``, and
  ``kind`` ``identity``/``account`` events every subscriber receives. "When reconnecting, use
  the time_us from your most recently processed event and maybe provide a negative buffer
  (i.e. subtract a few seconds) to ensure gapless playback."
- Post records, https://docs.bsky.app/docs/advanced-guides/posts (lexicon ``app.bsky.feed.post``:
  ``text``, ``createdAt``, ``langs``, ``reply``, ``facets``, ``embed``); AT URIs
  ``at://<did>/app.bsky.feed.post/<rkey>``, https://atproto.com/specs/at-uri-scheme; web URLs
  ``https://bsky.app/profile/<did or handle>/post/<rkey>``.
- Timestamps, https://docs.bsky.app/docs/advanced-guides/timestamps: ``createdAt`` is what the
  client claims (it can be in the future); the AppView sorts by the earlier of it and ``indexedAt``.
- Search, https://docs.bsky.app/docs/api/app-bsky-feed-search-posts: ``GET
  /xrpc/app.bsky.feed.searchPosts?q=&limit=(1..100)&sort=latest&cursor=`` -> ``{"cursor",
  "hitsTotal", "posts": [postView]}`` (postView: ``uri``, ``cid``, ``author`` {``did``,
  ``handle``, ``displayName``}, ``record``, ``likeCount``, ``repostCount``, ``replyCount``,
  ``quoteCount``, ``indexedAt``). Logged out, the public AppView (public.api.bsky.app) serves
  only a query's first page (later pages answer 403).
- Sessions, https://docs.bsky.app/docs/api/com-atproto-server-create-session and
  .../com-atproto-server-refresh-session: ``POST /xrpc/com.atproto.server.createSession``
  ``{identifier, password}`` -> ``{accessJwt, refreshJwt, did, didDoc}`` on the account's
  entryway (https://bsky.social); API calls then go to the account's PDS (``didDoc`` service
  ``#atproto_pds``), which proxies ``app.bsky.*`` to the AppView. An expired access token
  answers 400 ``ExpiredToken``.
- Rate limits, https://docs.bsky.app/docs/advanced-guides/rate-limits: 429 with
  ``ratelimit-remaining``/``ratelimit-reset`` (unix seconds) headers.

How it resumes:
- Jetstream: checkpoint ``{"cursor": <time_us of the newest event processed>, "recent":
  [[time_us, key], ...]}``. Every (re)connection asks for ``cursor - rewind_s``; events of
  that overlap already published (their keys are in ``recent``, also across restarts) are
  dropped, so nothing is missed and nothing doubled. Checkpoints are also saved while the
  filter keeps nothing, so a restart does not replay hours of the firehose.
- search: checkpoint ``{"queries": {"<q>": {"newest": "<indexedAt>", "recent": {uri: indexedAt}}}}``;
  each poll pages back from the newest post until it passes ``newest - overlap_s``, skips
  what ``recent`` lists, and publishes oldest first.

The firehose carries every post on the network, so ``JetstreamSource`` takes ``keep``, a
predicate over the Mention-shaped record (the listening-query matcher); deletions are always
forwarded (we cannot know which posts an earlier run kept). The app password
(``EARSHOT_BLUESKY_APP_PASSWORD``) and session tokens are never logged or checkpointed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import httpx
from pydantic import SecretStr

from connectors.base import Batch, Outgoing
from connectors.common import parse_utc, settle_language
from connectors.polite import Counters, PoliteClient, SourceError, reset_delay_s
from pipeline.worker.retry import backoff_delay

log = logging.getLogger(__name__)

SOURCE = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
JETSTREAM_URL = "wss://jetstream2.us-east.bsky.network/subscribe"
API_URL = "https://public.api.bsky.app"  # the public AppView: no login, first search page only
AUTH_URL = "https://bsky.social"  # entryway for createSession of bsky-hosted accounts
SEARCH_PATH = "/xrpc/app.bsky.feed.searchPosts"
SEARCH_LIMIT = 100  # the most posts one searchPosts request returns
USER_AGENT = "earshot/0.1 (social listening)"
FUTURE_SKEW = timedelta(minutes=5)  # a createdAt later than the event time + this is a wrong clock

Keep = Callable[[dict[str, Any]], bool]
Sleep = Callable[[float], Awaitable[Any]]


# --- Ids and times ----------------------------------------------------------------------------


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST_COLLECTION}/{rkey}"


def mention_id(uri: str) -> str:
    """``bluesky:at://<did>/app.bsky.feed.post/<rkey>``: the same for firehose and search."""
    return f"{SOURCE}:{uri}"


def post_url(did: str, rkey: str) -> str:
    """The post on bsky.app; the DID (not the handle, which can change) keeps the link stable."""
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def split_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` -> (did, collection, rkey); ValueError if it is not one."""
    if not uri.startswith("at://"):
        raise ValueError(f"not an AT URI: {uri!r}")
    parts = uri[len("at://"):].split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a record AT URI: {uri!r}")
    return parts[0], parts[1], parts[2]



def from_time_us(time_us: int) -> datetime:
    """Jetstream's ``time_us`` (unix microseconds) as aware UTC."""
    return datetime.fromtimestamp(time_us / 1_000_000, tz=timezone.utc)


def _created_at(claimed: Any, observed: datetime | None) -> tuple[str | None, bool]:
    """(created_at ISO, whether the claimed ``createdAt`` was replaced by ``observed``).

    The claim is kept unless it is unreadable or later than when the network saw the post
    (plus ``FUTURE_SKEW``): a client clock in the future would otherwise be dead-lettered.
    """
    when = parse_utc(claimed)
    if when is None or (observed is not None and when > observed + FUTURE_SKEW):
        return (observed.isoformat() if observed else None), True
    return when.isoformat(), False


def _lang(langs: Any) -> str | None:
    if isinstance(langs, list) and langs and isinstance(langs[0], str) and 0 < len(langs[0]) <= 16:
        return langs[0]
    return None


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _embed_type(record: Mapping[str, Any]) -> str | None:
    embed = record.get("embed")
    return embed.get("$type") if isinstance(embed, dict) else None


def _reply_parent(record: Mapping[str, Any]) -> str | None:
    reply = record.get("reply")
    parent = reply.get("parent") if isinstance(reply, dict) else None
    uri = parent.get("uri") if isinstance(parent, dict) else None
    return mention_id(uri) if isinstance(uri, str) and uri else None


# --- Normalisation ----------------------------------------------------------------------------

_LINK = "app.bsky.richtext.facet#link"
_MENTION = "app.bsky.richtext.facet#mention"
_TAG = "app.bsky.richtext.facet#tag"


@dataclass(frozen=True)
class PostText:
    """What a post says, for reading and matching: ``text`` with each link's display form
    (``www.youtube.com/watch?v=V5lD...``) replaced by its full URL, then the embed's
    matchable words (link card title and description, image alt text), each marked."""

    text: str
    links: list[str]
    handles: list[str]  # DIDs of the accounts the facets mention
    hashtags: list[str]  # without '#'
    quoted: str | None  # AT URI of a quoted post


def _facet_features(record: Mapping[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    """(byteStart, byteEnd, feature) of every facet feature, in text order. Facet indices are
    byte offsets into the UTF-8 text, not character offsets."""
    found = []
    for facet in record.get("facets") or []:
        index = facet.get("index") if isinstance(facet, dict) else None
        if not isinstance(index, dict):
            continue
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start <= end:
            continue
        for feature in facet.get("features") or []:
            if isinstance(feature, dict):
                found.append((start, end, feature))
    return sorted(found, key=lambda f: (f[0], f[1]))


def _with_full_links(text: str, features: list[tuple[int, int, dict[str, Any]]]) -> str:
    """``text`` with each link facet's span replaced by the facet's URI."""
    data = text.encode("utf-8")
    out, at = [], 0
    for start, end, feature in features:
        uri = feature.get("uri")
        if feature.get("$type") != _LINK or not isinstance(uri, str) or start < at or end > len(data):
            continue
        out += [data[at:start], uri.encode("utf-8")]
        at = end
    out.append(data[at:])
    return b"".join(out).decode("utf-8", "replace")


def _embed_lines(embed: Any) -> tuple[list[str], str | None]:
    """(matchable lines of an embed, the AT URI of a quoted post)."""
    if not isinstance(embed, dict):
        return [], None
    kind = embed.get("$type") or ""
    lines: list[str] = []
    quoted = None
    if kind.startswith("app.bsky.embed.recordWithMedia"):
        lines, _ = _embed_lines(embed.get("media"))
        _, quoted = _embed_lines(embed.get("record"))
        return lines, quoted
    if kind.startswith("app.bsky.embed.record"):
        target = embed.get("record")
        uri = target.get("uri") if isinstance(target, dict) else None
        return [], uri if isinstance(uri, str) else None
    external = embed.get("external")
    if isinstance(external, dict):
        card = " - ".join(str(external[k]).strip() for k in ("title", "description")
                          if isinstance(external.get(k), str) and external[k].strip())
        uri = external.get("uri") if isinstance(external.get("uri"), str) else ""
        if card or uri:
            lines.append(f"[link: {card} {uri}]".replace("  ", " ") if card else f"[link: {uri}]")
    for image in embed.get("images") or []:
        alt = image.get("alt") if isinstance(image, dict) else None
        if isinstance(alt, str) and alt.strip():
            lines.append(f"[image: {alt.strip()}]")
    if isinstance(embed.get("alt"), str) and embed["alt"].strip():  # app.bsky.embed.video
        lines.append(f"[video: {embed['alt'].strip()}]")
    return lines, quoted


def post_text(record: Mapping[str, Any]) -> PostText:
    """The matchable text of a post record, and the links, handles and tags of its facets."""
    text = record.get("text") if isinstance(record.get("text"), str) else ""
    features = _facet_features(record)
    body = _with_full_links(text, features) if features else text
    lines, quoted = _embed_lines(record.get("embed"))
    full = "\n".join(part for part in [body, *lines] if part.strip())
    links = [f["uri"] for _, _, f in features if f.get("$type") == _LINK and isinstance(f.get("uri"), str)]
    external = (record.get("embed") or {}).get("external") if isinstance(record.get("embed"), dict) else None
    if isinstance(external, dict) and isinstance(external.get("uri"), str) and external["uri"] not in links:
        links.append(external["uri"])
    return PostText(
        text=full,
        links=links,
        handles=[f["did"] for _, _, f in features if f.get("$type") == _MENTION and isinstance(f.get("did"), str)],
        hashtags=[f["tag"] for _, _, f in features if f.get("$type") == _TAG and isinstance(f.get("tag"), str)],
        quoted=quoted,
    )


def _facet_raw(said: PostText) -> dict[str, Any]:
    extra: dict[str, Any] = {"links": said.links, "mentioned_dids": said.handles, "hashtags": said.hashtags}
    if said.quoted:
        extra["quoted_id"] = mention_id(said.quoted)
    return extra


def jetstream_record(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Mention-shaped dict of a Jetstream post commit (create or update), or None.

    None when the post has nothing to read: no text, no link card, no alt text. The
    firehose carries no handle, profile or counts: the author is the DID, metrics are zero.
    """
    did = str(event["did"])
    commit = event["commit"]
    rkey = str(commit["rkey"])
    record = commit.get("record") if isinstance(commit.get("record"), dict) else {}
    said = post_text(record)
    text = said.text
    if not text.strip():
        return None
    time_us = event.get("time_us")
    observed = from_time_us(int(time_us)) if isinstance(time_us, int) else None
    created_at, replaced = _created_at(record.get("createdAt"), observed)
    uri = post_uri(did, rkey)
    raw: dict[str, Any] = {
        "did": did,
        "rkey": rkey,
        "uri": uri,
        "cid": commit.get("cid"),
        "rev": commit.get("rev"),
        "time_us": time_us,
        "operation": commit.get("operation"),
        "facets": record.get("facets") or [],
        "reply": record.get("reply"),
        "langs": record.get("langs") or [],
        "tags": record.get("tags") or [],
        "embed_type": _embed_type(record),
        "via": "jetstream",
        **_facet_raw(said),
    }
    if replaced:
        raw["claimed_created_at"] = record.get("createdAt")
    out: dict[str, Any] = {
        "id": mention_id(uri),
        "source": SOURCE,
        "url": post_url(did, rkey),
        "author": {"handle": did, "display_name": None, "followers": None, "verified": False},
        "text": text,
        "lang": settle_language(_lang(record.get("langs")), text, raw),
        "metrics": {"likes": 0, "shares": 0, "replies": 0},
        "in_reply_to": _reply_parent(record),
        "raw": raw,
    }
    if created_at is not None:
        out["created_at"] = created_at
    return out


def search_record(post: Mapping[str, Any], query: str | None = None) -> dict[str, Any] | None:
    """The Mention-shaped dict of a searchPosts ``postView``, or None if it has no text."""
    uri = str(post["uri"])
    did, _collection, rkey = split_uri(uri)
    author = post.get("author") if isinstance(post.get("author"), dict) else {}
    record = post.get("record") if isinstance(post.get("record"), dict) else {}
    said = post_text(record)
    text = said.text
    if not text.strip():
        return None
    did = str(author.get("did") or did)
    handle = author.get("handle")
    if not handle or handle == "handle.invalid":  # the AppView's word for a handle that no longer resolves
        handle = did
    indexed_at = parse_utc(post.get("indexedAt"))
    created_at, replaced = _created_at(record.get("createdAt"), indexed_at)
    raw: dict[str, Any] = {
        "did": did,
        "rkey": rkey,
        "uri": uri,
        "cid": post.get("cid"),
        "indexed_at": post.get("indexedAt"),
        "facets": record.get("facets") or [],
        "reply": record.get("reply"),
        "langs": record.get("langs") or [],
        "tags": record.get("tags") or [],
        "embed_type": _embed_type(record),
        "quotes": _count(post.get("quoteCount")),
        "via": "search",
        **_facet_raw(said),
    }
    if query is not None:
        raw["query"] = query
    if replaced:
        raw["claimed_created_at"] = record.get("createdAt")
    display_name = author.get("displayName")
    out: dict[str, Any] = {
        "id": mention_id(uri),
        "source": SOURCE,
        "url": post_url(did, rkey),
        "author": {"handle": str(handle), "display_name": str(display_name)[:512] if display_name else None,
                   "followers": None, "verified": False},  # postView's author carries no follower count
        "text": text,
        "lang": settle_language(_lang(record.get("langs")), text, raw),
        "metrics": {
            "likes": _count(post.get("likeCount")),
            # A share on Bluesky is a repost or a quote: both carry the post to new audiences.
            "shares": _count(post.get("repostCount")) + _count(post.get("quoteCount")),
            "replies": _count(post.get("replyCount")),
        },
        "in_reply_to": _reply_parent(record),
        "raw": raw,
    }
    if created_at is not None:
        out["created_at"] = created_at
    return out


def substring_matcher(terms: Iterable[str]) -> Keep | None:
    """``keep`` for ``--match``: the text contains any term, ignoring case (None: no terms)."""
    needles = [t.casefold() for t in terms if t and t.strip()]
    if not needles:
        return None

    def keep(record: dict[str, Any]) -> bool:
        text = str(record.get("text") or "").casefold()
        return any(n in text for n in needles)

    return keep


def kept_by(keep: Keep | None, record: dict[str, Any]) -> bool:
    """Whether ``keep`` (None: keep all) keeps ``record``; a filter that fails drops it, logged."""
    if keep is None:
        return True
    try:
        return bool(keep(record))
    except Exception as exc:  # noqa: BLE001 - a filter bug must not stop the connector
        log.warning("bluesky filter failed on %s (%r): dropped", record.get("id"), exc)
        return False


def _unparsed(data: str) -> Outgoing:
    """A message we could not read: published as-is so the pipeline dead-letters it with a reason."""
    return Outgoing(key=f"{SOURCE}:unparsed", unparsed=data.encode("utf-8"))


# --- Jetstream --------------------------------------------------------------------------------


@dataclass
class JetstreamState:
    """Where the firehose resumes: the newest ``time_us`` processed and what was published near it.

    ``recent`` maps an event key (operation, URI, rev) to its ``time_us``, for events published
    within ``rewind_us`` of ``cursor``: the overlap a reconnection replays.
    """

    cursor: int | None = None
    recent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any] | None) -> "JetstreamState":
        data = checkpoint or {}
        cursor = data.get("cursor")
        recent = {}
        for entry in data.get("recent") or []:
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int) and isinstance(entry[1], str):
                recent[entry[1]] = entry[0]
        return cls(cursor=cursor if isinstance(cursor, int) and cursor > 0 else None, recent=recent)

    def advance(self, time_us: Any) -> None:
        if isinstance(time_us, int) and time_us > 0 and (self.cursor is None or time_us > self.cursor):
            self.cursor = time_us

    def first_time(self, key: str, time_us: int) -> bool:
        """True if the event ``key`` was not published before (and remember it)."""
        if key in self.recent:
            return False
        self.recent[key] = time_us
        return True

    def prune(self, rewind_us: int, keep_at_most: int = 20_000) -> None:
        """Forget events older than the overlap a reconnection replays (and cap the memory)."""
        if self.cursor is None:
            return
        floor = self.cursor - rewind_us - 1_000_000  # a second of margin
        stale = [k for k, t in self.recent.items() if t < floor]
        for key in stale:
            del self.recent[key]
        while len(self.recent) > keep_at_most:
            del self.recent[next(iter(self.recent))]

    def checkpoint(self) -> dict[str, Any] | None:
        if self.cursor is None:
            return None
        return {"cursor": self.cursor, "recent": [[t, k] for k, t in self.recent.items()]}


def jetstream_url(base: str, cursor: int | None) -> str:
    """The subscribe URL: posts only, from ``cursor`` (unix µs; None = live tail)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("wantedCollections", "cursor")]
    query.append(("wantedCollections", POST_COLLECTION))
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/subscribe", urlencode(query), ""))


class _SocketReader:
    """Reads a WebSocket in a task into a FIFO queue (never stop reading: the firehose won't wait).

    ``None`` in the queue marks the end of the connection; ``error`` then holds why (None: the
    server closed it).
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, maxsize: int = 10_000):
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._pump(ws))

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            while True:
                message = await ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    await self.queue.put(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await self.queue.put(message.data.decode("utf-8", "replace"))
                elif message.type == aiohttp.WSMsgType.ERROR:
                    self.error = ws.exception() or ConnectionError("WebSocket error")
                    break
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                      aiohttp.WSMsgType.CLOSED):
                    break
        except Exception as exc:  # noqa: BLE001 - a stall (TimeoutError) or a drop, for the consumer
            self.error = exc
        await self.queue.put(None)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class JetstreamSource:
    """The Bluesky firehose through Jetstream, filtered by ``keep``, as a ``LiveSource``.

    Seconds throughout. ``rewind_s``: overlap asked for on every reconnection (Jetstream's
    advice). Items are batched up to ``batch_size`` or ``batch_window_s`` after the first; while
    ``keep`` drops everything, a checkpoint-only batch is yielded every ``checkpoint_every_s``.
    ``stall_timeout_s``: reconnect after this long without a message. ``sleep`` serves the
    reconnection backoff, so tests need not wait.
    """

    def __init__(self, url: str = JETSTREAM_URL, *, keep: Keep | None = None, name: str = SOURCE,
                 rewind_s: float = 3.0, batch_size: int = 200, batch_window_s: float = 1.0,
                 checkpoint_every_s: float = 5.0, stall_timeout_s: float = 60.0, connect_timeout_s: float = 30.0,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0, sleep: Sleep = asyncio.sleep):
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise ValueError(f"Jetstream URL must be ws:// or wss://, got {url!r}")
        self.url = url
        self.keep = keep
        self.name = name
        self.rewind_us = int(rewind_s * 1_000_000)
        self.batch_size = max(1, batch_size)
        self.batch_window_s = batch_window_s
        self.checkpoint_every_s = checkpoint_every_s
        self.stall_timeout_s = stall_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.sleep = sleep
        self.counters = Counters()
        self.filtered = 0  # posts the filter dropped (for logs)

    def __repr__(self) -> str:
        return f"JetstreamSource(name={self.name!r}, url={self.url!r}, filtered={self.keep is not None})"

    async def batches(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        """Batches of kept posts and all deletions, resuming from ``checkpoint``'s cursor."""
        state = JetstreamState.from_checkpoint(checkpoint)
        live_since: int | None = None  # a first start's connection time: where a reconnect resumes
        attempts = 0
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s)
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, timeout=timeout) as session:
            for attempt in itertools.count():
                if attempt:
                    self.counters.reconnects += 1
                start = state.cursor if state.cursor is not None else live_since
                cursor = max(0, start - self.rewind_us) if start is not None else None
                url = jetstream_url(self.url, cursor)
                self.counters.requests += 1
                try:
                    async with session.ws_connect(url, heartbeat=30.0, max_msg_size=8 * 1024 * 1024,
                                                  timeout=aiohttp.ClientWSTimeout(ws_receive=self.stall_timeout_s,
                                                                                  ws_close=5.0)) as ws:
                        if live_since is None:
                            live_since = int(time.time() * 1_000_000)
                        got_any = False
                        async with contextlib.aclosing(self._connected(ws, state)) as batches:
                            async for batch, received in batches:
                                got_any = got_any or received
                                if received:
                                    attempts = 0  # messages arrived: the connection works
                                if batch is not None:
                                    yield batch
                        why = "closed by the server" if got_any else "closed before any message"
                except aiohttp.WSServerHandshakeError as exc:
                    if 400 <= exc.status < 500 and exc.status not in (408, 429):
                        raise SourceError(exc.status, url, exc.message) from None
                    self.counters.errors += 1
                    why = f"handshake refused: HTTP {exc.status}"
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.counters.errors += 1
                    why = f"{exc!r}"
                attempts += 1
                delay = backoff_delay(attempts, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
                log.warning("jetstream %s (%s); reconnecting in %.1f s from cursor %s", self.name, why, delay,
                            state.cursor)
                await self.sleep(delay)

    async def _connected(self, ws: aiohttp.ClientWebSocketResponse,
                         state: JetstreamState) -> AsyncIterator[tuple[Batch | None, bool]]:
        """(batch or None, whether messages arrived) per collection round of one connection.

        Raises the error that ended the connection (a stall, a drop), if any.
        """
        reader = _SocketReader(ws)
        saved = state.cursor
        try:
            while True:
                items, received, ended = await self._collect(reader, state)
                if items or state.cursor != saved:
                    state.prune(self.rewind_us)
                    saved = state.cursor
                    yield Batch(items=items, checkpoint=state.checkpoint()), received
                else:
                    yield None, received
                if ended:
                    break
        finally:
            await reader.close()
        if reader.error is not None:
            # Always an OSError for the caller: a stall, a drop, a protocol error alike mean "reconnect".
            raise ConnectionError(f"jetstream connection lost: {reader.error!r}") from reader.error

    async def _collect(self, reader: _SocketReader, state: JetstreamState) -> tuple[list[Outgoing], bool, bool]:
        """(items, messages arrived, connection ended): until a full batch, ``batch_window_s``
        after the first item, or ``checkpoint_every_s`` without one."""
        loop = asyncio.get_running_loop()
        items: list[Outgoing] = []
        received = False
        idle_deadline = loop.time() + self.checkpoint_every_s
        item_deadline: float | None = None
        while len(items) < self.batch_size:
            wait = (item_deadline if item_deadline is not None else idle_deadline) - loop.time()
            if wait <= 0:
                break
            try:
                message = await asyncio.wait_for(reader.queue.get(), wait)
            except TimeoutError:
                break
            if message is None:
                return items, received, True
            received = True
            items.extend(self._handle(message, state))
            if items and item_deadline is None:
                item_deadline = loop.time() + self.batch_window_s
        return items, received, False

    def _handle(self, message: str, state: JetstreamState) -> list[Outgoing]:
        """Records for one Jetstream message: a kept post, a deletion, or nothing."""
        try:
            event = json.loads(message)
        except json.JSONDecodeError:
            return [_unparsed(message)]
        if not isinstance(event, dict):
            return [_unparsed(message)]
        time_us = event.get("time_us")
        state.advance(time_us)
        commit = event.get("commit")
        if event.get("kind") != "commit" or not isinstance(commit, dict):
            return []  # identity and account events: not posts
        if commit.get("collection") != POST_COLLECTION or not event.get("did") or not commit.get("rkey"):
            return []
        operation = commit.get("operation")
        uri = post_uri(str(event["did"]), str(commit["rkey"]))
        key = f"{operation}:{uri}:{commit.get('rev', '')}"
        when = time_us if isinstance(time_us, int) else (state.cursor or 0)
        if operation == "delete":
            if not state.first_time(key, when):
                return []
            return [Outgoing.deletion(mention_id(uri), SOURCE)]
        if operation not in ("create", "update"):
            return []
        try:
            record = jetstream_record(event)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("jetstream post %s not normalised (%r): dead-lettered", uri, exc)
            return [Outgoing(key=mention_id(uri), unparsed=message.encode("utf-8"))]
        if record is None or not self._kept(record):
            return []
        if not state.first_time(key, when):
            return []  # replayed by the reconnection overlap: already published
        return [Outgoing(key=record["id"], record=record)]

    def _kept(self, record: dict[str, Any]) -> bool:
        kept = kept_by(self.keep, record)
        if not kept:
            self.filtered += 1
        return kept


# --- searchPosts ------------------------------------------------------------------------------


class BlueskyAuthError(SourceError):
    """Bluesky refused the identifier and app password (or a fresh session)."""


class BlueskyApi:
    """searchPosts, anonymous on the public AppView or with an app-password session.

    With credentials, a session is created on ``auth_url`` on first use; requests then go to
    ``api_url`` if given, else to the account's PDS. An expired access token is refreshed
    (``refreshSession``), or the session created again, once per request.
    """

    def __init__(self, polite: PoliteClient, *, api_url: str | None = None, auth_url: str = AUTH_URL,
                 identifier: str | None = None, password: SecretStr | None = None):
        self.polite = polite
        self.api_url = api_url.rstrip("/") if api_url else None
        self.auth_url = auth_url.rstrip("/")
        self.identifier = identifier
        self.password = password
        self._access: SecretStr | None = None
        self._refresh: SecretStr | None = None
        self._pds: str | None = None
        self._ready_at = 0.0  # monotonic time before which no request is sent (ratelimit-remaining: 0)

    @property
    def authenticated(self) -> bool:
        return bool(self.identifier and self.password and self.password.get_secret_value())

    def base_url(self) -> str:
        if self.api_url:
            return self.api_url
        if self.authenticated:
            return self._pds or self.auth_url
        return API_URL

    async def _session_call(self, method: str, token: SecretStr | None = None,
                            body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.auth_url}/xrpc/{method}"
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        response = await self.polite.request("POST", url, json=body, headers=headers)
        try:
            data = response.json()
        except ValueError:
            raise SourceError(response.status_code, url, "session answer is not JSON") from None
        if not isinstance(data, dict) or not data.get("accessJwt"):
            raise BlueskyAuthError(response.status_code, url, "no accessJwt in the session answer")
        self._access = SecretStr(str(data["accessJwt"]))
        self._refresh = SecretStr(str(data["refreshJwt"])) if data.get("refreshJwt") else None
        self._pds = _pds_endpoint(data.get("didDoc")) or self._pds
        return data

    async def login(self) -> None:
        """A new session from the identifier and app password."""
        assert self.identifier and self.password
        try:
            data = await self._session_call("com.atproto.server.createSession", body={
                "identifier": self.identifier, "password": self.password.get_secret_value()})
        except SourceError as exc:
            if isinstance(exc, BlueskyAuthError) or exc.status not in (400, 401):
                raise
            raise BlueskyAuthError(exc.status, f"{self.auth_url}/xrpc/com.atproto.server.createSession",
                                   "login refused: check EARSHOT_BLUESKY_IDENTIFIER and "
                                   "EARSHOT_BLUESKY_APP_PASSWORD") from None
        log.info("bluesky: session created for %s", data.get("handle") or self.identifier)

    async def renew(self) -> None:
        """A fresh access token: refreshSession, else a new login."""
        if self._refresh is not None:
            try:
                await self._session_call("com.atproto.server.refreshSession", token=self._refresh)
                return
            except SourceError as exc:
                log.info("bluesky: session refresh refused (%s); logging in again", exc.status)
        await self.login()

    async def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        """One searchPosts page (``{"cursor", "posts"}``)."""
        if self.authenticated and self._access is None:
            await self.login()
        try:
            return await self._search(params)
        except SourceError as exc:
            if not (self.authenticated and _expired(exc)):
                raise
        await self.renew()
        return await self._search(params)

    async def _search(self, params: Mapping[str, str]) -> dict[str, Any]:
        wait = self._ready_at - time.monotonic()
        if wait > 0:
            self.polite.counters.throttled_s += wait
            await self.polite.sleep(min(wait, self.polite.max_wait_s))
        url = f"{self.base_url()}{SEARCH_PATH}"
        headers = {"Authorization": f"Bearer {self._access.get_secret_value()}"} if self._access else {}
        response = await self.polite.request("GET", url, params=dict(params), headers=headers)
        self._note_quota(response)
        try:
            body = response.json()
        except ValueError:
            raise SourceError(response.status_code, url, f"not JSON: {response.text}") from None
        if not isinstance(body, dict) or not isinstance(body.get("posts"), list):
            raise SourceError(response.status_code, url, f"not a searchPosts answer: {response.text}")
        return body

    def _note_quota(self, response: httpx.Response) -> None:
        """Bluesky's ``ratelimit-*`` headers (PoliteClient reads the ``x-`` ones): pause at 0."""
        remaining = response.headers.get("ratelimit-remaining")
        try:
            spent = remaining is not None and float(remaining) <= 0
        except ValueError:
            spent = False
        if spent:
            wait = reset_delay_s(response.headers.get("ratelimit-reset"), time.time())
            if wait:
                self._ready_at = time.monotonic() + min(wait, self.polite.max_wait_s)


def _expired(exc: SourceError) -> bool:
    """An XRPC answer saying the access token expired or is no longer valid."""
    return exc.status == 401 or (exc.status == 400 and ("ExpiredToken" in str(exc) or "InvalidToken" in str(exc)))


def _pds_endpoint(did_doc: Any) -> str | None:
    """The ``#atproto_pds`` service endpoint of a DID document."""
    if not isinstance(did_doc, dict):
        return None
    for service in did_doc.get("service") or []:
        if isinstance(service, dict) and str(service.get("id", "")).endswith("#atproto_pds"):
            endpoint = service.get("serviceEndpoint")
            if isinstance(endpoint, str) and endpoint.startswith(("http://", "https://")):
                return endpoint.rstrip("/")
    return None


@dataclass
class QueryState:
    """Where one query resumes: the newest ``indexedAt`` published, and posts published near it."""

    newest: str | None = None
    recent: dict[str, str] = field(default_factory=dict)  # uri -> indexedAt

    @classmethod
    def from_json(cls, data: Any) -> "QueryState | None":
        if not isinstance(data, dict) or parse_utc(data.get("newest")) is None:
            return None
        recent = data.get("recent") if isinstance(data.get("recent"), dict) else {}
        return cls(newest=str(data["newest"]),
                   recent={str(k): str(v) for k, v in recent.items() if isinstance(v, str)})

    def to_json(self) -> dict[str, Any]:
        return {"newest": self.newest, "recent": dict(self.recent)}

    def floor(self, overlap: timedelta) -> datetime | None:
        newest = parse_utc(self.newest)
        return newest - overlap if newest is not None else None

    def covers(self, post: Mapping[str, Any], overlap: timedelta) -> tuple[bool, bool]:
        """(already published or too old, older than the overlap window: stop paging)."""
        floor = self.floor(overlap)
        indexed = parse_utc(post.get("indexedAt"))
        if floor is not None and indexed is not None and indexed < floor:
            return True, True
        return str(post.get("uri")) in self.recent, False

    def after(self, published: list[Mapping[str, Any]], overlap: timedelta, keep_at_most: int = 2000) -> "QueryState":
        """The state once ``published`` (oldest first) is out."""
        recent = dict(self.recent)
        newest = self.newest
        for post in published:
            indexed = str(post.get("indexedAt") or "")
            recent[str(post["uri"])] = indexed
            if parse_utc(indexed) is not None and (newest is None or parse_utc(indexed) > parse_utc(newest)):
                newest = indexed
        floor = QueryState(newest=newest).floor(overlap)
        if floor is not None:
            recent = {u: t for u, t in recent.items() if (parse_utc(t) or floor) >= floor}
        while len(recent) > keep_at_most:
            del recent[next(iter(recent))]
        return QueryState(newest=newest, recent=recent)


def _indexed_key(post: Mapping[str, Any]) -> tuple[datetime, str]:
    return (parse_utc(post.get("indexedAt")) or datetime.min.replace(tzinfo=timezone.utc), str(post.get("uri")))


class SearchSource:
    """Bluesky searchPosts (``sort=latest``) polled per query, as a ``LiveSource``.

    Seconds throughout. ``interval_s``: between polls; ``overlap_s``: how far behind the newest
    published post each poll looks again (search indexing is not strictly in order);
    ``backfill_pages``: pages read on a query's first start, ``max_pages`` on later polls.
    ``keep``: optional extra filter (the listening queries). ``max_polls`` ends after that many
    rounds (None = forever); ``sleep`` serves every wait.
    """

    def __init__(self, queries: Iterable[str], *, api_url: str | None = None, auth_url: str = AUTH_URL,
                 identifier: str | None = None, password: SecretStr | str | None = None, keep: Keep | None = None,
                 name: str = f"{SOURCE}-search", interval_s: float = 60.0, overlap_s: float = 30.0,
                 backfill_pages: int = 1, max_pages: int = 10, page_limit: int = SEARCH_LIMIT,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0, request_timeout_s: float = 30.0,
                 max_polls: int | None = None, sleep: Sleep = asyncio.sleep):
        self.queries = [q for q in dict.fromkeys(q.strip() for q in queries) if q]
        if not self.queries:
            raise ValueError("bluesky: give at least one --search query")
        self.api_url = api_url
        self.auth_url = auth_url
        self.identifier = identifier or None
        self.password = SecretStr(password) if isinstance(password, str) else password
        self.keep = keep
        self.name = name
        self.interval_s = interval_s
        self.overlap = timedelta(seconds=overlap_s)
        self.backfill_pages = max(1, backfill_pages)
        self.max_pages = max(1, max_pages)
        self.page_limit = max(1, min(page_limit, SEARCH_LIMIT))
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.request_timeout_s = request_timeout_s
        self.max_polls = max_polls
        self.sleep = sleep
        self.counters = Counters()

    def __repr__(self) -> str:
        return f"SearchSource(name={self.name!r}, queries={self.queries!r}, authenticated={bool(self.identifier)})"

    async def batches(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        """One batch per page of new posts per query, oldest first, each with its checkpoint."""
        saved = (checkpoint or {}).get("queries")
        saved = saved if isinstance(saved, dict) else {}
        states: dict[str, QueryState | None] = {q: QueryState.from_json(saved.get(q)) for q in self.queries}
        async with httpx.AsyncClient(headers={"User-Agent": USER_AGENT},
                                     timeout=httpx.Timeout(self.request_timeout_s)) as http:
            polite = PoliteClient(http, counters=self.counters, backoff_base_s=self.backoff_base_s,
                                  backoff_cap_s=self.backoff_cap_s, sleep=self.sleep)
            api = BlueskyApi(polite, api_url=self.api_url, auth_url=self.auth_url, identifier=self.identifier,
                             password=self.password)
            for polls in itertools.count(1):
                for query in self.queries:
                    try:
                        fresh = await self._collect(api, query, states[query])
                    except SourceError as exc:
                        if isinstance(exc, BlueskyAuthError) or exc.status in (401, 403):
                            raise  # credentials wanted or refused: every query would fail the same way
                        # A query the AppView refuses (400 BadQueryString): the others go on.
                        log.error("%s: query %r: %s", self.name, query, exc)
                        continue
                    for chunk in (fresh[i:i + self.page_limit] for i in range(0, len(fresh), self.page_limit)):
                        states[query] = (states[query] or QueryState()).after(chunk, self.overlap)
                        items = [out for post in chunk if (out := self._out(post, query)) is not None]
                        yield Batch(items=items, checkpoint=_dump_queries(states))
                if self.max_polls is not None and polls >= self.max_polls:
                    return
                await self.sleep(self.interval_s)

    def _out(self, post: Mapping[str, Any], query: str) -> Outgoing | None:
        try:
            record = search_record(post, query)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("bluesky post %s not normalised (%r): dead-lettered", post.get("uri"), exc)
            return Outgoing(key=mention_id(str(post.get("uri"))), unparsed=json.dumps(post).encode("utf-8"))
        if record is None:
            return None
        if not kept_by(self.keep, record):
            return None
        return Outgoing(key=record["id"], record=record)

    async def _collect(self, api: BlueskyApi, query: str, state: QueryState | None) -> list[dict[str, Any]]:
        """Posts of ``query`` not published yet, oldest first, paging back with ``cursor``."""
        fresh: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        pages = self.backfill_pages if state is None else self.max_pages
        for page_number in range(pages):
            params = {"q": query, "limit": str(self.page_limit), "sort": "latest"}
            if cursor:
                params["cursor"] = cursor
            try:
                body = await api.search(params)
            except SourceError as exc:
                if cursor and exc.status == 403 and not api.authenticated:
                    log.warning("%s: query %r: later pages need a login (set EARSHOT_BLUESKY_IDENTIFIER and "
                                "EARSHOT_BLUESKY_APP_PASSWORD); older new posts are not recovered", self.name, query)
                    break
                raise
            posts = [p for p in body["posts"] if isinstance(p, dict) and isinstance(p.get("uri"), str)]
            reached = False
            for post in posts:
                seen, too_old = state.covers(post, self.overlap) if state is not None else (False, False)
                reached = reached or too_old
                if not seen:
                    fresh.setdefault(post["uri"], post)  # a post can shift onto the next page: once
            cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
            if reached or not cursor or not posts:
                break
        else:
            if state is not None:
                log.warning("%s: query %r: more than %d pages of new posts; older ones may be missed "
                            "(poll more often)", self.name, query, pages)
        return sorted(fresh.values(), key=_indexed_key)


def _dump_queries(states: Mapping[str, QueryState | None]) -> dict[str, Any]:
    return {"queries": {q: s.to_json() for q, s in states.items() if s is not None}}


# --- Command line -----------------------------------------------------------------------------


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``earshot connect bluesky`` options (the app password is a setting, never an option)."""
    parser.add_argument("--jetstream", action="store_true", help="follow the Jetstream firehose (posts)")
    parser.add_argument("--search", action="append", default=[], metavar="Q",
                        help="poll searchPosts (sort=latest) for Q instead; repeatable")
    parser.add_argument("--match", action="append", default=[], metavar="TEXT",
                        help="keep only posts whose text contains TEXT (case-insensitive; repeatable, any)")
    parser.add_argument("--jetstream-url", default=JETSTREAM_URL, help=f"Jetstream subscribe URL (default {JETSTREAM_URL})")
    parser.add_argument("--api-url", default=None,
                        help=f"searchPosts base URL (default {API_URL}, or the account's PDS when logged in)")
    parser.add_argument("--auth-url", default=AUTH_URL, help=f"createSession service (default {AUTH_URL})")
    parser.add_argument("--interval", type=_positive_float, default=None, metavar="S",
                        help="seconds between searchPosts polls (default: EARSHOT_CONNECTOR_POLL_S)")
    parser.add_argument("--name", default=None, help="checkpoint name (default: bluesky or bluesky-search)")


def build(args: argparse.Namespace, settings: Any, keep: Keep | None = None) -> JetstreamSource | SearchSource:
    """The source ``earshot connect bluesky`` runs; ``keep`` overrides the ``--match`` filter."""
    if bool(args.jetstream) == bool(args.search):
        raise SystemExit("bluesky: give --jetstream or --search Q (one of the two)")
    keep = keep or substring_matcher(args.match)
    if args.jetstream:
        if keep is None:
            # The firehose carries every post on the network: keep what the listening queries match.
            import asyncio

            from connectors.listening_filter import record_matcher, stored_queries

            queries = asyncio.run(stored_queries(settings))
            log.info("bluesky: filtering the firehose with %d listening queries", len(queries))
            keep = record_matcher(queries)
        try:
            return JetstreamSource(args.jetstream_url, keep=keep, name=args.name or SOURCE,
                                   backoff_base_s=settings.connector_backoff_base_s,
                                   backoff_cap_s=settings.connector_backoff_cap_s)
        except ValueError as exc:
            raise SystemExit(f"bluesky: {exc}") from None
    return SearchSource(args.search, api_url=args.api_url, auth_url=args.auth_url,
                        identifier=settings.bluesky_identifier, password=settings.bluesky_app_password,
                        keep=keep, name=args.name or f"{SOURCE}-search",
                        interval_s=args.interval or settings.connector_poll_s,
                        backoff_base_s=settings.connector_backoff_base_s,
                        backoff_cap_s=settings.connector_backoff_cap_s)
