"""``POST /v1/ingest``: push sources (vendors, in-house tools) hand mentions to the pipeline.

The body is ``{"mentions": [<Mention>, ...]}`` (or deletion notices ``{"op": "delete", "id",
"source", "requested_at"}``), at most ``EARSHOT_INGEST_MAX_ITEMS`` items and
``EARSHOT_INGEST_MAX_BYTES`` bytes. Each item is validated with the pipeline's own validator;
valid items go to ``mentions.raw`` keyed by id, invalid ones to the dead-letter topic with their
reason (nothing a sender handed over is dropped), and the answer is ``202`` with one result per
item, in order. The answer comes only after Kafka acknowledged every record: ``accepted`` means
durable. With Kafka unreachable the whole request gets ``503`` and nothing is acknowledged.

A sender proves itself one of two ways (``api.auth.guard.ingest_caller``): an API key with the
``ingest:write`` scope (roles data and admin), or, when ``EARSHOT_INGEST_SECRET`` is set and no key
is sent, ``X-Earshot-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "<t>." + body>`` (the scheme
earshot's own webhooks use, compared in constant time; see ``pipeline.alerts.webhooks.verify``). Keys
suit tools that also read the API; the signature suits vendors that sign webhooks and should
hold no key. A key that is sent is judged on its own (a bad key is refused even with a good
signature). Neither: 401.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, Field

from api.audit import note_action
from api.auth.guard import Principal, ingest_caller
from api.errors import errors

from pipeline.worker.dead_letters import dead_letter, encode_dead_letter
from pipeline.schema import Rejection, parse_mention
from pipeline.alerts.webhooks import SIGNATURE_HEADER, verify

router = APIRouter(tags=["ingest"])
log = logging.getLogger("earshot.api.ingest")


class ItemResult(BaseModel):
    index: int = Field(..., description="Position of the item in the request, from 0.")
    id: str | None = Field(None, description="The mention id it was stored under.")
    status: Literal["accepted", "rejected"]
    reason: str | None = Field(None, description="Why it was rejected (it went to the dead-letter topic).")


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    results: list[ItemResult]


EXAMPLE = {"mentions": [{"id": "acme-crm:4711", "source": "acme-crm", "text": "My @united flight is delayed again",
                         "created_at": "2026-11-24T09:30:00Z", "author": {"handle": "jo"}}]}


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``limit`` bytes (before it is all read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _items(body: bytes, max_items: int) -> list[Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"body is not JSON: {exc}"[:300]) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("mentions"), list):
        raise HTTPException(422, 'expected a JSON object {"mentions": [...]}')
    items = payload["mentions"]
    if not items:
        raise HTTPException(422, "mentions is empty")
    if len(items) > max_items:
        raise HTTPException(413, f"{len(items)} mentions in one request; at most {max_items}")
    return items


def _prepared(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The connector's part for a pushed item: stamp ``ingested_at`` and namespace the id by source."""
    item = dict(item)
    if item.get("op") != "delete":
        item["ingested_at"] = now.isoformat()
    source, mention_id = item.get("source"), item.get("id")
    if isinstance(source, str) and isinstance(mention_id, str) and source and not mention_id.startswith(f"{source}:"):
        item["id"] = f"{source}:{mention_id}"
    return item


@router.post("/ingest", status_code=202, response_model=IngestResult, responses=errors(413),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"example": EXAMPLE}}}})
async def ingest(request: Request, caller: Principal | None = Depends(ingest_caller),
                 signature: str | None = Header(None, alias=SIGNATURE_HEADER, include_in_schema=False)) -> IngestResult:
    """Accept a batch of mentions from a push source; 202 with one result per item.
    Needs an API key with `ingest:write`, or no key and an `X-Earshot-Signature` of the body."""
    settings = request.app.state.settings
    body = await _body(request, settings.ingest_max_bytes)
    if caller is None:  # no key sent, and EARSHOT_INGEST_SECRET is set: the signature is the credential
        secret = settings.ingest_secret.get_secret_value()
        if not signature:
            raise HTTPException(401, f"send an API key with ingest:write, or an {SIGNATURE_HEADER} header "
                                "(t=<unix s>,v1=<HMAC-SHA256 hex>)", headers={"WWW-Authenticate": "Bearer"})
        if not verify(secret, signature, body, now=time.time()):
            raise HTTPException(401, f"{SIGNATURE_HEADER} does not sign this body (or is older than 5 minutes)")
        request.state.principal = Principal("signature", "ingest signature", None, None, "signature")
    items = _items(body, settings.ingest_max_items)
    now = datetime.now(timezone.utc)
    records: list[tuple[str, bytes, bytes]] = []
    results: list[ItemResult] = []
    for index, raw in enumerate(items):
        if isinstance(raw, dict):
            parsed = parse_mention(_prepared(raw, now), now=now, max_text_bytes=settings.max_text_bytes,
                                   max_future_skew=timedelta(seconds=settings.max_future_skew_s))
        else:  # a string item would otherwise be read as JSON text
            parsed = Rejection(f"expected a JSON object, got {type(raw).__name__}")
        if isinstance(parsed, Rejection):
            key = (parsed.mention_id or f"ingest:{now.timestamp()}:{index}").encode("utf-8")
            letter = dead_letter(stage="ingest", reason=parsed.reason, payload=json.dumps(raw, default=str),
                                 failed_at=now, mention_id=parsed.mention_id)
            records.append((settings.topic_dlq, key, encode_dead_letter(letter)))
            results.append(ItemResult(index=index, id=parsed.mention_id, status="rejected", reason=parsed.reason))
            continue
        document = parsed.model_dump(mode="json")  # a Deletion keeps its "op": "delete"
        records.append((settings.topic_raw, parsed.id.encode("utf-8"),
                        json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")))
        results.append(ItemResult(index=index, id=parsed.id, status="accepted"))
    try:
        await request.app.state.producer.send_all(records)
    except Exception as exc:  # noqa: BLE001 - nothing is acknowledged: the sender retries
        log.warning("ingest of %d items not acknowledged by Kafka: %r", len(records), exc)
        raise HTTPException(503, "the pipeline's queue is unavailable; nothing was accepted, retry shortly",
                            headers={"Retry-After": "5"}) from None
    accepted = sum(1 for r in results if r.status == "accepted")
    note_action(request, accepted=accepted, rejected=len(results) - accepted)
    return IngestResult(accepted=accepted, rejected=len(results) - accepted, results=results)
