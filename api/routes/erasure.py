"""Right to erasure: delete one mention, or everything by one author (``pipeline/store/erasure.py``).

Admin routes (``require_admin``). Each answers with counts of what was removed: mention
documents, alerts whose example posts were stripped, and the deletion notices sent to
``mentions.raw`` (which make the workers forget the posts too). Erasure is idempotent: an
interrupted or repeated request is safe, and re-running it finishes the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

from aiokafka.errors import KafkaError
from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.audit import note_action
from api.deps import get_app_settings, get_es, require_admin
from api.errors import errors
from pipeline.store.erasure import AuthorRef, ErasureReport, ErasureTarget, erase
from pipeline.settings import Settings

router = APIRouter(tags=["erasure"], dependencies=[Depends(require_admin)])
log = logging.getLogger("earshot.api.erasure")


class AuthorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(..., min_length=1, max_length=64, description="The mentions' source, e.g. bluesky.")
    handle: str = Field(..., min_length=1, max_length=256, description="As the platform shows it; '@' optional.")


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    author: AuthorBody | None = None
    mention_id: str | None = Field(None, min_length=1, max_length=512)

    @model_validator(mode="after")
    def _exactly_one(self) -> ErasureRequest:
        if (self.author is None) == (self.mention_id is None):
            raise ValueError("give either 'author' or 'mention_id'")
        return self


class ErasureResult(BaseModel):
    target: str
    mentions_deleted: int = Field(..., description="Mention documents deleted, over all monthly indices.")
    alerts_changed: int = Field(..., description="Alerts whose example posts were stripped.")
    alert_examples_removed: int
    deletion_notices: int = Field(..., description="Deletion records sent to mentions.raw (workers forget them).")


async def _erase(request: Request, es: AsyncElasticsearch, settings: Settings, target: ErasureTarget) -> ErasureReport:
    producer = request.app.state.producer

    async def publish(records: list[tuple[str, bytes, bytes]]) -> None:
        try:
            await producer.send_all(records)
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:
            log.warning("erasure of %s: Kafka unavailable: %r", target.describe(), exc)
            raise HTTPException(503, "Kafka unavailable: nothing was erased, retry shortly") from None

    report = await erase(es, settings, target, datetime.now(timezone.utc), publish=publish)
    # The record of the erasure: what was asked and what was removed (ids and counts, no content),
    # on this request's audit entry, and in the log for deployments without the audit log.
    note_action(request, erasure=report.target, **report.counts())
    log.info("erasure %s", json.dumps({"event": "erasure", "target": report.target, **report.counts()}))
    return report


def _result(report: ErasureReport) -> ErasureResult:
    return ErasureResult(target=report.target, **report.counts())


@router.delete("/mentions/{mention_id:path}", response_model=ErasureResult, summary="Erase one mention",
               responses=errors(404))
async def erase_mention(
    request: Request,
    mention_id: str = Path(..., min_length=1, max_length=512, description="e.g. bluesky:3kabc"),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ErasureResult:
    """Delete the mention from every index and strip it from alerts; 404 if nothing held it."""
    report = await _erase(request, es, settings, ErasureTarget(mention_id=mention_id))
    if report.mentions_deleted == 0 and report.alert_examples_removed == 0:
        raise HTTPException(404, f"no mention {mention_id!r} is stored")
    return _result(report)


@router.post("/erasure", response_model=ErasureResult, summary="Erase an author's or a mention's data",
             responses=errors(413))
async def erase_data(
    body: ErasureRequest,
    request: Request,
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> ErasureResult:
    """Everything by ``author`` (on one platform), or one ``mention_id``. Counts may be 0: an
    author or id with nothing stored is not an error here (a mention id still gets its deletion
    notice, so a post that is in flight right now is dropped by the worker)."""
    if body.author is not None:
        target = ErasureTarget(author=AuthorRef(body.author.platform, body.author.handle))
    else:
        target = ErasureTarget(mention_id=body.mention_id)
    return _result(await _erase(request, es, settings, target))
