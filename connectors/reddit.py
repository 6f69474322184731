"""Reddit search results and subreddit listings as a live source (JSON API, app-only OAuth).

Platform documents this follows:
- Application-only OAuth, https://github.com/reddit-archive/reddit/wiki/OAuth2#application-only-oauth:
  ``POST https://www.reddit.com/api/v1/access_token`` with HTTP basic auth (client id, secret)
  and ``grant_type=client_credentials`` -> ``{"access_token", "token_type": "bearer",
  "expires_in": <s>}``; API calls then go to ``https://oauth.reddit.com`` with
  ``Authorization: bearer <token>``.
- API reference, https://www.reddit.com/dev/api/: ``GET /search`` (``q``, ``sort=new``,
  ``type=link``), ``GET /r/{sub}/new``, ``GET /r/{sub}/comments``; listings take ``limit`` (at
  most 100) and ``after`` (a fullname); ``raw_json=1`` turns off the legacy HTML escaping of
  ``<``, ``>`` and ``&`` in text fields.
- JSON formats, https://github.com/reddit-archive/reddit/wiki/JSON: ``Listing`` (``after``,
  ``before``, ``children``), things ``t1`` (comment) and ``t3`` (link/post), fullnames
  ``<kind>_<id>``.
- API rules, https://github.com/reddit-archive/reddit/wiki/API (and support.reddithelp.com's
  "Data API Wiki"): a descriptive ``User-Agent``; 100 queries per minute per OAuth client,
  reported in ``X-Ratelimit-Used``/``-Remaining``/``-Reset`` (seconds), which ``PoliteClient``
  honours.

How it resumes: listings are newest first and reach back about 1,000 things. Each poll pages
backwards with ``after`` until it reaches what the previous poll published (the newest fullname
in the checkpoint, or any post older than it, should that one have been deleted), then publishes
oldest first. A first start reads ``backfill_pages`` pages. Reddit's search index can lag a few
seconds behind posting, so a post indexed after a newer one was already published can be missed
by ``--search`` (subreddit listings do not have this lag).

Credentials come only from settings (``EARSHOT_REDDIT_CLIENT_ID``/``_SECRET``); the secret and the
token are never logged or put in a checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.base import Batch, Outgoing
from connectors.polite import Counters, PoliteClient, SourceError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "reddit"
AUTH_URL = "https://www.reddit.com/api/v1/access_token"
API_URL = "https://oauth.reddit.com"
WEB_URL = "https://www.reddit.com"  # permalinks are relative to the web site, not the API host
PAGE_LIMIT = 100  # the most things one listing request returns
CATCHUP_PAGES = 10  # listings reach back ~1,000 things: deeper pages come back empty
RECENT_PER_STREAM = 200  # fullnames remembered per stream (same-second posts, deleted newest post)
TOKEN_MARGIN_S = 60.0  # fetch a new token this long before the old one expires
_SUBREDDIT = re.compile(r"^[A-Za-z0-9_]{2,21}(\+[A-Za-z0-9_]{2,21})*$")  # "python" or "a+b" (a multi)
_GONE = {"[removed]", "[deleted]"}  # what Reddit leaves of removed or deleted text and authors


class RedditAuthError(SourceError):
    """Reddit refused our credentials (token endpoint, or a fresh token refused by the API)."""


# --- What to follow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """One listing to follow: its checkpoint key, API path and query parameters."""

    key: str
    path: str
    params: tuple[tuple[str, str], ...]

    @classmethod
    def search(cls, query: str) -> "Stream":
        return cls(f"search:{query}", "/search", (("q", query), ("sort", "new"), ("type", "link")))

    @classmethod
    def subreddit(cls, name: str) -> "Stream":
        name = subreddit_name(name)
        return cls(f"r/{name}/new", f"/r/{name}/new", ())

    @classmethod
    def comments(cls, name: str) -> "Stream":
        name = subreddit_name(name)
        return cls(f"r/{name}/comments", f"/r/{name}/comments", ())


def subreddit_name(value: str) -> str:
    """``"r/Python"``, ``"/r/Python/"`` or ``"Python"`` -> ``"Python"``; ValueError if not a name."""
    name = re.sub(r"^/?r/", "", value.strip()).strip("/")
    if not _SUBREDDIT.match(name):
        raise ValueError(f"not a subreddit name: {value!r}")
    return name


# --- Checkpoint state -------------------------------------------------------------------------


@dataclass
class StreamState:
    """Where one stream resumes: the newest thing published and the latest fullnames published."""

    newest: str | None = None  # fullname of the newest thing published
    newest_utc: float = 0.0  # its created_utc, unix seconds
    recent: list[str] = field(default_factory=list)  # fullnames published, newest first

    @classmethod
    def from_json(cls, data: Any) -> "StreamState | None":
        if not isinstance(data, dict) or not data.get("newest"):
            return None
        recent = data.get("recent")
        return cls(newest=str(data["newest"]), newest_utc=float(data.get("newest_utc") or 0.0),
                   recent=[r for r in recent if isinstance(r, str)] if isinstance(recent, list) else [])

    def to_json(self) -> dict[str, Any]:
        return {"newest": self.newest, "newest_utc": self.newest_utc, "recent": list(self.recent)}

    def reached(self, data: dict[str, Any]) -> bool:
        """Whether paging back has reached what an earlier poll published (so: stop here)."""
        if fullname(data) in self._published:
            return True
        # The newest post may have been deleted since: anything older was covered anyway.
        return created_utc(data) < self.newest_utc

    @cached_property
    def _published(self) -> set[str]:
        return set(self.recent) | ({self.newest} if self.newest else set())

    def after(self, fresh: list[dict[str, Any]], keep: int = RECENT_PER_STREAM) -> "StreamState":
        """The state once ``fresh`` (newest first) is published too."""
        if not fresh:
            return self
        newest = max(fresh, key=created_utc)
        names = [fullname(d) for d in fresh]
        recent = list(dict.fromkeys(names + self.recent))[:keep]
        if created_utc(newest) >= self.newest_utc:
            return StreamState(newest=fullname(newest), newest_utc=created_utc(newest), recent=recent)
        return StreamState(newest=self.newest, newest_utc=self.newest_utc, recent=recent)


def load_states(checkpoint: dict[str, Any] | None, streams: list[Stream]) -> dict[str, StreamState | None]:
    """Each configured stream's state from a checkpoint (None: a first start for that stream)."""
    saved = (checkpoint or {}).get("streams")
    saved = saved if isinstance(saved, dict) else {}
    return {s.key: StreamState.from_json(saved.get(s.key)) for s in streams}


