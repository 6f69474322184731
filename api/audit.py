"""The audit log: who used which key on which route, and what each write changed.

One append-only document per audited request in monthly indices ``<prefix>-audit-YYYY.MM``
(retention drops old months like the mention indices): time, key id, key name, role, method,
route template, status, client address, and for writes the action's details. Audited: every
request that presented a key or needed one (including 401, 403 and 429 answers), and every
write; not the open routes (health, metrics, docs).

Writing never blocks or fails a request: ``AuditLog.record`` puts the entry on a bounded queue
and a background task bulk-writes batches. When the queue is full (ES down for long) new
entries are dropped, counted in ``AuditLog.dropped`` and logged. ``earshot keys`` writes its own
entries directly (``write_entries``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import datetime, timezone
from typing import Any

from elasticsearch import AsyncElasticsearch
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import route_template
from pipeline.worker.retry import backoff_delay
from pipeline.settings import Settings

log = logging.getLogger("earshot.api.audit")
WRITE_ATTEMPTS = 3  # tries per batch before it is dropped (and counted)
UNAUDITED_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json")

AUDIT_MAPPINGS = {
    "dynamic": False,  # unknown fields are kept in _source, not indexed: an entry is never refused
    "properties": {
        "id": {"type": "keyword"},
        "time": {"type": "date"},
        "key_id": {"type": "keyword"},
        "key_name": {"type": "keyword"},
        "role": {"type": "keyword"},
        "via": {"type": "keyword"},
        "method": {"type": "keyword"},
        "route": {"type": "keyword"},
        "path": {"type": "keyword", "ignore_above": 1024},
        "status": {"type": "short"},
        "outcome": {"type": "keyword"},
        "client_ip": {"type": "keyword"},
        "action": {"type": "object", "enabled": False},
    },
}


def audit_index_name(settings: Settings, time: datetime) -> str:
    return f"{settings.audit_index}-{time:%Y.%m}"


def audit_read_pattern(settings: Settings) -> str:
    return f"{settings.audit_index}-*"


def outcome(status: int) -> str:
    return {401: "unauthenticated", 403: "forbidden", 429: "rate_limited"}.get(status, "ok" if status < 400 else "error")


def audit_entry(*, time: datetime, method: str, route: str, path: str, status: int, client_ip: str | None,
                principal: Any = None, key_id: str | None = None, action: dict[str, Any] | None = None) -> dict[str, Any]:
    """One audit document. ``principal`` (``api.auth.guard.Principal``) when the caller was identified;
    otherwise ``key_id`` if a well-formed key was presented."""
    entry: dict[str, Any] = {
        "id": uuid.uuid4().hex, "time": time.isoformat(), "method": method, "route": route, "path": path[:1024],
        "status": status, "outcome": outcome(status), "client_ip": client_ip,
        "key_id": principal.key_id if principal else key_id,
        "key_name": principal.name if principal else None,
        "role": principal.role if principal else None,
        "via": principal.via if principal else None,
    }
    if action:
        entry["action"] = action
    return entry


async def ensure_audit_layout(es: AsyncElasticsearch, settings: Settings) -> None:
    """The index template the monthly audit indices take their mapping from (idempotent)."""
    await es.indices.put_index_template(
        name=f"{settings.audit_index}-template", index_patterns=[audit_read_pattern(settings)], priority=200,
        template={"mappings": AUDIT_MAPPINGS, "settings": {
            "number_of_shards": 1, "number_of_replicas": settings.index_replicas,
            "refresh_interval": settings.index_refresh_interval}})


async def write_entries(es: AsyncElasticsearch, settings: Settings, entries: list[dict[str, Any]],
                        refresh: bool | str = False) -> None:
    """Append ``entries`` (``create``: an entry is never overwritten); raises if any is refused."""
    operations: list[dict[str, Any]] = []
    for entry in entries:
        when = datetime.fromisoformat(entry["time"])
        operations += [{"create": {"_index": audit_index_name(settings, when), "_id": entry["id"]}}, entry]
    response = await es.bulk(operations=operations, refresh=refresh)
    if response.get("errors"):
        failed = [item["create"] for item in response["items"] if item["create"].get("error")]
        # a retried batch finds its own earlier writes: those are done, not failures
        failed = [f for f in failed if f.get("status") != 409]
        if failed:
            raise RuntimeError(f"{len(failed)} audit entries refused: {failed[0].get('error')}")


class AuditLog:
    """The API's audit writer: a bounded queue drained in batches by ``run`` (a background task)."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es, self.settings = es, settings
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=settings.audit_queue_size)
        self.dropped = 0  # entries lost: queue full, or ES refused them WRITE_ATTEMPTS times
        self.written = 0
        self.layout_ready = False
        self.batch: list[dict[str, Any]] = []  # taken off the queue, not yet stored

    def record(self, entry: dict[str, Any]) -> None:
        """Queue ``entry``; never blocks, never raises."""
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._drop(1, "queue full")

    def _drop(self, count: int, why: str) -> None:
        before, self.dropped = self.dropped, self.dropped + count
        if before == 0 or before // 1000 != self.dropped // 1000:  # the first, then every 1000th
            log.warning("audit log: %d entries dropped so far (%s)", self.dropped, why)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.batch = [await self.queue.get()]
            deadline = loop.time() + self.settings.audit_flush_s
            while len(self.batch) < self.settings.audit_batch_size and (left := deadline - loop.time()) > 0:
                try:
                    self.batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            await self._store(self.batch)
            self.batch = []

    async def _store(self, batch: list[dict[str, Any]], attempts: int = WRITE_ATTEMPTS) -> None:
        for attempt in range(1, attempts + 1):
            try:
                if not self.layout_ready:
                    await ensure_audit_layout(self.es, self.settings)
                    self.layout_ready = True
                await write_entries(self.es, self.settings, batch)
                self.written += len(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - ES down or refusing: retry, then drop (counted)
                if attempt == attempts:
                    self._drop(len(batch), f"not stored after {attempts} attempts: {exc!r}"[:300])
                    return
                await asyncio.sleep(backoff_delay(attempt, base_s=0.5, cap_s=5.0))

    async def close(self, task: asyncio.Task, timeout_s: float = 2.0) -> None:
        """Stop the writer; one last try (at most ``timeout_s``) for what is still queued."""
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        rest, self.batch = self.batch, []  # stored again if it was half-written: ids make that a no-op
        while not self.queue.empty():
            rest.append(self.queue.get_nowait())
        if rest:
            try:
                await asyncio.wait_for(self._store(rest, attempts=1), timeout_s)
            except TimeoutError:
                self._drop(len(rest), "shutting down")


def note_action(request: Any, **details: Any) -> None:
    """Add ``details`` (ids, counts; no secrets) to the audit entry of this request."""
    state = request.state
    state.audit_action = {**getattr(state, "audit_action", {}), **details}


class AuditMiddleware:
    """Records an audit entry when the response starts (so a long SSE stream is audited at once)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        recorded = False

        async def send_and_audit(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                _record(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_audit)
        except Exception:
            if not recorded:
                _record(scope, 500)
            raise


def _record(scope: Scope, status: int) -> None:
    audit: AuditLog | None = getattr(scope["app"].state, "audit", None)
    state = scope.get("state", {})
    principal, key_id = state.get("principal"), state.get("audit_key_id")
    writes = scope["method"] not in ("GET", "HEAD")
    if audit is None or not (principal or key_id or state.get("auth_required") or writes):
        return
    action = None
    if writes:
        action = {"path_params": dict(scope.get("path_params") or {}), **state.get("audit_action", {})}
    client = scope.get("client")
    audit.record(audit_entry(
        time=datetime.now(timezone.utc), method=scope["method"], route=route_template(scope),
        path=scope["path"], status=status, client_ip=client[0] if client else None, principal=principal,
        key_id=key_id, action=action))


def cli_entry(command: str, user: str, action: dict[str, Any], time: datetime) -> dict[str, Any]:
    """An audit document for an ``earshot`` command run by ``user`` (the OS account)."""
    return {"id": uuid.uuid4().hex, "time": time.isoformat(), "method": "CLI", "route": f"earshot {command}",
            "path": f"earshot {command}", "status": 200, "outcome": "ok", "client_ip": None, "key_id": None,
            "key_name": user, "role": None, "via": "cli", "action": action}
