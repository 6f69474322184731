"""The Elasticsearch sink: writes batches of enriched mentions with bulk requests.

``write`` returns only when every document of the batch is either stored or permanently
refused (a mapping error, say): while Elasticsearch is down or overloaded it retries with
backoff, so the calling agent stops consuming and commits no offset past the batch.
Permanently refused documents come back with their reason for the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch

from pipeline.store.mappings import bulk_action, is_retryable, mention_index_name, mentions_template
from pipeline.logs import record_context
from pipeline.metrics import ES_BULK_FAILURES, ES_BULK_SECONDS
from pipeline.worker.retry import backoff_delay
from pipeline.worker.wire import json_bytes
from pipeline.store.rollup import ensure_rollup_layout
from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefusedDocument:
    mention_id: str
    reason: str
    document: dict[str, Any]


def es_hosts(es_url: str) -> list[str]:
    """The node URLs of ``EARSHOT_ES_URL``: one URL, or several separated by commas (a cluster)."""
    return [url.strip() for url in es_url.split(",") if url.strip()]


def make_es_client(settings: Settings) -> AsyncElasticsearch:
    auth = (settings.es_username, settings.es_password) if settings.es_username else None
    hosts = es_hosts(settings.es_url)
    return AsyncElasticsearch(
        hosts,
        basic_auth=auth,
        ca_certs=str(settings.es_ca_certs) if settings.es_ca_certs else None,
        request_timeout=30,
        retry_on_timeout=False,  # we retry ourselves, with backoff, in write()
        # With several nodes, a request that cannot connect to one (it died) goes on to the next
        # at once, so a lost node costs no failed search; error statuses are still ours to retry.
        max_retries=len(hosts) - 1,
        retry_on_status=(),
    )


async def ensure_mentions_layout(es: AsyncElasticsearch, settings: Settings) -> None:
    """Install (or update) the index template; new monthly indices pick it up.

    Monthly indices created by an older schema version get the new fields added to their
    mapping (adding fields is allowed; the strict mapping would otherwise refuse new documents).
    """
    body = mentions_template(settings)
    await es.indices.put_index_template(
        name=settings.mentions_template,
        index_patterns=body["index_patterns"],
        priority=body["priority"],
        template=body["template"],
        meta=body["_meta"],
    )
    existing = await es.indices.get(index=settings.mentions_index_pattern, allow_no_indices=True,
                                    ignore_unavailable=True)
    if existing:
        await es.indices.put_mapping(index=settings.mentions_index_pattern, properties=body["template"]["mappings"]["properties"])
    await ensure_rollup_layout(es, settings)  # hourly per-brand counts, recomputed from these indices


class MentionSink:
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings
        self.retries = 0  # bulk attempts that had to be repeated (for metrics and tests)

    async def write(self, batch: list[tuple[dict[str, Any], datetime]],
                    encoded: Mapping[str, bytes] | None = None) -> list[RefusedDocument]:
        """Store ``(document, created_at)`` pairs; return those ES refused for good.

        ``encoded``: mention id -> the document's JSON bytes where the caller has them already
        (the worker encodes each document once, for Kafka and for this bulk); the rest are encoded here."""
        encoded = encoded or {}
        pending = {doc["id"]: bulk_action(self.settings, doc, created_at) for doc, created_at in batch}
        # Each document is encoded once (the client passes bytes through), not again at each retry.
        sources = {mention_id: encoded.get(mention_id) or json_bytes(action["_source"])
                   for mention_id, action in pending.items()}
        refused: list[RefusedDocument] = []
        attempt = 0
        while pending:
            attempt += 1
            operations: list[dict[str, Any] | bytes] = []
            for mention_id, action in pending.items():
                operations.append({"index": {"_index": action["_index"], "_id": mention_id}})
                operations.append(sources[mention_id])
            response = await self._attempt(attempt, lambda: self.es.bulk(operations=operations), "bulk", "index")
            if response is None:
                continue
            for item in response["items"]:
                result = item["index"]
                status = int(result.get("status", 500))
                if status < 300:
                    pending.pop(result["_id"], None)
                elif not is_retryable(status):
                    action = pending.pop(result["_id"])
                    error = result.get("error", {})
                    reason = f"index: {error.get('type', status)}: {error.get('reason', '')}"[:1000]
                    refused.append(RefusedDocument(result["_id"], reason, action["_source"]))
                    ES_BULK_FAILURES.labels("item_refused").inc()
                    log.warning("Elasticsearch refused a document for good (%d): %s", status, reason[:300],
                                extra=record_context(result["_id"], index=result.get("_index"), status=status))
                else:
                    ES_BULK_FAILURES.labels("item_retryable").inc()
            if pending:
                await self._wait(attempt, f"{len(pending)} documents got a retryable status")
        return refused

    async def set_echoes(self, counts: list[tuple[str, datetime, int]]) -> None:
        """Write ``(first post id, its created_at, echo count)`` onto the first posts. A first post
        the index does not hold (refused, or deleted) is skipped; counts are absolute values, so
        writing one again after a crash is harmless."""
        attempt = 0
        pending = {mention_id: (created_at, echoes) for mention_id, created_at, echoes in counts}
        while pending:
            attempt += 1
            operations: list[dict[str, Any]] = []
            for mention_id, (created_at, echoes) in pending.items():
                operations.append({"update": {"_index": mention_index_name(self.settings, created_at), "_id": mention_id}})
                operations.append({"doc": {"echoes": echoes}})
            response = await self._attempt(attempt, lambda: self.es.bulk(operations=operations), "echo counts",
                                           "echoes")
            if response is None:
                continue
            for item in response["items"]:
                result = item["update"]
                if not is_retryable(int(result.get("status", 500))):
                    pending.pop(result["_id"], None)
                else:
                    ES_BULK_FAILURES.labels("item_retryable").inc()
            if pending:
                await self._wait(attempt, f"{len(pending)} echo counts got a retryable status")

    async def recent_firsts(self, since: datetime, limit: int) -> list[tuple[str, str, datetime, int]]:
        """``(id, simhash, created_at, echoes)`` of first posts since ``since``, newest first, for
        warming a worker's near-duplicate index at start-up."""
        found: list[tuple[str, str, datetime, int]] = []
        search_after = None
        query = {"bool": {"filter": [{"exists": {"field": "simhash"}}, {"range": {"created_at": {"gte": since.isoformat()}}}],
                          "must_not": [{"exists": {"field": "duplicate_of"}}]}}
        while len(found) < limit:
            kwargs: dict[str, Any] = {"search_after": search_after} if search_after else {}
            response = await self.es.search(index=self.settings.mentions_alias, query=query, size=min(5000, limit),
                                            sort=[{"created_at": "desc"}, {"id": "asc"}], ignore_unavailable=True,
                                            allow_no_indices=True, source_includes=["id", "simhash", "created_at", "echoes"],
                                            **kwargs)
            hits = response["hits"]["hits"]
            if not hits:
                break
            for hit in hits:
                doc = hit["_source"]
                found.append((doc["id"], doc["simhash"], datetime.fromisoformat(doc["created_at"]), int(doc.get("echoes") or 0)))
            search_after = hits[-1]["sort"]
        return found[:limit]

    async def delete(self, mention_ids: list[str]) -> int:
        """Delete mentions by id from every monthly index (the minimal ES has no delete-by-query,
        and a deletion notice does not say which month the post was in). Returns how many
        documents were found and deleted; absent ids are not an error (already gone)."""
        if not mention_ids:
            return 0
        async def delete_everywhere() -> dict[str, Any]:
            indices = await self.es.indices.get(index=self.settings.mentions_index_pattern,
                                                allow_no_indices=True, ignore_unavailable=True)
            operations = [{"delete": {"_index": index, "_id": mention_id}}
                          for index in sorted(indices) for mention_id in mention_ids]
            return await self.es.bulk(operations=operations) if operations else {"items": []}

        attempt = 0
        while True:
            attempt += 1
            response = await self._attempt(attempt, delete_everywhere, "bulk delete", "delete")
            if response is None:
                continue
            statuses = [int(item["delete"].get("status", 500)) for item in response["items"]]
            if any(is_retryable(status) for status in statuses):
                ES_BULK_FAILURES.labels("item_retryable").inc(sum(1 for s in statuses if is_retryable(s)))
                await self._wait(attempt, "some deletions got a retryable status")
                continue  # deleting again is harmless
            return sum(1 for status in statuses if status < 300)

    async def _attempt(self, attempt: int, request: Callable[[], Awaitable[Any]], what: str,
                       operation: str) -> Any | None:
        """``await request()``, or None after waiting out a transient failure (Elasticsearch
        unreachable, or a retryable status for the whole request); other errors raise.
        ``operation`` (index | echoes | delete) labels the request's duration."""
        started = time.perf_counter()
        try:
            return await request()
        except (ESConnectionError, ConnectionTimeout) as exc:
            failure, why = "unreachable", f"Elasticsearch unreachable: {exc}"
        except ApiError as exc:
            if not is_retryable(exc.meta.status):
                ES_BULK_FAILURES.labels("refused").inc()
                raise
            failure, why = "retryable_status", f"{what} refused with {exc.meta.status}"
        finally:
            ES_BULK_SECONDS.labels(operation).observe(time.perf_counter() - started)
        ES_BULK_FAILURES.labels(failure).inc()
        await self._wait(attempt, why)
        return None

    async def _wait(self, attempt: int, why: str) -> None:
        self.retries += 1
        delay = backoff_delay(attempt, cap_s=self.settings.index_retry_max_s)
        log.warning("bulk attempt %d failed (%s); retrying in %.1f s", attempt, why, delay)
        await asyncio.sleep(delay)