def dump_states(states: dict[str, StreamState | None]) -> dict[str, Any]:
    return {"streams": {key: state.to_json() for key, state in states.items() if state is not None}}


# --- Normalisation ----------------------------------------------------------------------------


def fullname(data: dict[str, Any]) -> str:
    """A thing's fullname (``t3_abc``); listings carry it as ``name``."""
    return str(data.get("name") or "")


def created_utc(data: dict[str, Any]) -> float:
    """When the thing was posted, unix seconds (0 if Reddit did not say)."""
    try:
        return float(data.get("created_utc") or 0.0)
    except (TypeError, ValueError):
        return 0.0


# Platform fields worth keeping under ``raw`` (the rest of Reddit's ~100 fields are display detail).
_RAW_T3 = ("subreddit_id", "author_fullname", "domain", "is_self", "over_18", "spoiler", "stickied",
           "link_flair_text", "upvote_ratio", "edited", "removed_by_category", "num_crossposts")
_RAW_T1 = ("subreddit_id", "author_fullname", "link_id", "parent_id", "link_title", "link_permalink",
           "edited", "score_hidden", "is_submitter")


def unescape_markdown(text: str) -> str:
    """Reddit's markdown source with the entities it stores for ``&``, ``<``, ``>`` undone
    (they render as the characters; ``&amp;`` in a pasted URL is not part of the URL)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _captions(data: dict[str, Any]) -> list[str]:
    """Captions of a gallery's images (``media_metadata``/``gallery_data``), marked."""
    items = (data.get("gallery_data") or {}).get("items") or [] if isinstance(data.get("gallery_data"), dict) else []
    return [f"[image: {str(i['caption']).strip()}]" for i in items
            if isinstance(i, dict) and isinstance(i.get("caption"), str) and i["caption"].strip()]


