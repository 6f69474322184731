"""RSS 2.0 and Atom feeds (news sites, blogs, press rooms) as a live source, polled with conditional GET.

Platform documents this follows:
- RSS 2.0 specification, https://www.rssboard.org/rss-specification: ``<item>`` with ``guid``,
  ``link``, ``title``, ``description``, ``pubDate``, ``author``, ``category``.
- RFC 4287, The Atom Syndication Format: ``<entry>`` with ``id``, ``link``, ``title``,
  ``summary``/``content``, ``published``/``updated``, ``author``.
- RFC 9110 (HTTP Semantics) 8.8.2-8.8.3 and 13.1.1/13.1.3 (``ETag``/``Last-Modified`` sent back as
  ``If-None-Match``/``If-Modified-Since``) and 15.4.5 (``304 Not Modified``): conditional GET, so a
  feed that has not changed costs its server one empty answer.
- feedparser 6 documentation, https://feedparser.readthedocs.io/: normalised entry fields,
  sanitized HTML in ``summary``/``content``, ``*_parsed`` dates as UTC ``struct_time``.

feedparser only parses here: the bytes are fetched with ``PoliteClient`` (httpx), which honours
429/``Retry-After`` and retries 5xx, and handed to ``feedparser.parse`` as a stream, so feedparser
never opens a URL or a file itself.

Feeds have no "since id": each poll returns the latest N entries. The checkpoint therefore keeps,
per feed, the ETag, the Last-Modified date and the ids of the entries already published (bounded,
``seen_limit`` per feed, always including every id still in the feed), so a restart publishes no
entry twice and skips none.

Each feed is followed by its own task: a feed that is down (retried with backoff by
``PoliteClient``) does not hold up the others. Batches reach the runner one at a time, and each
carries the checkpoint of every feed as of the batches already handed out.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import hashlib
import io
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

import feedparser
import httpx

from connectors.base import Batch, Outgoing
from connectors.common import settle_language
from connectors.feed_dates import parse_date
from connectors.polite import Counters, PoliteClient, SourceError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "rss"
SEEN_PER_FEED = 2000  # entry ids remembered per feed (feeds usually carry 10-100 entries)
USER_AGENT = "earshot-rss/0.1 (social listening; feed reader)"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # "https:", "urn:", "tag:" ...: a global id


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- Checkpoint state -------------------------------------------------------------------------


@dataclass
class FeedState:
    """Where one feed resumes: its validators and the entries already published."""

    etag: str | None = None
    modified: str | None = None  # the Last-Modified header, verbatim (an HTTP date)
    seen: list[str] = field(default_factory=list)  # native ids, oldest first

    @classmethod
    def from_json(cls, data: Any) -> "FeedState":
        if not isinstance(data, dict):
            return cls()
        seen = data.get("seen")
        return cls(etag=data.get("etag") or None, modified=data.get("modified") or None,
                   seen=[s for s in seen if isinstance(s, str)] if isinstance(seen, list) else [])

    def to_json(self) -> dict[str, Any]:
        return {"etag": self.etag, "modified": self.modified, "seen": list(self.seen)}


def load_states(checkpoint: dict[str, Any] | None, urls: Iterable[str]) -> dict[str, FeedState]:
    """Each configured feed's state from a checkpoint (a fresh state for a feed it lacks)."""
    feeds = (checkpoint or {}).get("feeds")
    feeds = feeds if isinstance(feeds, dict) else {}
    return {url: FeedState.from_json(feeds.get(url)) for url in urls}


def dump_states(states: dict[str, FeedState]) -> dict[str, Any]:
    """The JSON-ready checkpoint of all feeds."""
    return {"feeds": {url: state.to_json() for url, state in states.items()}}


def remember(previous: list[str], current: list[str], limit: int = SEEN_PER_FEED) -> list[str]:
    """Ids to keep as seen (oldest first): the latest earlier ones, then every id in the feed now.

    ``previous`` and ``current`` are oldest first. At most ``limit`` ids, except that ids still in
    the feed are always kept, whatever ``limit`` says: forgetting one would publish it again at
    the next poll.
    """
    in_feed = list(dict.fromkeys(current))
    kept = set(in_feed)
    older = [i for i in previous if i not in kept]
    room = max(limit - len(in_feed), 0)
    return (older[len(older) - room:] if room else []) + in_feed


