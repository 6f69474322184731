"""Alerts and webhooks in Elasticsearch: their indices, the detector's writes, people's changes.

Each alert is one document, ``_id`` = alert id, in ``<prefix>-alerts``; registered webhooks
live in ``<prefix>-webhooks``. Writers never overwrite blindly: they read the stored document
with its sequence number, merge (``pipeline/alerts/state.py``) and write back only if nobody
wrote in between (``if_seq_no``), re-reading on a conflict. So a detector update and a person's
resolve arriving together both survive, without scripts (the minimal ES has none).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError

from pipeline.alerts.state import merge_detector_write
from pipeline.alerts.records import ALERT_MAPPINGS
from pipeline.store.mappings import is_retryable
from pipeline.worker.retry import backoff_delay
from pipeline.settings import Settings
from pipeline.alerts.webhooks import WEBHOOK_MAPPINGS

log = logging.getLogger(__name__)
MAX_CONFLICTS = 10  # re-reads of one document before giving up: only a write storm gets there


class AlertRefused(RuntimeError):
    """Elasticsearch refused alert documents for good (a contract/mapping mismatch: a bug)."""


class AlertBusy(RuntimeError):
    """An alert kept changing under a read-modify-write; the caller may try again."""


async def ensure_alerts_layout(es: AsyncElasticsearch, settings: Settings) -> None:
    """Create the alerts and webhooks indices with their strict mappings, or add new fields to
    existing ones. Idempotent, and safe when the API and the worker run it at the same time."""
    for name, mappings in ((settings.alerts_index, ALERT_MAPPINGS), (settings.webhooks_index, WEBHOOK_MAPPINGS)):
        try:
            await es.indices.create(index=name, mappings=mappings, settings={
                "number_of_shards": settings.index_shards,
                "number_of_replicas": settings.index_replicas,
                "refresh_interval": settings.index_refresh_interval,
            })
        except BadRequestError as exc:
            if _error_type(exc) != "resource_already_exists_exception":
                raise
            await es.indices.put_mapping(index=name, properties=mappings["properties"])


def _error_type(exc: ApiError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return error.get("type") if isinstance(error, dict) else None


class AlertSink:
    """Stores the detector's alert documents (``Alert.to_document()``), keeping people's changes."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings

    async def write(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upsert ``docs`` by id; return the documents as stored (human fields merged in), which
        is what should be published: stale versions are left out (nothing was written for them).

        Returns only once every document is stored or found stale: while Elasticsearch is down
        or busy it retries with backoff. Raises ``AlertRefused`` if ES refuses a document for good.
        """
        newest: dict[str, dict[str, Any]] = {}
        for doc in docs:  # one batch may carry several versions of an alert: the highest wins
            if doc["id"] not in newest or doc["version"] >= newest[doc["id"]]["version"]:
                newest[doc["id"]] = doc
        written: dict[str, dict[str, Any]] = {}
        pending, failures, conflicts = dict(newest), 0, 0
        while pending:
            try:
                stored, again = await self._attempt(pending)
            except (ESConnectionError, ConnectionTimeout) as exc:
                failures += 1
                await self._wait(failures, f"Elasticsearch unreachable: {exc}")
                continue
            except ApiError as exc:
                if not is_retryable(exc.meta.status):
                    raise
                failures += 1
                await self._wait(failures, f"refused with {exc.meta.status}")
                continue
            written.update(stored)
            pending = {alert_id: pending[alert_id] for alert_id in again}
            if any(status != 409 for status in again.values()):
                failures += 1
                await self._wait(failures, f"{len(again)} alerts got a retryable status")
            elif again:  # only conflicts: someone wrote since we read; merge again at once
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    raise AlertBusy(f"alerts {sorted(again)} kept changing while being written")
        return [written[alert_id] for alert_id in newest if alert_id in written]

    async def _attempt(self, pending: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """One read and one conditional bulk write: (stored documents by id, status by id of the
        alerts to try again: 409 = written by someone else meanwhile, or a retryable status)."""
        planned = await self._plan(pending)
        if not planned:
            return {}, {}
        response = await self.es.bulk(operations=[op for meta, doc in planned.values() for op in (meta, doc)])
        stored: dict[str, dict[str, Any]] = {}
        again: dict[str, int] = {}
        refused: list[str] = []
        for item in response["items"]:
            result = next(iter(item.values()))  # {"create": {...}} or {"index": {...}}
            alert_id, status = result["_id"], int(result.get("status", 500))
            if status < 300:
                stored[alert_id] = planned[alert_id][1]
            elif status == 409 or is_retryable(status):
                again[alert_id] = status
            else:
                error = result.get("error", {})
                refused.append(f"{alert_id}: {error.get('type', status)}: {error.get('reason', '')}"[:500])
        if refused:
            raise AlertRefused(f"Elasticsearch refused {len(refused)} alerts: " + "; ".join(refused))
        return stored, again

    async def _plan(self, pending: dict[str, dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Bulk action and merged document per alert id, conditional on what is stored now."""
        index = self.settings.alerts_index
        found = await self.es.mget(index=index, ids=list(pending))
        planned = {}
        for hit in found["docs"]:
            if "error" in hit:  # no alerts index: writing now would create one without the mappings
                raise AlertRefused(f"cannot read alert {hit['_id']} ({hit['error'].get('type')}): "
                                   "run ensure_alerts_layout first")
            stored = hit["_source"] if hit["found"] else None
            merged = merge_detector_write(stored, pending[hit["_id"]])
            if merged is None:  # only ever when a newer version is stored
                log.info("alert %s v%d ignored: v%d is stored", hit["_id"], pending[hit["_id"]]["version"],
                         hit["_source"]["version"])
                continue
            if stored is None:  # create fails with 409 if another writer got there first
                meta = {"create": {"_index": index, "_id": hit["_id"]}}
            else:
                meta = {"index": {"_index": index, "_id": hit["_id"],
                                  "if_seq_no": hit["_seq_no"], "if_primary_term": hit["_primary_term"]}}
            planned[hit["_id"]] = (meta, merged)
        return planned

    async def _wait(self, attempt: int, why: str) -> None:
        delay = backoff_delay(attempt, cap_s=self.settings.index_retry_max_s)
        log.warning("alert write attempt %d failed (%s); retrying in %.1f s", attempt, why, delay)
        await asyncio.sleep(delay)


async def change_alert(
    es: AsyncElasticsearch,
    settings: Settings,
    alert_id: str,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> tuple[dict[str, Any], bool] | None:
    """Apply ``change`` (stored document -> new document, or None for "nothing to do") to one alert.

    Returns ``(document, changed)``, or None if there is no such alert. Fails fast when ES is
    down (the API answers 503); raises ``AlertBusy`` after ``MAX_CONFLICTS`` lost races.
    """
    for _ in range(MAX_CONFLICTS):
        try:
            found = await es.get(index=settings.alerts_index, id=alert_id)
        except NotFoundError:
            return None
        document = change(found["_source"])
        if document is None:
            return found["_source"], False
        try:
            await es.index(index=settings.alerts_index, id=alert_id, document=document,
                           if_seq_no=found["_seq_no"], if_primary_term=found["_primary_term"])
        except ConflictError:
            continue
        return document, True
    raise AlertBusy(f"alert {alert_id} kept changing while being updated")
