"""X (Twitter) API v2 posts as mentions: pure functions, no I/O (``connectors.x`` fetches).

What real X data needs (seen in recorded responses, issue 15):
- ``text`` arrives with ``&amp;``, ``&lt;``, ``&gt;`` escaped; t.co links stand for other URLs;
- a retweet's ``text`` is a cut-off copy (``RT @x: ...…``) and its ``public_metrics`` are the
  original's: the original comes through ``includes.tweets`` (``referenced_tweets.id``);
- posts over 280 characters carry the whole text only in ``note_tweet``;
- an edit is a new post id listing every version in ``edit_history_tweet_ids``;
- deletions come in several formats (batch compliance lines, v1.1 notices, v2 events);
- withheld or unavailable posts carry a notice instead of the author's text;
- ``lang`` may be a retired code (``in``) or one of X's non-languages (``qme``, ``und``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from connectors import common
from connectors.base import Outgoing
from connectors.common import utc_iso

log = logging.getLogger(__name__)

SOURCE = "x"
NOT_A_LANGUAGE = common.NOT_A_LANGUAGE  # X's "qme", "und", ...: no language
SNOWFLAKE_EPOCH_MS = 1288834974657  # X post ids carry their creation time: (id >> 22) + this, in ms



# --- normalisation -------------------------------------------------------------------------


def users_by_id(includes: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``includes.users`` of a response, by user id (the ``author_id`` expansion)."""
    users = (includes or {}).get("users") or []
    return {str(u["id"]): u for u in users if isinstance(u, dict) and "id" in u}


