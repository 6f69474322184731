"""Prometheus metrics of the API: request counts and durations per route template, and ``/metrics``.

``/metrics`` is unauthenticated (Prometheus scrapes it without credentials) and left out of the
OpenAPI schema; it tells anyone who can reach it the request rates and error counts of every
route, so restrict it at the network (bind the API to a private interface, or have the ingress
refuse ``/metrics`` from outside).

Requests are labelled with the route's *template* (``/v1/alerts/{alert_id}``), never the raw
path, so the number of series stays bounded; a request that matches no route is ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS, exposition

UNMATCHED = "unmatched"
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """The process's metrics in the Prometheus text format."""
    body, content_type = exposition()
    return Response(body, headers={"Content-Type": content_type})


def route_template(scope: Scope) -> str:
    """The full path template of the route that served ``scope``, as the router left it in the
    scope, or ``unmatched`` (no route: a 404, or an answer given before routing).

    FastAPI 0.16x keeps included routers nested: ``scope["route"]`` is the ``APIRoute`` with the
    path *within* its router (``/alerts/{alert_id}``), and the template with the include prefix
    (``/v1/alerts/{alert_id}``) is on the effective route context it notes under
    ``scope["fastapi"]``. Older FastAPI and plain Starlette routes: ``scope["route"].path``."""
    fastapi_scope = scope.get("fastapi")
    context: Any = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    for candidate in (getattr(context, "path_format", None), getattr(scope.get("route"), "path", None)):
        if isinstance(candidate, str) and candidate:
            return candidate
    return UNMATCHED


class RequestMetrics:
    """ASGI middleware counting each HTTP request (method, route template, status) and timing it
    until its response ended. Pure ASGI (not ``BaseHTTPMiddleware``): streamed responses such as
    the SSE alert stream pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = route_template(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


def instrument(app: FastAPI) -> None:
    """Count and time every request of ``app`` and serve ``/metrics`` on it. Call it after the
    other middleware is added: the last added is the outermost, and sees every answer."""
    app.include_router(router)
    app.add_middleware(RequestMetrics)
