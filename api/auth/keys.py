"""API keys in Elasticsearch (index ``<prefix>-keys``), shared by the API and ``earshot keys``.

A record holds the key's id, name, role, rate limit, the teams it serves (routed teams: a key
bound to teams reads and acts on those teams' triage queues only; none: every team) and the
SHA-256 of its secret, never the secret. The API looks records up through ``KeyStore``, which remembers each for
``EARSHOT_API_KEY_CACHE_S`` seconds: a revocation takes effect within that time, and a busy
client costs one ES read per key per cache period, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError
from pydantic import BaseModel, Field

from api.auth.scopes import ROLES, NewKey, hash_secret, new_key
from pipeline.settings import Settings

log = logging.getLogger("earshot.api.keys")
STALE_GRACE_S = 300.0  # while ES is unreachable, a key looked up this recently still works, s
MAX_CACHED = 10_000
MAX_LISTED = 1000
TEAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as routing.yaml's team ids

KEY_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "key_id": {"type": "keyword"},
        "name": {"type": "keyword"},
        "role": {"type": "keyword"},
        "teams": {"type": "keyword"},
        "secret_sha256": {"type": "keyword", "index": False},
        "rate_per_minute": {"type": "integer"},
        "created_at": {"type": "date"},
        "created_by": {"type": "keyword"},
        "revoked_at": {"type": "date"},
    },
}


class KeyRecord(BaseModel):
    key_id: str
    name: str = Field(..., min_length=1, max_length=100)
    role: str
    teams: list[str] = Field(default_factory=list, description="Teams the key serves; empty: not bound (all).")
    secret_sha256: str = Field(..., repr=False)
    rate_per_minute: int | None = Field(None, ge=1, description="None: EARSHOT_API_RATE_PER_MINUTE.")
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


async def ensure_keys_layout(es: AsyncElasticsearch, settings: Settings) -> None:
    """Create the keys index with its strict mapping, or add new fields to it (idempotent, safe to race)."""
    try:
        await es.indices.create(index=settings.keys_index, mappings=KEY_MAPPINGS, settings={
            "number_of_shards": 1, "number_of_replicas": settings.index_replicas})
    except BadRequestError as exc:
        if "resource_already_exists" not in str(exc):
            raise
        await es.indices.put_mapping(index=settings.keys_index, properties=KEY_MAPPINGS["properties"])


def checked_teams(teams: list[str] | tuple[str, ...] | None) -> list[str]:
    """Team ids as stored on a key: stripped, deduplicated, in order; ValueError on a malformed one."""
    found: list[str] = []
    for team in teams or ():
        team = team.strip()
        if not TEAM_ID.match(team):
            raise ValueError(f"team ids are letters, digits and _.- (up to 64); got {team!r}")
        if team not in found:
            found.append(team)
    return found


async def create_key(es: AsyncElasticsearch, settings: Settings, role: str, name: str, now: datetime,
                     rate_per_minute: int | None = None, created_by: str | None = None,
                     teams: list[str] | None = None) -> tuple[KeyRecord, NewKey]:
    """Store a new key; the ``NewKey`` holds the only copy of its secret. ``teams`` binds it to those
    teams' triage queues (none: all the queues its role may read)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    key = new_key()
    record = KeyRecord(key_id=key.key_id, name=name, role=role, teams=checked_teams(teams),
                       secret_sha256=hash_secret(key.secret),
                       rate_per_minute=rate_per_minute, created_at=now, created_by=created_by)
    await ensure_keys_layout(es, settings)
    await es.index(index=settings.keys_index, id=record.key_id, document=record.model_dump(mode="json"),
                   op_type="create", refresh=True)  # a rare write to a tiny index: listed at once
    return record, key


async def get_key(es: AsyncElasticsearch, settings: Settings, key_id: str) -> KeyRecord | None:
    found = await es.options(ignore_status=404).get(index=settings.keys_index, id=key_id)
    return KeyRecord.model_validate(found["_source"]) if found.get("found") else None


async def list_keys(es: AsyncElasticsearch, settings: Settings, name: str | None = None) -> list[KeyRecord]:
    """Every key (revoked ones too), oldest first; only those called ``name`` when given."""
    query = {"term": {"name": name}} if name else {"match_all": {}}
    try:
        response = await es.search(index=settings.keys_index, size=MAX_LISTED, query=query,
                                   sort=[{"created_at": "asc"}, {"key_id": "asc"}])
    except NotFoundError:
        return []
    return [KeyRecord.model_validate(hit["_source"]) for hit in response["hits"]["hits"]]


async def revoke_key(es: AsyncElasticsearch, settings: Settings, key_id: str, now: datetime) -> KeyRecord | None:
    """Mark the key revoked (idempotent: the first revocation time stays); None if there is no such key."""
    record = await get_key(es, settings, key_id)
    if record is None:
        return None
    if record.active:
        record.revoked_at = now
        await es.update(index=settings.keys_index, id=key_id, doc={"revoked_at": now.isoformat()}, refresh=True)
    return record


class KeyStore:
    """Cached look-ups of key records for the API (absent keys are remembered too)."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.es, self.settings, self.clock = es, settings, clock
        self.ttl_s = settings.api_key_cache_s if ttl_s is None else ttl_s
        self.cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self.pending: dict[str, asyncio.Future] = {}
        self.reads = 0  # ES look-ups made (tests and metrics)

    async def find(self, key_id: str) -> KeyRecord | None:
        now = self.clock()
        cached = self.cache.get(key_id)
        if cached and now - cached[0] < self.ttl_s:
            return cached[1]
        # Concurrent requests with the same uncached key share one ES read.
        future = self.pending.get(key_id)
        if future is None:
            future = asyncio.ensure_future(self._read(key_id))
            self.pending[key_id] = future
            future.add_done_callback(lambda _: self.pending.pop(key_id, None))
        try:
            return await asyncio.shield(future)
        except (ESConnectionError, ConnectionTimeout, ApiError) as exc:
            if cached and now - cached[0] < STALE_GRACE_S:
                log.warning("keys index unreachable (%s); using key %s as read %.0f s ago", exc, key_id, now - cached[0])
                return cached[1]
            raise  # the client gets a 503

    async def _read(self, key_id: str) -> KeyRecord | None:
        self.reads += 1
        record = await get_key(self.es, self.settings, key_id)
        if len(self.cache) >= MAX_CACHED:  # forget the oldest entries (dicts keep insertion order)
            for old in list(self.cache)[: MAX_CACHED // 10]:
                del self.cache[old]
        self.cache.pop(key_id, None)
        self.cache[key_id] = (self.clock(), record)
        return record