# --- Normalisation ----------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """Text of an HTML fragment: tags dropped, entities unescaped, block elements as line breaks."""

    BLOCKS = {"address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
              "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
              "section", "table", "tr", "ul"}
    SKIP = {"script", "style", "template"}  # feedparser's sanitizer drops these; a raw value may not

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:  # <br/>: one break, not an opening and a closing one
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def tidy(text: str) -> str:
    """Runs of spaces (incl. no-break spaces) as one, at most one blank line, no edge whitespace."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def strip_html(value: str) -> str:
    """Plain text of an HTML fragment (tags stripped, ``&amp;`` and friends unescaped)."""
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    return tidy("".join(parser.parts))


def _detail_text(entry: Any, key: str) -> str:
    """``entry[key]`` as plain text: HTML stripped when feedparser says the value is HTML."""
    value = entry.get(key) or ""
    detail = entry.get(f"{key}_detail") or {}
    if "html" in str(detail.get("type", "text/html")):
        return strip_html(value)
    return tidy(value)


def entry_body(entry: Any) -> str:
    """The entry's summary (RSS ``description``, Atom ``summary``), else its first ``content``."""
    body = _detail_text(entry, "summary")
    if body:
        return body
    for content in entry.get("content") or []:
        value = content.get("value") or ""
        text = strip_html(value) if "html" in str(content.get("type", "text/html")) else tidy(value)
        if text:
            return text
    return ""


def entry_text(entry: Any) -> str:
    """``title + "\\n\\n" + summary`` as plain text (either alone when the other is missing or equal)."""
    title = _detail_text(entry, "title")
    body = entry_body(entry)
    if not body or body == title:
        return title
    if not title:
        return body
    return f"{title}\n\n{body}"


def clip_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes (on a character boundary); and whether it was cut."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode("utf-8", "ignore").rstrip(), True


def entry_key(entry: Any, feed_url: str) -> str | None:
    """What identifies the entry: its id (RSS ``guid``, Atom ``id``), else its link, else title + date.

    A key without a scheme (``guid`` values like ``"1234"``) is only unique within its feed, so it
    is qualified with the feed's URL; URLs, URNs and tag URIs are global, so the same entry in two
    feeds (a blog's main and category feeds) gets one mention id.
    """
    key = (entry.get("id") or entry.get("link") or "").strip()
    if not key:
        title, date = entry.get("title") or "", entry.get("published") or entry.get("updated") or ""
        if not (title or date):
            return None
        key = f"{title}|{date}"
    return key if _SCHEME.match(key) else f"{feed_url}#{key}"


def native_id(key: str) -> str:
    """A stable, compact id for an entry key: 128 bits of SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


_DATE_FIELDS = ("published", "updated", "created", "dc_date", "date", "pubdate", "issued", "modified")


def entry_time(entry: Any) -> datetime | None:
    """When the entry was published (else last updated), UTC; None if the feed does not say
    in any form we can read."""
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(name)
        if parsed:
            # feedparser normalises every date format it knows to a UTC struct_time.
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    for name in _DATE_FIELDS:  # the strings feedparser could not read (localised names, ...)
        when = parse_date(entry.get(name))
        if when is not None:
            return when
    return None


def feed_time(feed: Any) -> datetime | None:
    """The feed's own date (``lastBuildDate``, ``pubDate``, Atom ``updated``), UTC, or None."""
    return entry_time(feed)


def language(*candidates: Any) -> str | None:
    """The primary subtag of the first BCP 47 tag given (``"en-US"`` -> ``"en"``)."""
    for tag in candidates:
        if isinstance(tag, str) and tag.strip():
            primary = tag.strip().split("-")[0].split("_")[0].lower()
            if primary.isalpha() and 2 <= len(primary) <= 3:
                return primary
    return None


_EMAIL = r"[^\s@()<>]+@[^\s@()<>]+"
_AUTHOR_FORMS = (
    re.compile(rf"^{_EMAIL}\s*\((?P<name>[^()]+)\)$"),  # RSS 2.0 <author>: "jo@example.com (Jo Doe)"
    re.compile(rf"^(?P<name>[^()<>]+?)\s*[(<]{_EMAIL}[)>]$"),  # feedparser's Atom form, "Jo Doe (jo@...)"
)


def author_name(entry: Any) -> str | None:
    """The entry author's name (RSS ``author``/``dc:creator``, Atom ``author/name``), never an e-mail address.

    Parsed from feedparser's ``author`` string: its ``author_detail`` splits addresses with long
    top-level domains wrongly (``"press@acme.example (Jo)"`` -> name ``"ple (Jo"``).
    """
    value = " ".join((entry.get("author") or "").split())
    for form in _AUTHOR_FORMS:
        match = form.match(value)
        if match:
            return match["name"].strip()
    if re.fullmatch(_EMAIL, value):
        return None  # an address alone: personal data, and not a name
    return value or (entry.get("author_detail") or {}).get("name") or None