def _text(kind: str, data: dict[str, Any]) -> str:
    """A post's ``title + "\\n\\n" + selftext`` (and gallery captions), or a comment's body;
    removed text left out."""
    if kind == "t1":
        body = (data.get("body") or "").strip()
        return "" if body in _GONE else unescape_markdown(body)
    title = unescape_markdown((data.get("title") or "").strip())
    selftext = (data.get("selftext") or "").strip()
    parts = [title] if not selftext or selftext in _GONE else [title, unescape_markdown(selftext)]
    return "\n\n".join(p for p in [*parts, "\n".join(_captions(data))] if p)


def removed_reason(kind: str, data: dict[str, Any]) -> str | None:
    """``"removed"`` (by moderators or Reddit) or ``"deleted"`` (by its author) when a comment's
    body, or a post's text, is gone; else None."""
    body = (data.get("body") if kind == "t1" else data.get("selftext")) or ""
    if body.strip() in _GONE:
        return "deleted" if body.strip() == "[deleted]" else "removed"
    if kind == "t3" and data.get("removed_by_category"):
        return "deleted" if data["removed_by_category"] == "deleted" else "removed"
    return None


def _count(value: Any) -> int:
    """A non-negative count (a comment's score can be negative; the schema counts likes >= 0)."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def normalise(child: dict[str, Any], stream_key: str) -> dict[str, Any] | None:
    """The Mention-shaped record of a listing child (``t3`` post or ``t1`` comment), or None.

    None for other kinds and for comments whose body was removed or deleted (nothing left to read).
    """
    kind, data = child.get("kind"), child.get("data")
    if kind not in ("t1", "t3") or not isinstance(data, dict) or not fullname(data):
        return None
    text = _text(kind, data)
    if not text:
        return None
    author = data.get("author")
    handle = None if not author or author in _GONE else str(author)
    permalink = data.get("permalink")
    raw: dict[str, Any] = {"subreddit": data.get("subreddit"), "fullname": fullname(data), "kind": kind,
                           "stream": stream_key}
    if kind == "t3" and not data.get("is_self") and data.get("url"):
        raw["link_url"] = data["url"]  # what a link post points to
    raw.update({k: data[k] for k in (_RAW_T1 if kind == "t1" else _RAW_T3) if data.get(k) is not None})
    gone = removed_reason(kind, data)
    if gone:
        raw["body_gone"] = gone  # the title is still public; the text was removed or deleted
    parent = data.get("parent_id") if kind == "t1" else None
    return {
        "id": f"{SOURCE}:{fullname(data)}",
        "source": SOURCE,
        "url": f"{WEB_URL}{permalink}" if isinstance(permalink, str) and permalink.startswith("/") else None,
        "author": {"handle": handle, "display_name": None, "followers": None, "verified": False},
        "text": text,
        "lang": None,  # Reddit does not say
        "created_at": datetime.fromtimestamp(created_utc(data), tz=timezone.utc).isoformat(),
        "metrics": {
            "likes": _count(data.get("score", data.get("ups"))),
            "shares": _count(data.get("num_crossposts")),
            "replies": _count(data.get("num_comments")),
        },
        "in_reply_to": f"{SOURCE}:{parent}" if parent else None,
        "raw": raw,
    }


def thing_outgoing(child: dict[str, Any], stream_key: str) -> Outgoing | None:
    """What to publish for a listing child: its record; a deletion for a comment whose body is
    gone (``[removed]``, ``[deleted]``: a copy indexed earlier must go too); None otherwise."""
    record = normalise(child, stream_key)
    if record is not None:
        return Outgoing(key=record["id"], record=record)
    kind, data = child.get("kind"), child.get("data")
    if kind == "t1" and isinstance(data, dict) and fullname(data) and removed_reason(kind, data):
        mention = f"{SOURCE}:{fullname(data)}"
        return Outgoing(key=mention, record={"id": mention, "source": SOURCE, "reason": removed_reason(kind, data)},
                        deleted=True)
    return None


# --- The API ----------------------------------------------------------------------------------


class RedditApi:
    """Listings with an app-only token, fetched when missing or about to expire, and once on a 401.

    ``clock`` is monotonic seconds (injectable so tests can expire a token without waiting).
    """

    def __init__(self, polite: PoliteClient, *, client_id: str, client_secret: SecretStr,
                 auth_url: str = AUTH_URL, api_url: str = API_URL, clock: Callable[[], float] = time.monotonic):
        self.polite = polite
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_url = auth_url
        self.api_url = api_url.rstrip("/")
        self.clock = clock
        self._token: SecretStr | None = None  # SecretStr: a stray repr or log line shows ******
        self._expires_at = 0.0

    async def _fetch_token(self) -> SecretStr:
        try:
            response = await self.polite.request(
                "POST", self.auth_url, auth=(self.client_id, self.client_secret.get_secret_value()),
                data={"grant_type": "client_credentials"})
        except SourceError as exc:
            raise RedditAuthError(exc.status, self.auth_url, "token refused: check EARSHOT_REDDIT_CLIENT_ID "
                                  "and EARSHOT_REDDIT_CLIENT_SECRET") from None
        try:
            body = response.json()
        except ValueError:
            raise RedditAuthError(response.status_code, self.auth_url, "token answer is not JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            # Reddit answers some refusals with 200 and {"error": "..."}; the body holds no secret.
            error = body.get("error") if isinstance(body, dict) else None
            raise RedditAuthError(response.status_code, self.auth_url, f"no access_token in the answer ({error})")
        expires_in = float(body.get("expires_in") or 3600)
        self._token = SecretStr(str(token))
        self._expires_at = self.clock() + max(expires_in - TOKEN_MARGIN_S, 0.0)
        log.info("reddit: new app-only token, valid %.0f s", expires_in)
        return self._token

    async def token(self) -> SecretStr:
        """A token valid for at least ``TOKEN_MARGIN_S`` more seconds."""
        if self._token is None or self.clock() >= self._expires_at:
            return await self._fetch_token()
        return self._token

    async def listing(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """The ``data`` of the Listing at ``path``; a refused token is replaced once, then it raises."""
        url = f"{self.api_url}{path}"
        try:
            return await self._get(url, params)
        except SourceError as exc:
            if exc.status != 401 or isinstance(exc, RedditAuthError):
                raise
        # Revoked or expired early: one fresh token, then give up.
        log.info("reddit: token refused by %s; fetching a new one", path)
        self._token = None
        try:
            return await self._get(url, params)
        except SourceError as exc:
            if exc.status == 401 and not isinstance(exc, RedditAuthError):
                raise RedditAuthError(401, url, "a fresh token was refused too") from None
            raise

    async def _get(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        token = await self.token()
        response = await self.polite.request(
            "GET", url, params=params, headers={"Authorization": f"bearer {token.get_secret_value()}"})
        return _listing_data(response, url)


def _listing_data(response: httpx.Response, url: str) -> dict[str, Any]:
    """The ``data`` of a Listing answer; SourceError for a redirect or anything not a Listing."""
    if 300 <= response.status_code < 400:
        # /r/<unknown>/new redirects to the subreddit search page.
        where = response.headers.get("location", "?")
        raise SourceError(response.status_code, url, f"redirected to {where} (no such subreddit?)")
    try:
        body = response.json()
    except ValueError:
        raise SourceError(response.status_code, url, f"not JSON: {response.text}") from None
    data = body.get("data") if isinstance(body, dict) and body.get("kind") == "Listing" else None
    if not isinstance(data, dict) or not isinstance(data.get("children"), list):
        raise SourceError(response.status_code, url, f"not a Listing: {response.text}")
    return data


# --- The source -------------------------------------------------------------------------------


class RedditSource:
    """Follows Reddit searches and subreddits; one ``Batch`` per poll per stream.

    ``interval_s``: seconds between polls. ``backfill_pages``: pages read on a stream's first
    start; ``catchup_pages``: the most pages read back on later polls. ``max_polls`` (tests,
    one-shot runs): polls before ``batches`` ends; None = forever. ``sleep`` is used for the poll
    interval and every wait ``PoliteClient`` makes; ``clock`` (monotonic s) times token expiry.
    """

    def __init__(self, streams: list[Stream], *, client_id: str, client_secret: SecretStr | str,
                 user_agent: str, name: str = SOURCE, interval_s: float = 60.0, backfill_pages: int = 1,
                 catchup_pages: int = CATCHUP_PAGES, page_limit: int = PAGE_LIMIT, auth_url: str = AUTH_URL,
                 api_url: str = API_URL, backoff_base_s: float = 1.0, backoff_cap_s: float = 300.0,
                 timeout_s: float = 30.0, max_polls: int | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic):
        if not streams:
            raise ValueError("RedditSource needs at least one search or subreddit")
        if not client_id or not client_secret:
            raise ValueError("RedditSource needs a client id and secret")
        self.streams = list(dict.fromkeys(streams))
        self.client_id = client_id
        self.client_secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        self.user_agent = user_agent
        self.name = name
        self.interval_s = interval_s
        self.backfill_pages = max(1, backfill_pages)
        self.catchup_pages = max(1, catchup_pages)
        self.page_limit = max(1, min(page_limit, PAGE_LIMIT))
        self.auth_url = auth_url
        self.api_url = api_url
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.timeout_s = timeout_s
        self.max_polls = max_polls
        self.sleep = sleep
        self.clock = clock
        self.counters = Counters()

    async def batches(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]:
        """Poll every stream until cancelled (or ``max_polls`` times), resuming from ``checkpoint``."""
        states = load_states(checkpoint, self.streams)
        # Redirects are not followed: Reddit answers an unknown subreddit with one (see _listing_data).
        async with httpx.AsyncClient(headers={"User-Agent": self.user_agent}, timeout=self.timeout_s) as http:
            polite = PoliteClient(http, counters=self.counters, backoff_base_s=self.backoff_base_s,
                                  backoff_cap_s=self.backoff_cap_s, sleep=self.sleep)
            api = RedditApi(polite, client_id=self.client_id, client_secret=self.client_secret,
                            auth_url=self.auth_url, api_url=self.api_url, clock=self.clock)
            polls = 0
            while True:
                for stream in self.streams:
                    items, state = await self._poll_stream(api, stream, states[stream.key])
                    if state is None:
                        yield Batch(items=items, checkpoint=None)
                        continue
                    states[stream.key] = state
                    yield Batch(items=items, checkpoint=dump_states(states))
                polls += 1
                if self.max_polls is not None and polls >= self.max_polls:
                    return
                await self.sleep(self.interval_s)

    async def _poll_stream(self, api: RedditApi, stream: Stream,
                           previous: StreamState | None) -> tuple[list[Outgoing], StreamState | None]:
        """New things of one stream, oldest first, and its next state (None: nothing to save)."""
        try:
            fresh = await self._collect(api, stream, previous)
        except RedditAuthError:
            raise  # every stream would fail the same way: stop with the reason
        except SourceError as exc:
            # A private, banned or unknown subreddit, a query Reddit refuses: the other streams go
            # on; this one is tried again next poll.
            log.error("%s: %s: %s", self.name, stream.key, exc)
            return [], None
        if not fresh:
            return [], None
        items = [out for out in (thing_outgoing(child, stream.key) for child in reversed(fresh)) if out is not None]
        state = (previous or StreamState()).after([child["data"] for child in fresh])
        return items, state

    async def _collect(self, api: RedditApi, stream: Stream, previous: StreamState | None) -> list[dict[str, Any]]:
        """Listing children newer than ``previous``, newest first, paging back with ``after``."""
        pages = self.backfill_pages if previous is None else self.catchup_pages
        fresh: list[dict[str, Any]] = []
        names: set[str] = set()
        after: str | None = None
        for _ in range(pages):
            params = dict(stream.params, limit=str(self.page_limit), raw_json="1")
            if after:
                params["after"] = after
            listing = await api.listing(stream.path, params)
            children = [c for c in listing["children"] if isinstance(c, dict) and isinstance(c.get("data"), dict)
                        and fullname(c["data"])]
            for child in children:
                if previous is not None and previous.reached(child["data"]):
                    return fresh
                # New posts arriving while we page shift older ones onto the next page: skip repeats.
                if fullname(child["data"]) not in names:
                    names.add(fullname(child["data"]))
                    fresh.append(child)
            after = listing.get("after")
            if not after or not children:
                return fresh  # the end of the listing
        if previous is not None:
            log.warning("%s: %s: more than %d pages of new things since the last poll; older ones may be "
                        "missed (poll more often)", self.name, stream.key, pages)
        return fresh


# --- Command line -----------------------------------------------------------------------------


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``earshot connect reddit`` options (credentials are settings, never options)."""
    parser.add_argument("--search", action="append", default=[], metavar="Q",
                        help="follow the newest posts matching this Reddit search; repeatable")
    parser.add_argument("--subreddit", action="append", default=[], metavar="S",
                        help="follow the newest posts of r/S; repeatable")
    parser.add_argument("--comments", action="append", default=[], metavar="S",
                        help="follow the newest comments of r/S; repeatable")
    parser.add_argument("--interval", type=_positive_float, default=None, metavar="S",
                        help="seconds between polls (default: EARSHOT_CONNECTOR_POLL_S)")
    parser.add_argument("--name", default=SOURCE, help="checkpoint name (default: reddit)")
    parser.add_argument("--backfill-pages", type=_positive_int, default=1, metavar="N",
                        help="pages of up to 100 read on a first start (default 1)")
    parser.add_argument("--api-url", default=API_URL, help=f"API base URL (default {API_URL})")
    parser.add_argument("--auth-url", default=AUTH_URL, help=f"token endpoint (default {AUTH_URL})")


