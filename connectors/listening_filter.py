"""Keep only what the listening queries match, at the connector: for firehoses (Bluesky's
Jetstream carries every post on the network) publishing everything to Kafka would be wasteful.

The queries are the stored ones (``/v1/queries``, the same the worker tags with), or, when
Elasticsearch holds none yet or cannot be reached, the ones ``brands.yaml`` seeds. They are
read when the connector starts; restart it to apply changed queries at the source (the worker
still tags what it receives with the current ones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import yaml

from pipeline.enrich.brands import BrandsFile
from pipeline.enrich.entities import extract_entities
from pipeline.listening.catalog import ListeningQuery, seed_queries
from pipeline.listening.matcher import QueryMatcher
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def record_matcher(queries: list[ListeningQuery]) -> Callable[[dict[str, Any]], bool]:
    """A predicate over a ``Mention``-shaped record: does any enabled query match it?"""
    matcher = QueryMatcher({q.id: q.query for q in queries if q.enabled})

    def keep(record: dict[str, Any]) -> bool:
        text = record.get("text") or ""
        document = {**record, "entities": extract_entities(text).model_dump()}
        return bool(matcher.match(document))

    return keep


def seeded(settings: Settings) -> list[ListeningQuery]:
    specs = BrandsFile.model_validate(yaml.safe_load(settings.brands_file.read_text(encoding="utf-8"))).brands
    return seed_queries(specs, datetime.now(timezone.utc))


async def stored_queries(settings: Settings) -> list[ListeningQuery]:
    """The stored listening queries, or the brands.yaml seed when there are none (or no ES)."""
    from pipeline.store.query_store import load_queries
    from pipeline.store.mention_sink import make_es_client

    es = make_es_client(settings)
    try:
        queries = await load_queries(es, settings)
    except Exception as exc:  # noqa: BLE001 - ES down at start: listen for the configured brands
        log.warning("listening queries not readable (%r); filtering with brands.yaml", exc)
        queries = []
    finally:
        await es.close()
    return queries or seeded(settings)