def normalise(entry: Any, feed: Any, feed_url: str, now: datetime,
              max_text_bytes: int = 64 * 1024) -> dict[str, Any] | None:
    """The Mention-shaped record of a feed entry, or None for an entry without any text."""
    key = entry_key(entry, feed_url)
    text = entry_text(entry)
    if key is None or not text:
        return None
    text, truncated = clip_utf8(text, max_text_bytes)
    feed_title = _detail_text(feed, "title") or None
    name = author_name(entry) or feed_title
    raw: dict[str, Any] = {
        "feed_url": feed_url,
        "feed_title": feed_title,
        "entry_id": entry.get("id") or entry.get("link") or None,
        "tags": [t.get("term") for t in entry.get("tags") or [] if t.get("term")],
    }
    created = entry_time(entry)
    estimated = created is None
    if created is None:
        # Undated (or unreadable): the feed's own date is the best bound, else first seen now.
        # Either is a guess, marked so spike counting and trends leave it out: a first poll of
        # a backlog stamped "now" would otherwise be a fake spike.
        created = feed_time(feed)
        if created is not None and created <= now:
            raw["created_at_from"] = "feed"
        else:
            created = now
            raw["created_at_from"] = "first_seen"
    elif created > now:
        # A scheduled post or a wrong zone: the pipeline refuses dates in the future; keep the claim.
        raw["created_at_reported"] = created.isoformat()
        created = now
        estimated = True
    if truncated:
        raw["truncated"] = True
    return {
        "id": f"{SOURCE}:{native_id(key)}",
        "source": SOURCE,
        "url": entry.get("link") or None,
        "author": {"handle": name[:256] if name else None, "display_name": name[:512] if name else None,
                   "followers": None, "verified": False},
        "text": text,
        "lang": settle_language(language(feed.get("language")), text, raw),
        "created_at": created.isoformat(),
        **({"created_at_estimated": True} if estimated else {}),
        "metrics": {"likes": 0, "shares": 0, "replies": 0},  # feeds carry no engagement
        "in_reply_to": None,
        "raw": raw,
    }


def parse_feed(response: httpx.Response) -> Any:
    """feedparser's reading of a fetched feed; the response headers give charset and base URL."""
    headers = {"content-location": str(response.url)}  # base for relative links
    for name in ("content-type", "content-language"):
        if name in response.headers:
            headers[name] = response.headers[name]
    # A stream, not bytes: given bytes, feedparser first tries them as a file name.
    return feedparser.parse(io.BytesIO(response.content), response_headers=headers)


def conditional_headers(state: FeedState) -> dict[str, str]:
    """``If-None-Match``/``If-Modified-Since`` from the validators of the last published fetch."""
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.modified:
        headers["If-Modified-Since"] = state.modified
    return headers


# --- The source -------------------------------------------------------------------------------


@dataclass
class _Polled:
    """One poll of one feed: records oldest first, and the feed's new state (None: unchanged)."""

    url: str
    items: list[Outgoing]
    state: FeedState | None


_Message = _Polled | BaseException | None  # None: that feed's task has finished (max_polls)