def build(args: argparse.Namespace, settings: Settings) -> RedditSource:
    """The source ``earshot connect reddit`` runs."""
    if not settings.reddit_client_id or not settings.reddit_client_secret \
            or not settings.reddit_client_secret.get_secret_value():
        raise SystemExit("reddit needs app credentials: set EARSHOT_REDDIT_CLIENT_ID and "
                         "EARSHOT_REDDIT_CLIENT_SECRET (environment or .env); create a 'script' app at "
                         "https://www.reddit.com/prefs/apps")
    try:
        streams = ([Stream.search(q) for q in args.search] + [Stream.subreddit(s) for s in args.subreddit]
                   + [Stream.comments(s) for s in args.comments])
    except ValueError as exc:
        raise SystemExit(f"reddit: {exc}") from None
    if not streams:
        raise SystemExit("reddit: give at least one --search, --subreddit or --comments")
    return RedditSource(streams, client_id=settings.reddit_client_id, client_secret=settings.reddit_client_secret,
                        user_agent=settings.reddit_user_agent, name=args.name,
                        interval_s=args.interval or settings.connector_poll_s, backfill_pages=args.backfill_pages,
                        auth_url=args.auth_url, api_url=args.api_url,
                        backoff_base_s=settings.connector_backoff_base_s,
                        backoff_cap_s=settings.connector_backoff_cap_s)
