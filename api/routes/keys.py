"""API keys over HTTP, for the admin workspace: list, create (the secret shown once), revoke.

The same records as ``earshot keys`` (``api/auth/keys.py``); every route needs ``keys:admin``
(the admin role). A key for a routed team may be bound to the teams it serves (``teams``): it
then reads and acts on those teams' triage queues only.
"""

from __future__ import annotations

from datetime import datetime, timezone

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from api.audit import note_action
from api.auth.keys import create_key, list_keys, revoke_key
from api.auth.scopes import KEYS_ADMIN, ROLES, scopes_for
from api.deps import Principal, get_app_settings, get_es, require
from api.errors import errors
from pipeline.settings import Settings

router = APIRouter(prefix="/keys", tags=["keys"])


class KeyOut(BaseModel):
    key_id: str
    name: str
    role: str
    teams: list[str] = Field(default_factory=list, description="Teams it serves; empty: not bound.")
    scopes: list[str]
    rate_per_minute: int | None = None
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None


class KeyList(BaseModel):
    keys: list[KeyOut]


class NewKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100, description="Who or what holds it, e.g. jo@acme")
    role: str = Field(..., description=f"One of {', '.join(ROLES)}")
    teams: list[str] = Field(default_factory=list, max_length=50, description="Bind it to these teams' queues.")
    rate_per_minute: int | None = Field(None, ge=1, le=1_000_000)


class CreatedKey(KeyOut):
    key: str = Field(..., description="The key itself: shown only in this answer, never stored.")


def _out(record) -> KeyOut:
    return KeyOut(**record.model_dump(exclude={"secret_sha256"}), scopes=sorted(scopes_for(record.role)))


@router.get("", response_model=KeyList, summary="List API keys (never their secrets)")
async def keys_list(_: Principal = Depends(require(KEYS_ADMIN)), es: AsyncElasticsearch = Depends(get_es),
                    settings: Settings = Depends(get_app_settings)) -> KeyList:
    return KeyList(keys=[_out(r) for r in await list_keys(es, settings)])


@router.post("", status_code=201, response_model=CreatedKey, summary="Create an API key (shown once)",
             responses=errors(413))
async def keys_create(request: Request, body: NewKeyBody, principal: Principal = Depends(require(KEYS_ADMIN)),
                      es: AsyncElasticsearch = Depends(get_es),
                      settings: Settings = Depends(get_app_settings)) -> CreatedKey:
    try:
        record, key = await create_key(es, settings, body.role, body.name, datetime.now(timezone.utc),
                                       rate_per_minute=body.rate_per_minute, created_by=principal.name,
                                       teams=body.teams)
    except ValueError as exc:
        raise HTTPException(422, f"invalid request: {exc}") from None
    note_action(request, key_id=record.key_id, name=record.name, role=record.role, teams=record.teams)
    return CreatedKey(**_out(record).model_dump(), key=key.text)


@router.post("/{key_id}/revoke", response_model=KeyOut, summary="Revoke an API key (idempotent)",
             responses=errors(404),
             description="The API refuses it within EARSHOT_API_KEY_CACHE_S seconds (at once on this process).")
async def keys_revoke(request: Request, key_id: str = Path(..., pattern=r"^[0-9a-f]{16}$"),
                      _: Principal = Depends(require(KEYS_ADMIN)), es: AsyncElasticsearch = Depends(get_es),
                      settings: Settings = Depends(get_app_settings)) -> KeyOut:
    record = await revoke_key(es, settings, key_id, datetime.now(timezone.utc))
    if record is None:
        raise HTTPException(404, f"no key {key_id}")
    request.app.state.keys.cache.pop(key_id, None)  # this process refuses it at once
    note_action(request, key_id=key_id, name=record.name)
    return _out(record)
