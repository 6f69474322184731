"""Platform stand-ins on 127.0.0.1: a real aiohttp server answering in the platform's format.

    async with loopback(app) as base_url:
        ...  # point the connector's base URL at it

Used by the connector tests: the connector under test does real HTTP (and WebSocket/SSE) over
loopback, so pagination, rate-limit headers and dropped streams are exercised for real.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the duration of the block; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
