"""The data teams' feed: every enriched mention matching a filter, as a resumable NDJSON stream.

``GET /v1/feed`` answers ``application/x-ndjson`` (``?format=csv``: ``text/csv``, see ``csv_lines``),
one JSON object per line:

- ``{"cursor": "<c>", "mention": {...EnrichedMention...}}`` per mention, in a stable order
  (``created_at``, then ``id``, both ascending);
- last, ``{"end": true, "rows": <n>, "cursor": "<c>"}`` once everything was sent. A stream
  without it was cut: pass the ``cursor`` of the last complete line back as ``?cursor=`` (with
  the same filters) and the stream goes on right after that mention: no gap, no repeat.
- ``{"error": "...", "cursor": "<c>"}`` if the backend fails mid-stream; resume the same way.

The server reads ``page_size`` mentions at a time with ``search_after`` inside a point in time
(a snapshot of the indices), so one stream holds one page in memory whatever its length, and a
stream does not see documents come and go under it. A resumed stream opens a new snapshot: it
sees mentions indexed in between, except late arrivals published before its cursor (order by
``created_at``); a consumer that must see every late arrival reads the Kafka topic
``mentions.enriched`` instead (README).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from api.auth.scopes import FEED_READ
from api.cursor import decode_cursor, encode_cursor
from api.deps import get_app_settings, get_es, require
from api.queries import BadQuery, MentionFilter, UtcTime, filter_clauses
from api.routes.mentions import BRAND_ID
from api.routes.triage import TEAM_ID
from api.syntax import SyntaxProblem
from pipeline.listening.compile_es import to_es_query
from pipeline.listening.parser import MAX_QUERY_CHARS, QuerySyntaxError, parse
from models.tasks import PURPOSES
from pipeline.settings import Settings

router = APIRouter(tags=["feed"], dependencies=[Depends(require(FEED_READ))])
log = logging.getLogger("earshot.api.feed")
FEED_SORT: list[dict[str, Any]] = [{"created_at": {"order": "asc"}}, {"id": {"order": "asc"}}]
PIT_KEEP_ALIVE = "2m"  # how long a snapshot lives between two page reads (a slow client's pause)


CSV_COLUMNS = ("id", "created_at", "source", "url", "author", "followers", "lang", "brands", "sentiment",
               "sentiment_score", "purposes", "teams", "priority", "spam_score", "duplicate_of", "text", "cursor")


def feed_query(brand: str | None, lang: str | None, purpose: str | None, team: str | None,
               since: datetime | None, until: datetime | None, q: str | None = None) -> dict[str, Any]:
    """The filter of the feed: the search filters (``api.queries``) plus purpose, team and a query in
    the listening language (``q``, as a listening query's text; already checked with ``parse``)."""
    clauses = filter_clauses(MentionFilter(brand=brand, lang=lang, since=since, until=until))
    clauses += [{"term": {field: value}} for field, value in (("purposes", purpose), ("teams", team)) if value]
    if q:
        clauses.append(to_es_query(q))
    return {"bool": {"filter": clauses}}


def csv_row(mention: dict[str, Any], cursor: str) -> list[Any]:
    """One mention as a CSV row of ``CSV_COLUMNS`` (lists joined with ``|``)."""
    author, sentiment, spam = mention.get("author") or {}, mention.get("sentiment") or {}, mention.get("spam") or {}
    return [mention.get("id"), mention.get("created_at"), mention.get("source"), mention.get("url") or "",
            author.get("handle") or author.get("display_name") or "", author.get("followers", ""),
            mention.get("lang") or "", "|".join(mention.get("brands") or []), sentiment.get("label") or "",
            sentiment.get("score", ""), "|".join(mention.get("purposes") or []), "|".join(mention.get("teams") or []),
            mention.get("priority", ""), spam.get("score", ""), mention.get("duplicate_of") or "", mention.get("text"),
            cursor]


async def csv_lines(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The feed as CSV: a header, then one row per mention, its ``cursor`` in the last column (resume
    a cut download with the cursor of the last complete row). CSV has no end marker: a stream the
    backend broke ends early and is logged; the NDJSON feed says so in-band."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    async for chunk in lines:
        for line in chunk.splitlines():
            obj = json.loads(line)
            if "mention" in obj:
                writer.writerow(csv_row(obj["mention"], obj["cursor"]))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


async def open_snapshot(es: AsyncElasticsearch, settings: Settings) -> str | None:
    """A point in time over the mention indices, or None when there are none yet. Opened before
    the response starts, so an unreachable backend is a plain 503, not a broken stream."""
    try:
        pit = await es.open_point_in_time(index=settings.mentions_alias, keep_alive=PIT_KEEP_ALIVE)
    except NotFoundError:  # before the first mention is indexed there is no alias
        return None
    return pit["id"]


async def feed_lines(es: AsyncElasticsearch, pit_id: str | None, query: dict[str, Any], page_size: int,
                     after: list[Any] | None) -> AsyncIterator[str]:
    """The NDJSON text of the feed, one chunk per page of ``page_size`` mentions (see the module
    docstring), read from the point in time ``pit_id`` (None: no mentions), which it closes."""
    rows, cursor = 0, encode_cursor(after) if after else None
    if pit_id is None:
        yield _line({"end": True, "rows": 0, "cursor": cursor})
        return
    try:
        while True:
            kwargs = {"search_after": after} if after else {}
            response = await es.search(pit={"id": pit_id, "keep_alive": PIT_KEEP_ALIVE}, query=query, sort=FEED_SORT,
                                       size=page_size, track_total_hits=False, **kwargs)
            pit_id = response.get("pit_id", pit_id)
            hits = response["hits"]["hits"]
            chunk = []
            for hit in hits:
                # (created_at, id) is a total order (ids are unique), so it is the whole cursor; the
                # point in time appends its own tiebreaker to the first page's sort values: not ours.
                cursor = encode_cursor(hit["sort"][:2])
                chunk.append(_line({"cursor": cursor, "mention": hit["_source"]}))
            rows += len(hits)
            if chunk:
                yield "".join(chunk)
            if len(hits) < page_size:
                break
            after = hits[-1]["sort"][:2]
        yield _line({"end": True, "rows": rows, "cursor": cursor})
    except (ESConnectionError, ConnectionTimeout, ApiError) as exc:
        # The status line went out long ago: say so in the stream, with where to resume.
        log.warning("feed stopped after %d rows: %s", rows, exc)
        yield _line({"error": "search backend unavailable; resume with this cursor", "cursor": cursor})
    finally:
        try:
            await es.close_point_in_time(id=pit_id)
        except Exception as exc:  # noqa: BLE001 - the snapshot expires by itself after PIT_KEEP_ALIVE
            log.info("feed: point in time not closed (%r); it expires in %s", exc, PIT_KEEP_ALIVE)


@router.get("/feed", summary="Stream enriched mentions as NDJSON (resumable)", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}},
                             "description": "One `{\"cursor\", \"mention\"}` object per line, then `{\"end\": true}`; "
                                            "with `format=csv`, a header and one row per mention, its cursor last."}},
            description="Every enriched mention matching the filters, oldest first (`created_at`, then `id`), "
            "streamed as newline-delimited JSON. Each line carries a `cursor`; the last line is "
            "`{\"end\": true, \"rows\": n, \"cursor\": ...}`. A stream that ends without it was cut: call again with "
            "the same filters and `cursor` = the cursor of the last complete line, and it resumes right after "
            "that mention. Spam and copies are included (with `spam` and `duplicate_of`): filter as you need.")