class RssSource:
    """Follows RSS/Atom feeds; one ``Batch`` per poll per feed.

    ``interval_s``: seconds between polls of a feed. ``max_polls`` (tests, one-shot runs): polls per
    feed before ``batches`` ends; None = forever. ``sleep`` is used for the poll interval and for
    every wait ``PoliteClient`` makes, so tests can record waits instead of sleeping. ``clock``
    gives "now" (UTC) for undated entries.
    """

    def __init__(self, urls: list[str], *, name: str = SOURCE, interval_s: float = 60.0,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0, seen_limit: int = SEEN_PER_FEED,
                 max_text_bytes: int = 64 * 1024, timeout_s: float = 30.0, max_polls: int | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], datetime] = utc_now):
        if not urls:
            raise ValueError("RssSource needs at least one feed URL")
        self.urls = list(dict.fromkeys(urls))  # the same feed twice would publish its entries twice
        self.name = name
        self.interval_s = interval_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.seen_limit = seen_limit
        self.max_text_bytes = max_text_bytes
        self.timeout_s = timeout_s
        self.max_polls = max_polls
        self.sleep = sleep
        self.clock = clock
        self.counters = Counters()

    async def batches(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        """Poll every feed until cancelled (or ``max_polls`` each), resuming from ``checkpoint``."""
        states = load_states(checkpoint, self.urls)
        queue: asyncio.Queue[_Message] = asyncio.Queue(maxsize=len(self.urls))
        headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout_s, follow_redirects=True) as http:
            client = PoliteClient(http, counters=self.counters, backoff_base_s=self.backoff_base_s,
                                  backoff_cap_s=self.backoff_cap_s, sleep=self.sleep)
            tasks = [asyncio.create_task(self._follow(client, url, states[url], queue)) for url in self.urls]
            try:
                running = len(tasks)
                while running:
                    message = await queue.get()
                    if message is None:
                        running -= 1
                    elif isinstance(message, BaseException):
                        raise message
                    elif message.state is None:
                        yield Batch(items=message.items, checkpoint=None)
                    else:
                        # Only now, as its batch is handed out, does the feed's new state join the
                        # checkpoint: a saved checkpoint never covers entries not yet published.
                        states[message.url] = message.state
                        yield Batch(items=message.items, checkpoint=dump_states(states))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, client: PoliteClient, url: str, state: FeedState, queue: asyncio.Queue) -> None:
        """Poll one feed every ``interval_s``, handing each poll's result to ``batches``."""
        try:
            polls = 0
            while True:
                polled = await self.poll(client, url, state)
                await queue.put(polled)
                state = polled.state or state
                polls += 1
                if self.max_polls is not None and polls >= self.max_polls:
                    break
                await self.sleep(self.interval_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: raise it from batches(), not die unseen
            await queue.put(exc)
            return
        await queue.put(None)

    async def poll(self, client: PoliteClient, url: str, state: FeedState) -> _Polled:
        """Fetch one feed once; its new entries as records and its new state (None if unchanged)."""
        try:
            response = await client.request("GET", url, headers=conditional_headers(state))
        except SourceError as exc:
            # A feed gone (404/410) or refusing us (403): the other feeds go on; this one is tried
            # again next poll, in case it was a blip on the publisher's side.
            log.error("%s: %s; trying again in %.0f s", self.name, exc, self.interval_s)
            return _Polled(url, [], None)
        if response.status_code == 304:
            return _Polled(url, [], None)
        if response.status_code != 200:
            log.error("%s: HTTP %d from %s, not a feed; trying again later", self.name, response.status_code, url)
            return _Polled(url, [], None)
        parsed = parse_feed(response)
        if not parsed.get("version") and not parsed.entries:
            # Not a feed at all (an HTML error page, say; feedparser names no format): keep the old
            # validators, so the next poll fetches it in full again.
            log.error("%s: %s is not a readable feed: %s", self.name, url, parsed.get("bozo_exception"))
            return _Polled(url, [], None)
        return self._fresh(url, parsed, state, response.headers)

    def _fresh(self, url: str, parsed: Any, state: FeedState, headers: httpx.Headers) -> _Polled:
        """The entries of ``parsed`` not published before, oldest first, and the feed's next state."""
        now = self.clock()
        seen = set(state.seen)
        first_poll = not state.seen  # no entry of this feed was published before
        current: list[str] = []  # ids in the document, oldest first
        records: list[dict[str, Any]] = []
        # Feeds list newest first by convention: walk them oldest first, then order by date
        # (stable, so entries with equal or no dates keep the document's order).
        for entry in reversed(parsed.entries):
            key = entry_key(entry, url)
            if key is None:
                continue
            ident = native_id(key)
            current.append(ident)
            if ident in seen:
                continue
            seen.add(ident)  # an entry listed twice in one document is published once
            record = normalise(entry, parsed.feed, url, now, self.max_text_bytes)
            if record is None:
                log.info("%s: entry %r of %s has no text; skipped", self.name, key, url)
                continue
            if first_poll:
                # What a feed already held when we first read it: history, not news. Its times
                # are the entries' own; none of it may count as a burst of new mentions.
                record["raw"]["backlog"] = True
            records.append(record)
        records.sort(key=lambda r: datetime.fromisoformat(r["created_at"]))
        new_state = FeedState(etag=headers.get("etag"), modified=headers.get("last-modified"),
                              seen=remember(state.seen, current, self.seen_limit))
        items = [Outgoing(key=r["id"], record=r) for r in records]
        return _Polled(url, items, new_state)


# --- Command line -----------------------------------------------------------------------------


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``earshot connect rss`` options."""
    parser.add_argument("--url", action="append", required=True, metavar="URL",
                        help="feed URL (RSS 2.0 or Atom); repeat for several feeds")
    parser.add_argument("--interval", type=_positive_float, default=None, metavar="S",
                        help="seconds between polls of each feed (default: EARSHOT_CONNECTOR_POLL_S)")
    parser.add_argument("--name", default=SOURCE,
                        help="checkpoint name: one per set of feeds followed (default: rss)")


def build(args: argparse.Namespace, settings: Settings) -> RssSource:
    """The source ``earshot connect rss`` runs."""
    for url in args.url:
        if not url.startswith(("http://", "https://")):
            raise SystemExit(f"--url {url!r}: only http:// and https:// feed URLs are supported")
    return RssSource(args.url, name=args.name, interval_s=args.interval or settings.connector_poll_s,
                     backoff_base_s=settings.connector_backoff_base_s,
                     backoff_cap_s=settings.connector_backoff_cap_s,
                     max_text_bytes=settings.max_text_bytes)
