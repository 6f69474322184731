"""Real recorded platform responses, read the way each connector reads them.

The files under ``tests/data/platform-payloads/`` are small copies (some trimmed) of recordings
other projects made for their own tests (licences beside them). Each reader here yields what the
connector's own normaliser makes of a recording: ``(payload, Outgoing)`` pairs, so a test can
compare the published fields with the payload they came from. ``roundtrip`` then runs an
``Outgoing`` through ``encode_live`` and ``parse_mention``, as the runner and the pipeline do.

``tally`` counts, per platform, recordings read, records produced, valid records and field
checks passed; given ``root=Path("../shared/data/platform-payloads")`` (the full recordings) it
gives the table of issue 15.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.base import Outgoing
from connectors.runner import encode_live
from pipeline.schema import Deletion, Mention, Rejection, parse_mention

DATA = Path(__file__).parents[1] / "data" / "platform-payloads"
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)  # after every recording; before none of their dates

Pair = tuple[Any, Outgoing]


def roundtrip(out: Outgoing, now: datetime = NOW) -> Mention | Deletion | Rejection:
    """What the pipeline's validator makes of ``out`` as the runner publishes it."""
    return parse_mention(encode_live(out, now), now=now)


# --- X: JSONL of API pages, stream lines and compliance lines -------------------------------


def x_pairs(path: Path) -> Iterator[Pair]:
    """(post or deletion line, Outgoing) for every line of an X recording."""
    from connectors.x_posts import page_outgoing  # the connector's own reading

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue  # a cut-off line (the stream capture's error line): the stream dead-letters it
        if not isinstance(message, dict):
            continue
        outs = page_outgoing(message)
        data = message.get("data")
        posts = [data] if isinstance(data, dict) else data if isinstance(data, list) else [message]
        posts = [p for p in posts if isinstance(p, dict) and ("text" in p or "action" in p or "delete" in p)]
        for post, out in zip(posts, outs, strict=False):
            yield post, out


def x_includes(path: Path) -> dict[str, dict[str, Any]]:
    """Every ``includes.tweets`` post of a recording, by id."""
    from connectors.x_posts import posts_by_id

    found: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.update(posts_by_id(json.loads(line).get("includes")))
        except (json.JSONDecodeError, AttributeError):
            continue
    return found


# --- Bluesky: Jetstream JSONL ---------------------------------------------------------------


def bluesky_pairs(path: Path) -> Iterator[Pair]:
    """(event, Outgoing) for every post create/update/delete of a Jetstream capture."""
    from connectors.bluesky import JetstreamSource, JetstreamState

    source, state = JetstreamSource(), JetstreamState()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        for out in source._handle(line, state):
            yield json.loads(line), out


# --- vcrpy (Mastodon) and betamax (Reddit) cassettes ------------------------------------------


