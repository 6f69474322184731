"""Request and response hardening: body size limits, security headers, CORS only for configured origins.

The Content-Security-Policy fits a same-origin dashboard with no inline script or style. The
interactive docs (``/docs``, ``/redoc``) are FastAPI's pages, which load Swagger UI / ReDoc from a
CDN and start them with an inline script: those two paths get a policy allowing just that.
JSON answers get ``Cache-Control: no-store`` (mentions and alerts are not for shared caches)
unless the route set its own (the SSE stream's ``no-cache``).
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.settings import Settings

APP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
           "cross-origin-opener-policy": "same-origin"}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body over {limit} bytes")


class BodyLimitMiddleware:
    """413 for a request body over ``EARSHOT_API_MAX_BODY_BYTES`` (``EARSHOT_INGEST_MAX_BYTES`` for
    ``POST /v1/ingest``, which also checks it itself): at once when ``Content-Length`` says so,
    else as soon as the bytes read pass the limit, so an oversized body is never read whole."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings

    def limit(self, path: str) -> int:
        return self.settings.ingest_max_bytes if path == "/v1/ingest" else self.settings.api_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit)
            return
        read, started = 0, False

        async def counted_receive() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise BodyTooLarge(limit)  # inside a route: answered by the app's HTTPException handler
            return message

        async def noted_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, noted_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_413(send, limit)


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"error": f"request body over {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response (a route's own values win)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("content-security-policy", DOCS_CSP if scope["path"] in DOCS_PATHS else APP_CSP)
                if headers.get("content-type", "").startswith("application/json"):
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """CORS is closed unless ``EARSHOT_API_CORS_ORIGINS`` lists origins: browsers on other sites
    then may call the API with a key header (no cookies: earshot has no sessions to send)."""
    if settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.api_cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"], max_age=600,
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Earshot-Signature"],
                           expose_headers=["Retry-After"])
