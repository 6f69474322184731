"""Listening queries in Elasticsearch (index ``<prefix>-queries``): the API writes them, every
worker reads them. Writes are conditional (``if_seq_no``/``if_primary_term``) so two editors
cannot silently overwrite each other; seeding uses ``op_type=create`` so two workers starting
together seed once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from pipeline.enrich.brands import BrandsFile
from pipeline.listening.catalog import QUERY_MAPPINGS, ListeningQuery, seed_queries
from pipeline.settings import Settings

log = logging.getLogger(__name__)
MAX_QUERIES = 10_000  # one search returns them all; a listening setup has hundreds, not millions


async def ensure_queries_layout(es: AsyncElasticsearch, settings: Settings) -> None:
    if not await es.indices.exists(index=settings.queries_index):
        try:
            await es.indices.create(index=settings.queries_index, mappings=QUERY_MAPPINGS,
                                    settings={"number_of_shards": 1, "number_of_replicas": settings.index_replicas})
        except Exception as exc:  # noqa: BLE001 - created meanwhile by another process
            if "resource_already_exists" not in str(exc):
                raise


async def load_queries(es: AsyncElasticsearch, settings: Settings) -> list[ListeningQuery]:
    """Every stored query (enabled or not), sorted by id."""
    try:
        response = await es.search(index=settings.queries_index, size=MAX_QUERIES, sort=[{"id": "asc"}],
                                   query={"match_all": {}})
    except NotFoundError:
        return []
    return [ListeningQuery.model_validate(hit["_source"]) for hit in response["hits"]["hits"]]


async def seed_from_brands(es: AsyncElasticsearch, settings: Settings, now: datetime) -> int:
    """On a first start (no query stored yet), one query per brand of ``brands.yaml``; returns
    how many this call created."""
    await ensure_queries_layout(es, settings)
    count = (await es.count(index=settings.queries_index))["count"]
    if count:
        return 0
    import yaml

    specs = BrandsFile.model_validate(yaml.safe_load(settings.brands_file.read_text(encoding="utf-8"))).brands
    created = 0
    for query in seed_queries(specs, now):
        try:
            await es.index(index=settings.queries_index, id=query.id, document=query.model_dump(mode="json"),
                           op_type="create", refresh="wait_for")
            created += 1
        except ConflictError:
            continue  # another worker seeded it first
    log.info("seeded %d listening queries from %s", created, settings.brands_file)
    return created
