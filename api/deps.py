"""Dependencies injected into routes: settings, the shared clients, access control (``api.auth.guard``)."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch
from fastapi import Request

from api.alert_feed import AlertFeed
from api.alert_publisher import AlertPublisher
from api.auth.guard import Principal, require, require_admin  # noqa: F401 - routes import them from here
from pipeline.alerts.sink import ensure_alerts_layout
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
