"""``/v1/queries``: the listening queries that tag the stream (CRUD) and preview them on the index.

Reading needs the ``queries:read`` scope, changing ``queries:admin``. A query in the listening
language that does not parse is refused with 422 and ``position`` / ``expected`` / ``got``.
Workers pick up a change within ``EARSHOT_QUERIES_REFRESH_S`` seconds; mentions indexed before
it keep their tags (re-tag history with the preview's query through search).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth.scopes import QUERIES_ADMIN, QUERIES_READ
from api.audit import note_action
from api.deps import get_app_settings, get_es, require
from api.errors import errors
from api.syntax import SyntaxProblem
from pipeline.listening.catalog import QUERY_ID, ListeningQuery, QueryKind
from pipeline.listening.compile_es import to_es_query
from pipeline.listening.parser import MAX_QUERY_CHARS, QuerySyntaxError, parse
from pipeline.store.query_store import MAX_QUERIES, ensure_queries_layout
from pipeline.settings import Settings

router = APIRouter(tags=["listening queries"])
READ, ADMIN = [Depends(require(QUERIES_READ))], [Depends(require(QUERIES_ADMIN))]
QueryId = Annotated[str, Path(pattern=QUERY_ID, description="Query id (lower-case slug).")]


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "united-baggage", "name": "United baggage complaints", "kind": "topic", "brand": "united",
        "query": '(@united OR "United Airlines") AND (bag* OR luggage) NOT lang:es'}]})

    name: str = Field(..., min_length=1, max_length=200)
    kind: QueryKind = "topic"
    brand: str | None = Field(None, pattern=QUERY_ID)
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, description="In the listening language.")
    enabled: bool = True
    description: str | None = Field(None, max_length=1000)


class NewQuery(QueryBody):
    id: str = Field(..., pattern=QUERY_ID)


class ChangedQuery(QueryBody):
    version: int | None = Field(None, ge=1, description="The version you edited; 409 if it changed meanwhile.")


class QueryList(BaseModel):
    queries: list[ListeningQuery]


class Preview(BaseModel):
    total: int = Field(..., description="Indexed mentions the query matches (all time).")
    mentions: list[dict[str, Any]] = Field(..., description="The newest matches (id, created_at, text, brands).")
    es_query: dict[str, Any] = Field(..., description="The Elasticsearch query it compiles to.")


def _checked(text: str) -> None:
    try:
        parse(text)
    except QuerySyntaxError as exc:
        raise SyntaxProblem(exc) from None


async def _get(es: AsyncElasticsearch, settings: Settings, query_id: str) -> tuple[ListeningQuery, dict]:
    try:
        found = await es.get(index=settings.queries_index, id=query_id)
    except NotFoundError:
        raise HTTPException(404, f"no listening query with id {query_id!r}") from None
    return ListeningQuery.model_validate(found["_source"]), {"if_seq_no": found["_seq_no"],
                                                             "if_primary_term": found["_primary_term"]}


@router.get("/queries", response_model=QueryList, summary="List listening queries", dependencies=READ)
async def list_queries(kind: QueryKind | None = Query(None), brand: str | None = Query(None, pattern=QUERY_ID),
                       es: AsyncElasticsearch = Depends(get_es),
                       settings: Settings = Depends(get_app_settings)) -> QueryList:
    filters: list[dict[str, Any]] = [{"term": {f: v}} for f, v in (("kind", kind), ("brand", brand)) if v]
    try:
        response = await es.search(index=settings.queries_index, size=MAX_QUERIES, sort=[{"id": "asc"}],
                                   query={"bool": {"filter": filters}})
    except NotFoundError:
        return QueryList(queries=[])
    return QueryList(queries=[ListeningQuery.model_validate(h["_source"]) for h in response["hits"]["hits"]])


@router.post("/queries", status_code=201, response_model=ListeningQuery, summary="Create a listening query",
             dependencies=ADMIN, responses=errors(409, 413))
async def create_query(body: NewQuery, request: Request, es: AsyncElasticsearch = Depends(get_es),
                       settings: Settings = Depends(get_app_settings)) -> ListeningQuery:
    note_action(request, query_id=body.id, query=body.query)
    _checked(body.query)
    now = datetime.now(timezone.utc)
    query = ListeningQuery(**body.model_dump(), created_at=now, updated_at=now, version=1)
    await ensure_queries_layout(es, settings)
    try:
        await es.index(index=settings.queries_index, id=query.id, document=query.model_dump(mode="json"),
                       op_type="create", refresh="wait_for")
    except ConflictError:
        raise HTTPException(409, f"a listening query with id {query.id!r} exists; PUT to change it") from None
    return query


@router.get("/queries/{query_id}", response_model=ListeningQuery, summary="One listening query", dependencies=READ,
            responses=errors(404))
async def get_query(query_id: QueryId, es: AsyncElasticsearch = Depends(get_es),
                    settings: Settings = Depends(get_app_settings)) -> ListeningQuery:
    return (await _get(es, settings, query_id))[0]


@router.put("/queries/{query_id}", response_model=ListeningQuery, summary="Change a listening query",
            dependencies=ADMIN, responses=errors(404, 409, 413))
async def change_query(query_id: QueryId, body: ChangedQuery, request: Request,
                       es: AsyncElasticsearch = Depends(get_es),
                       settings: Settings = Depends(get_app_settings)) -> ListeningQuery:
    note_action(request, query=body.query, enabled=body.enabled)
    _checked(body.query)
    current, guard = await _get(es, settings, query_id)
    if body.version is not None and body.version != current.version:
        raise HTTPException(409, f"query {query_id!r} is at version {current.version}, not {body.version}")
    changed = ListeningQuery(**body.model_dump(exclude={"version"}), id=query_id, seeded=current.seeded,
                             created_at=current.created_at, updated_at=datetime.now(timezone.utc),
                             version=current.version + 1)
    try:
        await es.index(index=settings.queries_index, id=query_id, document=changed.model_dump(mode="json"),
                       refresh="wait_for", **guard)
    except ConflictError:
        raise HTTPException(409, f"query {query_id!r} was changed by someone else meanwhile; retry") from None
    return changed


@router.delete("/queries/{query_id}", status_code=204, summary="Delete a listening query", dependencies=ADMIN,
               responses=errors(404))
async def delete_query(query_id: QueryId, es: AsyncElasticsearch = Depends(get_es),
                       settings: Settings = Depends(get_app_settings)) -> Response:
    try:
        await es.delete(index=settings.queries_index, id=query_id, refresh="wait_for")
    except NotFoundError:
        raise HTTPException(404, f"no listening query with id {query_id!r}") from None
    return Response(status_code=204)


class DraftQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, description="In the listening language.")


async def _preview(es: AsyncElasticsearch, settings: Settings, text: str, size: int) -> Preview:
    compiled = to_es_query(text)
    try:
        response = await es.search(index=settings.mentions_alias, query=compiled, size=size, track_total_hits=True,
                                   sort=[{"created_at": "desc"}], source_includes=["id", "created_at", "text", "brands"])
    except NotFoundError:
        return Preview(total=0, mentions=[], es_query=compiled)
    hits = response["hits"]
    return Preview(total=hits["total"]["value"], mentions=[h["_source"] for h in hits["hits"]], es_query=compiled)


@router.post("/queries/preview", response_model=Preview, dependencies=READ,
             summary="What a draft query (not saved) would match: the editor's live preview",
             description="422 with `position` / `expected` / `got` when the text does not parse.")
async def preview_draft(body: DraftQuery, size: int = Query(10, ge=0, le=100),
                        es: AsyncElasticsearch = Depends(get_es),
                        settings: Settings = Depends(get_app_settings)) -> Preview:
    _checked(body.query)
    return await _preview(es, settings, body.query, size)


@router.get("/queries/{query_id}/preview", response_model=Preview,
            summary="What the query matches among indexed mentions (same answer as the stream)", dependencies=READ,
            responses=errors(404))
async def preview_query(query_id: QueryId, size: int = Query(10, ge=0, le=100),
                        es: AsyncElasticsearch = Depends(get_es),
                        settings: Settings = Depends(get_app_settings)) -> Preview:
    query, _ = await _get(es, settings, query_id)
    return await _preview(es, settings, query.query, size)
