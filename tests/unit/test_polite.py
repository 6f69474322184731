"""The connectors' HTTP client against a loopback server: 429, quota headers, retries, 4xx."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from aiohttp import web

from connectors.checkpoint import CheckpointStore
from connectors.polite import PoliteClient, SourceError, reset_delay_s
from tests.loopback import loopback


def run(coro):
    return asyncio.run(coro)


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_reset_header_units():
    now = 1_700_000_000.0
    assert reset_delay_s("412", now) == 412  # Reddit: seconds from now
    assert reset_delay_s("1700000060", now) == 60  # X: unix seconds
    assert reset_delay_s("2023-11-14T22:14:20.000Z", now) == pytest.approx(60)  # Mastodon: ISO date
    assert reset_delay_s("soon", now) is None and reset_delay_s(None, now) is None


def test_429_waits_retry_after_then_succeeds():
    calls = []

    async def handler(request):
        calls.append(request.path)
        if len(calls) == 1:
            return web.Response(status=429, headers={"Retry-After": "7"})
        return web.json_response({"ok": True})

    async def go():
        app = web.Application()
        app.router.add_get("/x", handler)
        sleeps = Sleeps()
        async with loopback(app) as url, httpx.AsyncClient() as http:
            client = PoliteClient(http, sleep=sleeps)
            assert await client.get_json(f"{url}/x") == {"ok": True}
            return sleeps, client.counters

    sleeps, counters = run(go())
    assert sleeps == [7.0] and counters.rate_limited == 1 and counters.requests == 2


def test_spent_quota_pauses_the_next_request_until_reset():
    async def handler(request):
        return web.json_response({}, headers={"x-ratelimit-remaining": "0.0", "x-ratelimit-reset": "30"})

    async def go():
        app = web.Application()
        app.router.add_get("/x", handler)
        sleeps = Sleeps()
        async with loopback(app) as url, httpx.AsyncClient() as http:
            client = PoliteClient(http, sleep=sleeps)
            await client.get_json(f"{url}/x")
            assert sleeps == []  # the answer itself is fine ...
            await client.get_json(f"{url}/x")
            return sleeps

    sleeps = run(go())
    assert len(sleeps) == 1 and 29 <= sleeps[0] <= 30  # ... the next request waits for the reset


def test_5xx_and_network_errors_back_off_then_4xx_raises():
    state = {"n": 0}

    async def flaky(request):
        state["n"] += 1
        return web.Response(status=503) if state["n"] < 3 else web.json_response([1])

    async def forbidden(request):
        return web.Response(status=401, text="bad token")

    async def go():
        app = web.Application()
        app.router.add_get("/flaky", flaky)
        app.router.add_get("/auth", forbidden)
        sleeps = Sleeps()
        async with loopback(app) as url, httpx.AsyncClient() as http:
            client = PoliteClient(http, sleep=sleeps, backoff_base_s=1.0)
            assert await client.get_json(f"{url}/flaky") == [1]
            with pytest.raises(SourceError) as err:
                await client.get_json(f"{url}/auth")
            assert err.value.status == 401
            # Nothing listens on this port any more: a network error, retried with backoff.
            dead = PoliteClient(http, sleep=sleeps)
            task = asyncio.ensure_future(dead.get_json(url.rsplit(":", 1)[0] + ":9/x"))
            while dead.counters.errors < 2:
                await asyncio.sleep(0.01)
            task.cancel()
            return sleeps, client.counters

    sleeps, counters = run(go())
    assert counters.errors == 2 and counters.retries == 2
    assert sleeps[0] <= 1.0 and sleeps[1] <= 2.0  # full jitter under base * 2^(n-1)


def test_checkpoint_store_round_trip_and_atomic_file(tmp_path):
    store = CheckpointStore(tmp_path / "cp")
    assert store.load("mastodon:main") is None
    store.save("mastodon:main", {"since_id": "109"})
    store.save("mastodon:main", {"since_id": "110"})
    assert store.load("mastodon:main") == {"since_id": "110"}
    files = list((tmp_path / "cp").iterdir())
    assert [f.name for f in files] == ["mastodon_main.json"]  # no temporary files left behind
    assert json.loads(files[0].read_text()) == {"since_id": "110"}
