"""The FastAPI application: one router per resource, errors as 4xx/5xx with a message.

Run with ``earshot api`` (uvicorn, ``create_app`` factory).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.alert_feed import AlertFeed
from api.alert_publisher import AlertPublisher
from api.auth.scopes import hash_secret
from api.audit import AuditLog, AuditMiddleware
from api.auth.guard import document_scopes
from api.cursor import BadCursor
from api.errors import COMMON_ERRORS
from api.kafka import LazyProducer
from api.metrics import instrument
from api.auth.keys import KeyStore
from api.auth.ratelimit import RateLimiter
from api.hardening import BodyLimitMiddleware, SecurityHeadersMiddleware, install_cors
from api.syntax import SyntaxProblem, syntax_response
from api.queries import BadQuery
from api.routes import audit as audit_routes
from api.routes import alerts, brands, erasure, health, ingest, listening, mentions, webhooks
from api.routes.dashboard import install_dashboard
from api.routes import competitors, ir, market, reputation, similar, stories
from api.routes import feed, keys, triage
from pipeline.alerts.sink import AlertBusy, ensure_alerts_layout
from pipeline.settings import Settings, get_settings
from pipeline.store.mention_sink import make_es_client

log = logging.getLogger("earshot.api")


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, **extra})


async def _install_alerts_layout(es, settings: Settings) -> bool:
    """Create the alerts and webhooks indices; False (and a warning) if ES cannot be reached now.
    Writes install them later (``api.deps.alerts_layout``); reads treat a missing index as empty."""
    try:
        await ensure_alerts_layout(es, settings)
    except (ESConnectionError, ConnectionTimeout, ApiError) as exc:
        log.warning("alerts layout not installed at start-up (%s); will retry on the first write", exc)
        return False
    return True


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.es = make_es_client(settings)
        app.state.alerts_layout_ready = await _install_alerts_layout(app.state.es, settings)
        app.state.keys = KeyStore(app.state.es, settings)
        app.state.rate_limiter = RateLimiter()
        bootstrap = settings.bootstrap_admin_key
        app.state.bootstrap_key_sha256 = hash_secret(bootstrap.get_secret_value().strip()) if bootstrap else None
        app.state.audit = AuditLog(app.state.es, settings)
        audit_task = asyncio.create_task(app.state.audit.run(), name="audit-log")
        app.state.producer = LazyProducer(settings)  # starts on the first publish, not here
        app.state.alert_publisher = AlertPublisher(app.state.producer)
        app.state.alert_feed = AlertFeed(settings)
        feed_task = asyncio.create_task(app.state.alert_feed.run(), name="alert-feed")
        try:
            yield
        finally:
            feed_task.cancel()
            with suppress(asyncio.CancelledError):
                await feed_task
            await app.state.producer.close()
            await app.state.audit.close(audit_task)
            await app.state.es.close()

    app = FastAPI(
        title="earshot",
        version="0.1.0",
        description="Social listening: search enriched mentions, brand trends, alerts and their webhooks.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    # Each /v1 route may answer a key problem, a bad parameter or a backend outage: documented once here.
    for resource in (mentions, similar, brands, alerts, webhooks, ingest, listening, erasure, audit_routes, triage, feed, keys):
        app.include_router(resource.router, prefix="/v1", responses=COMMON_ERRORS)
    for analytics in (reputation, stories, competitors, market, ir):  # comms, competitor, market-intel and IR views
        app.include_router(analytics.router, prefix="/v1", responses=COMMON_ERRORS)
    install_dashboard(app)  # the web page at /, its assets under /static/
    # Outermost last: security headers on every answer (CORS and audit ones too), then CORS, the audit,
    # and the body limit (a 413 is audited).
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(AuditMiddleware)
    install_cors(app, settings)
    app.add_middleware(SecurityHeadersMiddleware)

    document_scopes(app)  # after every router: each route's OpenAPI entry names the scope it needs

    @app.exception_handler(SyntaxProblem)
    async def query_syntax(request: Request, exc: SyntaxProblem) -> JSONResponse:
        return syntax_response(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(AlertBusy)
    async def alert_busy(request: Request, exc: AlertBusy) -> JSONResponse:
        return _error(409, "the alert is being changed by others right now; retry")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body"))
            problems.append(f"{where}: {err['msg']}")
        return _error(422, "invalid request: " + "; ".join(problems), details=problems)

    @app.exception_handler(BadQuery)
    @app.exception_handler(BadCursor)
    async def bad_query(request: Request, exc: ValueError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(ESConnectionError)
    @app.exception_handler(ConnectionTimeout)
    async def es_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("Elasticsearch unavailable: %s", exc)
        return _error(503, "search backend unavailable, retry shortly", retry_after_s=5)

    @app.exception_handler(ApiError)
    async def es_error(request: Request, exc: ApiError) -> JSONResponse:
        log.error("Elasticsearch error %s: %s", exc.meta.status, exc)
        if 400 <= exc.meta.status < 500:
            return _error(400, "the search backend rejected the query; check its parameters")
        return _error(503, "search backend error, retry shortly")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal error")  # never a stack trace to the client

    instrument(app)  # last: its middleware is the outermost, so it counts every answer (401s, 413s too)
    return app