def _body_text(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body or "")
    if body.get("base64_string"):
        data = base64.b64decode(body["base64_string"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return data.decode("utf-8", "replace")
    value = body.get("string") or ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def cassette_responses(path: Path) -> Iterator[tuple[str, str, str]]:
    """(request URI, response content type, response body text) of a vcrpy or betamax cassette."""
    if path.suffix in (".yaml", ".yml"):
        import yaml

        cassette = yaml.safe_load(path.read_text(encoding="utf-8"))
    else:
        cassette = json.loads(path.read_text(encoding="utf-8"))
    for interaction in cassette.get("interactions") or cassette.get("http_interactions") or []:
        response = interaction.get("response") or {}
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        kind = headers.get("content-type") or [""]
        yield (interaction.get("request") or {}).get("uri", ""), (kind[0] if isinstance(kind, list) else kind), \
            _body_text(response.get("body"))


def _statuses(value: Any) -> Iterator[dict[str, Any]]:
    """Mastodon Status objects in a response body (a list, one status, a search result, a context)."""
    if isinstance(value, list):
        for item in value:
            yield from _statuses(item)
    elif isinstance(value, dict):
        if "content" in value and "account" in value and "id" in value and "visibility" in value:
            yield value
        else:
            for key in ("statuses", "ancestors", "descendants"):
                yield from _statuses(value.get(key))


def mastodon_pairs(path: Path) -> Iterator[Pair]:
    """(status or stream event, Outgoing) for every status and stream event of a cassette."""
    from connectors.mastodon import MastodonSource, Timeline
    from connectors.sse import SSEParser

    source = MastodonSource("https://mastodon.social", [Timeline.public()])
    for uri, kind, body in cassette_responses(path):
        if "/api/v1/admin/" in uri:
            continue  # admin views are not timelines
        if "event-stream" in kind or "/streaming/" in uri:
            for event in SSEParser().feed(body + "\n\n"):
                entry = source._event_entry(event.event, event.data, Timeline.public())
                if entry is not None and entry.out is not None:
                    yield {"event": event.event, "data": event.data}, entry.out
            continue
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            continue
        for status in _statuses(value):
            out = source._out(status, "public", "timeline")
            if out is not None:
                yield status, out


def reddit_things(value: Any) -> Iterator[dict[str, Any]]:
    """Every ``t1`` comment and ``t3`` post in a Reddit response body, nested ones included."""
    if isinstance(value, dict):
        if value.get("kind") in ("t1", "t3") and isinstance(value.get("data"), dict):
            yield value
        for item in value.values():
            yield from reddit_things(item)
    elif isinstance(value, list):
        for item in value:
            yield from reddit_things(item)


def reddit_pairs(path: Path) -> Iterator[Pair]:
    """(listing child, Outgoing) for every post and comment of a betamax cassette."""
    from connectors.reddit import thing_outgoing

    for _uri, _kind, body in cassette_responses(path):
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            continue
        for thing in reddit_things(value):
            out = thing_outgoing(thing, "recording")
            if out is not None:
                yield thing, out


# --- RSS / Atom ------------------------------------------------------------------------------


def rss_pairs(path: Path, now: datetime = NOW) -> Iterator[Pair]:
    """(feedparser entry, Outgoing) for every entry of a feed file."""
    import feedparser

    from connectors.rss import normalise

    parsed = feedparser.parse(path.read_bytes())
    for entry in parsed.entries:
        record = normalise(entry, parsed.feed, f"https://feeds.example/{path.name}", now)
        if record is not None:
            yield entry, Outgoing(key=record["id"], record=record)


# --- the table -------------------------------------------------------------------------------


READERS: dict[str, tuple[str, Callable[[Path], Iterator[Pair]]]] = {
    "x": ("*.jsonl", x_pairs),
    "bluesky": ("expected_v1.jsonl", bluesky_pairs),
    "mastodon": ("*.yaml", mastodon_pairs),
    "reddit": ("*.json", reddit_pairs),
    "rss": ("*.[ra][st][so]*", rss_pairs),
}


@dataclass
class Tally:
    files: int = 0
    produced: int = 0
    valid: int = 0
    checks: int = 0
    passed: int = 0
    failures: list[str] = field(default_factory=list)


def tally(platform: str, check: Callable[[Any, Outgoing, Any], dict[str, bool]], root: Path = DATA) -> Tally:
    """Recordings read, records produced, valid, and field checks passed for one platform."""
    pattern, reader = READERS[platform]
    result = Tally()
    for path in sorted((root / platform).glob(pattern)):
        if path.name.startswith("LICENSE") or path.suffix == ".md":
            continue
        result.files += 1
        for payload, out in reader(path):
            result.produced += 1
            parsed = roundtrip(out)
            if isinstance(parsed, Rejection):
                result.failures.append(f"{path.name}: rejected {out.key}: {parsed.reason}")
                continue
            result.valid += 1
            for name, ok in check(payload, out, parsed).items():
                result.checks += 1
                result.passed += ok
                if not ok:
                    result.failures.append(f"{path.name}: {out.key}: {name}")
    return result
