"""The NDJSON feed over the real Elasticsearch: order, filters, a cut connection resumed exactly,
and memory that does not grow with the number of rows streamed."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import tracemalloc
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.feed import feed_lines, feed_query, open_snapshot
from pipeline.schema import EnrichedMention, Sentiment
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client

pytestmark = pytest.mark.services

T0 = datetime(2025, 6, 30, 20, 0, tzinfo=timezone.utc)  # the rows span two monthly indices
ROWS = 2500
PURPOSES = ["customer_care", "sales_lead", "praise"]


def mention(i: int) -> EnrichedMention:
    # Three mentions share each timestamp: the order within a tie is by id.
    created = T0 + timedelta(seconds=60 * (i // 3))
    purpose = PURPOSES[i % 3]
    return EnrichedMention(
        id=f"feedtest:{(i * 7919) % 100_000:05d}", source="feedtest", text=f"feed post {i}", lang="en" if i % 4 else "de",
        created_at=created, ingested_at=created, model_version="test@1", brands=["feedco"],
        sentiment=Sentiment(label="neutral", score=0.8, negative=0.1, neutral=0.8, positive=0.1),
        purposes=[purpose], teams=["customer_care" if purpose == "customer_care" else "sales"])


ALL = [mention(i) for i in range(ROWS)]
ORDER = [m.id for m in sorted(ALL, key=lambda m: (m.created_at, m.id))]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def loaded(settings):
    async def load():
        es = make_es_client(settings)
        try:
            await ensure_mentions_layout(es, settings)
            sink = MentionSink(es, settings)
            for start in range(0, ROWS, 500):
                assert await sink.write([(m.to_document(), m.created_at) for m in ALL[start:start + 500]]) == []
            await es.indices.refresh(index=settings.mentions_alias)
        finally:
            await es.close()

    asyncio.run(load())


@pytest.fixture(scope="module")
def client(settings, api_keys, loaded):
    with TestClient(create_app(settings), headers=bearer(api_keys["data"])) as c:
        yield c


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line]


def test_the_feed_streams_every_row_in_a_stable_order_page_by_page(client):
    r = client.get("/v1/feed", params={"brand": "feedco", "page_size": 97})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    *rows, end = lines(r.text)
    assert [row["mention"]["id"] for row in rows] == ORDER
    assert end == {"end": True, "rows": ROWS, "cursor": rows[-1]["cursor"]}
    assert EnrichedMention(**rows[0]["mention"]).id == ORDER[0]  # each row is a full EnrichedMention


def test_filters_and_bad_parameters(client):
    since, until = T0 + timedelta(hours=2), T0 + timedelta(hours=5)
    params = {"brand": "feedco", "purpose": "customer_care", "team": "customer_care", "lang": "en",
              "from": since.isoformat(), "to": until.isoformat(), "page_size": 50}
    *rows, end = lines(client.get("/v1/feed", params=params).text)
    expected = [m.id for m in sorted(ALL, key=lambda m: (m.created_at, m.id)) if m.purposes == ["customer_care"]
                and m.lang == "en" and since <= m.created_at < until]
    assert expected and [row["mention"]["id"] for row in rows] == expected and end["rows"] == len(expected)
    for bad, status in (({"purpose": "gossip"}, 400), ({"cursor": "garbage!"}, 400), ({"page_size": 0}, 422),
                        ({"from": until.isoformat(), "to": since.isoformat()}, 400), ({"lang": "English"}, 422)):
        assert client.get("/v1/feed", params=bad).status_code == status, bad


def test_the_feed_needs_the_feed_scope(client, api_keys):
    assert client.get("/v1/feed", params={"brand": "nobody"}, headers=bearer(api_keys["care"])).status_code == 403
    assert client.get("/v1/feed", params={"brand": "nobody"}, headers=bearer(api_keys["comms"])).status_code == 403
    empty = client.get("/v1/feed", params={"brand": "nobody"}, headers=bearer(api_keys["admin"]))
    assert lines(empty.text) == [{"end": True, "rows": 0, "cursor": None}]


@pytest.fixture(scope="module")
def server(settings, loaded):
    """The API on a real socket (uvicorn in a thread): the TestClient buffers whole responses."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_a_cut_connection_resumes_after_the_last_row_received_with_no_gap_and_no_repeat(server, api_keys):
    params = {"brand": "feedco", "page_size": 100}
    received: list[dict] = []
    with httpx.Client(base_url=server, headers=bearer(api_keys["data"]), timeout=30) as http:
        with http.stream("GET", "/v1/feed", params=params) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                received.append(json.loads(line))
                if len(received) == 1234:
                    break  # drop the connection mid-page, the server still writing
        assert "end" not in received[-1]
        resumed = lines(http.get("/v1/feed", params={**params, "cursor": received[-1]["cursor"]}).text)
    *rest, end = resumed
    assert [row["mention"]["id"] for row in received + rest] == ORDER
    assert end["end"] and end["rows"] == ROWS - 1234


def test_memory_does_not_grow_with_the_rows_streamed(settings, loaded):
    """The server side of the feed holds one page: peak traced memory while streaming 4N rows
    stays close to that of N rows (generous bound: under 1.5x, both with 100-row pages)."""
    async def peak(rows: int) -> int:
        es = make_es_client(settings)
        try:
            query = feed_query("feedco", None, None, None, None, None)
            await es.search(index=settings.mentions_alias, query=query, size=1)  # warm the client's pools
            tracemalloc.start()
            count = 0
            async for chunk in feed_lines(es, await open_snapshot(es, settings), query, 100, None):
                count += chunk.count("\n")
                if count >= rows:
                    break
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert count >= rows
            return top
        finally:
            await es.close()

    small, large = asyncio.run(peak(500)), asyncio.run(peak(2000))
    assert large < 1.5 * small, (small, large)