async def feed(
    brand: str | None = Query(None, pattern=BRAND_ID, description="Brand id from brands.yaml"),
    since: UtcTime | None = Query(None, alias="from", description="created_at >= this (ISO 8601)"),
    until: UtcTime | None = Query(None, alias="to", description="created_at < this (ISO 8601)"),
    lang: str | None = Query(None, pattern=r"^[a-z]{2,3}$", description="ISO 639 code, e.g. en"),
    purpose: str | None = Query(None, description=f"One of {', '.join(PURPOSES)}"),
    team: str | None = Query(None, pattern=TEAM_ID, description="Mentions routed to this team"),
    q: str | None = Query(None, max_length=MAX_QUERY_CHARS, description="A query in the listening language, e.g. "
                          "`(bag* OR luggage) NOT lang:es` (422 with `position` when it does not parse)"),
    format: str = Query("ndjson", pattern="^(ndjson|csv)$", description="ndjson (default) or csv"),
    cursor: str | None = Query(None, max_length=2000, description="The cursor of the last line received"),
    page_size: int | None = Query(None, ge=1, le=10_000, description="Mentions per backend page; default "
                                  "EARSHOT_FEED_PAGE_SIZE"),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> StreamingResponse:
    if since and until and until <= since:
        raise BadQuery("'from' must be before 'to'")
    if purpose is not None and purpose not in PURPOSES:
        raise BadQuery(f"purpose must be one of {', '.join(PURPOSES)}")
    if q:
        try:
            parse(q)
        except QuerySyntaxError as exc:
            raise SyntaxProblem(exc) from None
    after = decode_cursor(cursor) if cursor else None  # a bad cursor is a 400 before the stream starts
    pit_id = await open_snapshot(es, settings)
    lines = feed_lines(es, pit_id, feed_query(brand, lang, purpose, team, since, until, q),
                       page_size or settings.feed_page_size, after)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if format == "csv":
        headers["Content-Disposition"] = 'attachment; filename="earshot-feed.csv"'
        return StreamingResponse(csv_lines(lines), media_type="text/csv; charset=utf-8", headers=headers)
    return StreamingResponse(lines, media_type="application/x-ndjson", headers=headers)