def posts_by_id(includes: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``includes.tweets`` of a response (referenced posts: retweeted, quoted, replied to), by id."""
    posts = (includes or {}).get("tweets") or []
    return {str(t["id"]): t for t in posts if isinstance(t, dict) and "id" in t}


def media_by_key(includes: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``includes.media`` of a response, by media key."""
    media = (includes or {}).get("media") or []
    return {str(m["media_key"]): m for m in media if isinstance(m, dict) and "media_key" in m}


def unescape_text(text: str) -> str:
    """X's ``text`` with the three entities X escapes (``&amp;``, ``&lt;``, ``&gt;``) undone.

    Only these three: X escapes nothing else, so ``&copy;`` in a post is what the author typed.
    ``&amp;`` goes last, so ``&amp;lt;`` (the author typed ``&lt;``) stays ``&lt;``.
    """
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def snowflake_time(post_id: str) -> str | None:
    """The creation time (ISO, UTC) encoded in an X post id, or None for a pre-2010 id."""
    try:
        ms = (int(post_id) >> 22) + SNOWFLAKE_EPOCH_MS
    except (TypeError, ValueError):
        return None
    if int(post_id) < (1 << 22) * 1000:  # sequential ids from before snowflakes: no time in them
        return None
    # Whole seconds, as the API's created_at: every version of a post lands on the same time.
    return datetime.fromtimestamp(ms // 1000, timezone.utc).isoformat()


def full_text(tweet: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """A post's whole text and the entities that go with it: posts over 280 characters carry
    the full text only in ``note_tweet``; the t.co links are replaced by the URLs they stand
    for, so links match the brands' domains."""
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"].strip():
        text, entities = note["text"], note.get("entities") or tweet.get("entities") or {}
    else:
        text, entities = str(tweet.get("text") or ""), tweet.get("entities") or {}
    for url in entities.get("urls") or []:
        if isinstance(url, dict) and url.get("url") and url.get("expanded_url"):
            text = text.replace(str(url["url"]), str(url["expanded_url"]))
    return unescape_text(text), entities


_RT_PREFIX = re.compile(r"^RT @(\w{1,50}): ")
# The notices X substitutes for a post's text: withheld in the requester's country (or
# everywhere, "XX"/"XY"), or its account temporarily unavailable (media policy), ...
_PLACEHOLDERS = (
    ("withheld", re.compile(r"^(?:This Tweet from @\w+|@\w+'s account) has been withheld\b")),
    ("unavailable", re.compile(r"^@\w+'s account is temporarily unavailable because it violates\b")),
    ("unavailable", re.compile(r"^This (?:Tweet|Post) (?:is unavailable|is from a suspended account|"
                               r"was deleted by the (?:Tweet|Post) author|violated the (?:Twitter|X) Rules)\b")),
)


def placeholder_reason(tweet: Mapping[str, Any]) -> str | None:
    """``"withheld"`` or ``"unavailable"`` when X sent one of its notices in place of the post's
    text (the author's words are not there, and indexing the notice would make the post
    "mention" its author), else None."""
    text = str(tweet.get("text") or "").strip()
    for reason, notice in _PLACEHOLDERS:
        if notice.search(text):
            return reason
    return None


def withheld_placeholder(tweet: Mapping[str, Any]) -> bool:
    """Whether X sent a notice in place of the post's text (see ``placeholder_reason``)."""
    return placeholder_reason(tweet) is not None


def _tags(entities: Mapping[str, Any], kind: str, key: str) -> list[str]:
    return [str(e[key]) for e in entities.get(kind) or [] if isinstance(e, dict) and e.get(key)]


def _referenced(tweet: Mapping[str, Any], kind: str) -> str | None:
    refs = [r for r in tweet.get("referenced_tweets") or [] if isinstance(r, dict)]
    return next((str(r["id"]) for r in refs if r.get("type") == kind and r.get("id")), None)


def edit_position(tweet: Mapping[str, Any]) -> tuple[str, int, int]:
    """(the id of the first version, this version's number from 1, versions known so far).

    An edit arrives as a new post id whose ``edit_history_tweet_ids`` lists every version,
    oldest first; the first one is the post's stable identity.
    """
    native_id = str(tweet["id"])
    history = [str(i) for i in tweet.get("edit_history_tweet_ids") or [] if i is not None]
    if not history:
        return native_id, 1, 1
    version = history.index(native_id) + 1 if native_id in history else len(history)
    return history[0], version, len(history)


def tweet_record(tweet: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], *,
                 rule_tags: Sequence[str] = (), via: str = "stream",
                 posts: Mapping[str, Mapping[str, Any]] | None = None,
                 media: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A ``Mention``-shaped dict for one v2 post (``users``: ``includes.users`` by id;
    ``posts``: ``includes.tweets`` by id; ``media``: ``includes.media`` by key).

    - An edited post keeps the id of its first version (``raw.edit_version`` says which one
      this is), so the latest version replaces the earlier ones in the index.
    - A retweet carries the original's full text, no metrics of its own (X reports the
      original's), and ``raw.echo_of`` = the original's mention id: it is a share of that
      post, counted as its echo, not a new voice.
    - A quote keeps its own text and links the quoted post (``raw.quoted_id``).

    ``rule_tags``: the tags of the stream rules (or backfilled rules) it matched; ``via``:
    ``stream``, ``backfill`` or ``search``, kept under ``raw`` for tracing.
    """
    posts = posts or {}
    native_id = str(tweet["id"])
    first_id, version, versions = edit_position(tweet)
    author_id = str(tweet["author_id"]) if tweet.get("author_id") is not None else None
    user = users.get(author_id or "") or {}
    user_metrics = user.get("public_metrics") or {}
    metrics = tweet.get("public_metrics") or {}
    referenced = [r for r in tweet.get("referenced_tweets") or [] if isinstance(r, dict)]
    replied_to = _referenced(tweet, "replied_to")
    retweeted = _referenced(tweet, "retweeted")
    quoted = _referenced(tweet, "quoted")
    username = user.get("username")
    text, entities = full_text(tweet)
    raw: dict[str, Any] = {
        "author_id": author_id,
        "conversation_id": tweet.get("conversation_id"),
        "matching_rules": list(rule_tags),
        "referenced_tweets": referenced,
        "author_created_at": user.get("created_at"),
        "author_tweet_count": user_metrics.get("tweet_count"),
        "via": via,
    }
    if retweeted is not None:
        original = posts.get(retweeted)
        raw["echo_of"] = f"{SOURCE}:{retweeted}"
        raw["reposted_id"] = f"{SOURCE}:{retweeted}"
        if original is not None and (original.get("text") or original.get("note_tweet")) \
                and placeholder_reason(original) is None:
            text, entities = full_text(original)
            original_user = users.get(str(original.get("author_id") or "")) or {}
            raw["reposted_author"] = original_user.get("username")
        else:  # not expanded: only X's cut-off "RT @x: ...…" copy is known; keep the original's words
            raw["text_truncated"] = True
            match = _RT_PREFIX.match(text)
            if match:
                raw["reposted_author"] = match.group(1)
                text = text[match.end():].removesuffix("…").rstrip() or text
        # X reports the original's counts on a retweet: they are not this share's.
        raw["original_metrics"] = dict(metrics)
        shares = likes = replies = 0
    else:
        likes = int(metrics.get("like_count") or 0)
        # A share on X is a repost or a quote: both spread the post to new audiences.
        shares = int(metrics.get("retweet_count") or 0) + int(metrics.get("quote_count") or 0)
        replies = int(metrics.get("reply_count") or 0)
    if quoted is not None:
        raw["quoted_id"] = f"{SOURCE}:{quoted}"
    raw.update(hashtags=_tags(entities, "hashtags", "tag"), cashtags=_tags(entities, "cashtags", "tag"),
               mentions=_tags(entities, "mentions", "username"))
    alt_texts = [str(m["alt_text"]) for key in (tweet.get("attachments") or {}).get("media_keys") or []
                 if isinstance((m := (media or {}).get(str(key))), dict) and m.get("alt_text")]
    if alt_texts:
        raw["media_alt_text"] = alt_texts
        text = "\n".join([text, *(f"[image: {alt}]" for alt in alt_texts)]) if text.strip() \
            else "\n".join(f"[image: {alt}]" for alt in alt_texts)
    if versions > 1:
        raw.update(native_id=native_id, edit_version=version, edit_versions=versions,
                   edit_history=[str(i) for i in tweet.get("edit_history_tweet_ids") or []])
    if tweet.get("withheld"):
        raw["withheld"] = tweet["withheld"]
    record: dict[str, Any] = {
        "id": f"{SOURCE}:{first_id}",
        "source": SOURCE,
        "url": f"https://x.com/{username}/status/{native_id}" if username
        else f"https://x.com/i/web/status/{native_id}",
        "author": {
            "handle": username,
            "display_name": user.get("name"),
            "followers": user_metrics.get("followers_count"),
            "verified": bool(user.get("verified", False)),
        },
        "text": text,
        "metrics": {"likes": likes, "shares": shares, "replies": replies},
        "in_reply_to": f"{SOURCE}:{replied_to}" if replied_to else None,
        "raw": raw,
    }
    record["lang"] = common.settle_language(tweet.get("lang"), text, raw)
    # An edit's created_at is the edit's time; the post was published with its first version
    # (whose time its id carries), and the index partitions by that time.
    created_at = utc_iso(tweet.get("created_at")) if version == 1 and versions == 1 else None
    if versions > 1:
        raw["edited_at"] = utc_iso(tweet.get("created_at"))
        created_at = snowflake_time(first_id) or utc_iso(tweet.get("created_at"))
    if created_at is not None:  # absent: the runner stamps the publication time instead
        record["created_at"] = created_at
    return record


def post_outgoing(post: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], tags: Sequence[str] = (),
                  via: str = "stream", posts: Mapping[str, Mapping[str, Any]] | None = None,
                  media: Mapping[str, Mapping[str, Any]] | None = None) -> Outgoing:
    """What to publish for one post of a response: its record; a deletion if X sent its
    "withheld"/"unavailable" notice instead of the text; the raw post (dead-lettered) if it cannot be read."""
    native_id = str(post.get("id", ""))
    reason = placeholder_reason(post)
    if reason is not None:
        # Not the author's words: nothing to index, and any copy indexed before goes.
        mention = f"{SOURCE}:{edit_position(post)[0]}"
        return Outgoing(key=mention, record={"id": mention, "source": SOURCE, "reason": reason}, deleted=True)
    try:
        record = tweet_record(post, users, rule_tags=tags, via=via, posts=posts, media=media)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("X post %s not normalised (%r): dead-lettered", native_id, exc)
        return _unparsed(json.dumps(post, ensure_ascii=False), native_id or None)
    return Outgoing(key=record["id"], record=record)


def page_outgoing(message: Mapping[str, Any], via: str = "search") -> list[Outgoing]:
    """Everything to publish for one response body or stream line (``data`` + ``includes``, or
    a deletion notice), in order, without de-duplication (``XSource`` adds that)."""
    deletion = deletion_outgoing(message)
    if deletion is not None:
        return [deletion]
    data = message.get("data")
    found = [data] if isinstance(data, dict) else data if isinstance(data, list) else []
    includes = message.get("includes")
    users, posts, media = users_by_id(includes), posts_by_id(includes), media_by_key(includes)
    tags = [str(r["tag"]) for r in message.get("matching_rules") or [] if isinstance(r, dict) and r.get("tag")]
    return [post_outgoing(p, users, tags, via, posts, media) for p in found
            if isinstance(p, dict) and p.get("id") is not None and "text" in p]


# The reasons X gives in compliance data, and the message keys of deletion notices.
_V2_DELETION_EVENTS = ("delete", "drop", "tweet_drop")


def deletion_notice(message: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(post id, reason) of a deletion notice, in any format X sends, else None.

    - batch compliance result lines: ``{"id": "1", "action": "delete", "created_at": ...,
      "reason": "deleted" | "protected" | "suspended" | "deactivated", ...}``
    - v1.1 stream / older batch compliance: ``{"delete": {"status": {"id": 1, "id_str": "1"}, ...}}``
    - v2 compliance stream events: ``{"data": {"delete": {"tweet": {"id": "1", ...}, "event_at": ...}}}``
      and the drop events ``{"data": {"drop": {"tweet": {...}}}}`` (``tweet_drop`` likewise)
    """
    if message.get("action") == "delete" and message.get("id") is not None and "text" not in message:
        reason = message.get("reason")
        return str(message["id"]), str(reason) if reason else None
    delete = message.get("delete")
    if isinstance(delete, dict):
        status = delete.get("status")
        if isinstance(status, dict):
            found = status.get("id_str") or status.get("id")
            return (str(found), None) if found is not None else None
    data = message.get("data")
    if isinstance(data, dict):
        for kind in _V2_DELETION_EVENTS:
            event = data.get(kind)
            if isinstance(event, dict):
                post = event.get("tweet") or {}
                found = post.get("id") if isinstance(post, dict) else None
                return (str(found), None if kind == "delete" else kind) if found is not None else None
    return None


def deleted_post_id(message: Mapping[str, Any]) -> str | None:
    """The post id a deletion notice names (see ``deletion_notice``), else None."""
    notice = deletion_notice(message)
    return notice[0] if notice else None


def deletion_outgoing(message: Mapping[str, Any]) -> Outgoing | None:
    """The ``Outgoing.deletion`` for a deletion notice (reason kept), else None."""
    notice = deletion_notice(message)
    if notice is None:
        return None
    post_id, reason = notice
    out = Outgoing.deletion(f"{SOURCE}:{post_id}", SOURCE)
    if reason:  # the compliance reason ("protected", "suspended", ...) or the event kind ("drop")
        out = Outgoing(key=out.key, record={**(out.record or {}), "reason": reason[:256]}, deleted=True)
    return out


def _id_key(post_id: str) -> int:
    """Post ids are snowflakes: numeric order is time order (string order is not)."""
    return int(post_id)


def newest(a: str | None, b: str | None) -> str | None:
    """The later of two post ids (None = unknown)."""
    if a is None or b is None:
        return a if b is None else b
    return a if _id_key(a) >= _id_key(b) else b


def _unparsed(line: str | bytes, native_id: str | None = None) -> Outgoing:
    """Input we could not read: published as-is so the pipeline dead-letters it with a reason."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    key = f"{SOURCE}:{native_id}" if native_id else f"{SOURCE}:unparsed:{hashlib.sha1(data, usedforsecurity=False).hexdigest()[:16]}"
    return Outgoing(key=key, unparsed=data)


class EditVersions:
    """The latest version handed out per edited post (by stable mention id), for the last
    ``size`` edited posts: an earlier version arriving after a later one is not published."""

    def __init__(self, size: int = 50_000):
        self._latest: dict[str, int] = {}
        self._size = size

    def newer(self, mention_id: str, version: int) -> bool:
        """True if ``version`` is the newest seen for ``mention_id`` (and remember it)."""
        if version <= 1 and mention_id not in self._latest:
            return True  # the common case, an unedited post: nothing to remember
        if version < self._latest.get(mention_id, 0):
            return False
        self._latest.pop(mention_id, None)
        self._latest[mention_id] = version
        if len(self._latest) > self._size:
            self._latest.pop(next(iter(self._latest)))
        return True
