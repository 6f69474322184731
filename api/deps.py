"""Dependencies injected into routes: settings, the shared clients, admin auth."""

from __future__ import annotations

import hmac

from elasticsearch import AsyncElasticsearch
from fastapi import Header, HTTPException, Request

from api.alert_feed import AlertFeed
from api.alert_publisher import AlertPublisher
from pipeline.alert_sink import ensure_alerts_layout
from pipeline.settings import Settings


def get_es(request: Request) -> AsyncElasticsearch:
    return request.app.state.es


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_alert_feed(request: Request) -> AlertFeed:
    return request.app.state.alert_feed


def get_alert_publisher(request: Request) -> AlertPublisher:
    return request.app.state.alert_publisher


async def alerts_layout(request: Request) -> None:
    """Before a write to the alerts or webhooks index: make sure it exists with its mappings (it
    does unless ES was down when the API started); otherwise ES would create it without them."""
    state = request.app.state
    if not state.alerts_layout_ready:
        await ensure_alerts_layout(state.es, state.settings)  # ES down: raises, the client gets a 503
        state.alerts_layout_ready = True


def require_admin(request: Request, authorization: str | None = Header(None, include_in_schema=False)) -> None:
    """``Authorization: Bearer <EARSHOT_ADMIN_TOKEN>``: 401 without it, 403 with another token.

    With no admin token configured the admin routes are open (local development only).
    """
    token: str | None = request.app.state.settings.admin_token
    if not token:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(401, "admin route: send 'Authorization: Bearer <admin token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8")):
        raise HTTPException(403, "admin route: the token is not valid")
