"""Webhook registrations: where the worker POSTs alerts (``pipeline/alerts/delivery.py``).

Routes for keys with the ``webhooks:admin`` scope (roles crisis and admin).

The signing secret is returned once, in the answer to the registration; it is stored but never
listed again. A new registration reaches the worker within its registry's cache time (seconds).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Annotated

from elasticsearch import AsyncElasticsearch, NotFoundError
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from api.auth.scopes import WEBHOOKS_ADMIN
from api.audit import note_action
from api.deps import alerts_layout, get_app_settings, get_es, require
from api.errors import errors
from api.routes.mentions import BRAND_ID
from pipeline.settings import Settings
from pipeline.alerts.webhooks import Threshold, WebhookFormat

router = APIRouter(tags=["webhooks"], dependencies=[Depends(require(WEBHOOKS_ADMIN))])
WEBHOOK_ID = r"^[a-f0-9]{16}$"
MAX_LISTED = 1000


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(..., description="http(s) URL the alerts are POSTed to.")
    brands: list[Annotated[str, StringConstraints(pattern=BRAND_ID)]] = Field(
        default_factory=list, max_length=100, description="Brand ids to receive; empty = every brand.")
    min_severity: Threshold = Field("low", description="Lowest severity paged: a score 1..10, or a band name "
                                    "(low = 1, medium = 4, high = 6, critical = 8).")
    format: WebhookFormat = Field("json", description='json: {"type": "alert", "alert": ...}; slack: a Slack message.')
    digest: bool = Field(True, description="Also receive, every EARSHOT_ALERT_DIGEST_S, one message listing the "
                                           "incidents that opened below its threshold (or the brand's).")
    secret: str | None = Field(None, min_length=16, max_length=256,
                               description="HMAC signing secret; generated when absent.")
    description: str | None = Field(None, max_length=500)


class WebhookView(BaseModel):
    id: str
    url: str
    brands: list[str]
    min_severity: Threshold
    format: WebhookFormat
    digest: bool = True
    created_at: datetime
    description: str | None = None


class WebhookCreated(WebhookView):
    secret: str = Field(..., description="Verify X-Earshot-Signature with it. Shown only now.")


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


@router.post("/webhooks", status_code=201, response_model=WebhookCreated, summary="Register a webhook",
             dependencies=[Depends(alerts_layout)], responses=errors(413))
async def create_webhook(
    registration: WebhookRequest,
    request: Request,
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> WebhookCreated:
    hook = WebhookCreated(
        **registration.model_dump(exclude={"url", "secret"}), url=str(registration.url),
        id=secrets.token_hex(8), created_at=datetime.now(timezone.utc),
        secret=registration.secret or secrets.token_urlsafe(32),
    )
    # Refreshed: a rare admin write to a tiny index, and whoever registers a hook expects to list it at once
    await es.index(index=settings.webhooks_index, id=hook.id, document=hook.model_dump(mode="json"),
                   op_type="create", refresh=True)
    note_action(request, webhook_id=hook.id, url=hook.url, brands=hook.brands)  # never the secret
    return hook


@router.get("/webhooks", response_model=WebhookList, summary="List webhooks (without their secrets)")
async def list_webhooks(
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> WebhookList:
    response = await es.search(index=settings.webhooks_index, size=MAX_LISTED, sort=[{"created_at": "asc"}],
                               source_excludes=["secret"], ignore_unavailable=True, allow_no_indices=True)
    return WebhookList(webhooks=[WebhookView(**hit["_source"]) for hit in response["hits"]["hits"]])


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook", responses=errors(404))
async def delete_webhook(
    webhook_id: str = Path(..., pattern=WEBHOOK_ID),
    es: AsyncElasticsearch = Depends(get_es),
    settings: Settings = Depends(get_app_settings),
) -> Response:
    try:
        await es.delete(index=settings.webhooks_index, id=webhook_id, refresh=True)
    except NotFoundError:
        raise HTTPException(404, f"no webhook with id {webhook_id!r}") from None
    return Response(status_code=204)
