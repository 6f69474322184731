"""The HTTP API over real Elasticsearch (documents written with the real sink)."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from pipeline.schema import EnrichedMention, Sentiment, Spam
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc)
LABELS = ["negative", "neutral", "positive"]


def mention(i: int) -> EnrichedMention:
    label = LABELS[i % 3]
    probs = {l: (0.8 if l == label else 0.1) for l in LABELS}
    text = f"flight {i} was delayed again" if i % 2 else f"great crew on flight {i} <script>alert(1)</script>"
    return EnrichedMention(
        id=f"api:{i:03d}", source="apitest", text=text, lang="en" if i % 5 else "fr",
        created_at=T0 + timedelta(minutes=10 * i), ingested_at=T0 + timedelta(minutes=10 * i),
        sentiment=Sentiment(label=label, score=0.8, **probs), model_version="test@1",
        brands=["united"] if i % 4 else ["delta"], competitors=[] if i % 4 else ["delta"],
        spam=Spam(score=0.95, signals=["burst"]) if i % 7 == 3 else (Spam(score=0.1) if i % 2 else None),
        duplicate_of="api:001" if i % 6 == 5 else None,
        queries=["delays"] if i % 2 else [],
    )


def counted(m: EnrichedMention) -> bool:
    """In trends by default: not scored as spam (>= 0.7)."""
    return m.spam is None or m.spam.score < 0.7


@pytest.fixture(scope="module")
def client(settings, admin_headers):
    async def load():
        es = make_es_client(settings)
        try:
            await ensure_mentions_layout(es, settings)
            batch = [(m.to_document(), m.created_at) for m in map(mention, range(60))]
            assert await MentionSink(es, settings).write(batch) == []
            await es.indices.refresh(index=settings.mentions_alias)
        finally:
            await es.close()

    asyncio.run(load())
    with TestClient(create_app(settings), headers=admin_headers) as c:
        yield c


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_free_text_search_with_filters_and_escaped_highlights(client):
    r = client.get("/v1/mentions/search", params={"q": "great crew", "source": "apitest", "lang": "en"})
    assert r.status_code == 200
    body = r.json()
    expected = [m for m in map(mention, range(60)) if "great crew" in m.text and m.lang == "en"]
    assert body["total"] == len(expected)
    for hit in body["hits"]:
        assert "<mark>great</mark>" in hit["highlight"]
        assert "<script>" not in hit["highlight"] and "&lt;script&gt;" in hit["highlight"]


def test_search_takes_the_listening_language_and_stored_query_tags(client):
    all_mentions = list(map(mention, range(60)))
    r = client.get("/v1/mentions/search", params={"query": '"great crew" NOT lang:fr', "source": "apitest", "size": 100})
    assert r.status_code == 200
    expected = {m.id for m in all_mentions if "great crew" in m.text and m.lang != "fr"}
    assert {h["id"] for h in r.json()["hits"]} == expected
    assert all("<mark>" in h["highlight"] for h in r.json()["hits"])
    r = client.get("/v1/mentions/search", params={"query": "flight NEAR/1 delayed", "source": "apitest", "size": 100})
    assert r.json()["total"] == 0  # "flight 7 was delayed": two tokens apart
    r = client.get("/v1/mentions/search", params={"query": "flight NEAR/2 delayed", "source": "apitest", "size": 100})
    assert r.json()["total"] == sum(1 for m in all_mentions if "delayed" in m.text)
    r = client.get("/v1/mentions/search", params={"tagged": "delays", "source": "apitest", "size": 100})
    assert {h["id"] for h in r.json()["hits"]} == {m.id for m in all_mentions if m.queries}
    bad = client.get("/v1/mentions/search", params={"query": "flight AND ("})
    assert bad.status_code == 422 and bad.json()["position"] == 12


def test_brand_and_sentiment_filters(client):
    r = client.get("/v1/mentions/search", params={"brand": "delta", "sentiment": "negative", "source": "apitest"})
    expected = {m.id for m in map(mention, range(60)) if m.brands == ["delta"] and m.sentiment.label == "negative"}
    assert {h["id"] for h in r.json()["hits"]} == expected


def test_cursor_pagination_walks_every_hit_once_newest_first(client):
    seen, cursor = [], None
    while True:
        params = {"source": "apitest", "size": 7}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/mentions/search", params=params).json()
        seen += [h["id"] for h in page["hits"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"api:{i:03d}" for i in reversed(range(60))]


def test_time_range(client):
    params = {"source": "apitest", "from": (T0 + timedelta(minutes=100)).isoformat(),
              "to": (T0 + timedelta(minutes=150)).isoformat(), "size": 100}
    ids = {h["id"] for h in client.get("/v1/mentions/search", params=params).json()["hits"]}
    assert ids == {f"api:{i:03d}" for i in range(10, 15)}


def test_trend_counts_by_sentiment_per_interval(client):
    r = client.get("/v1/brands/united/trend",
                   params={"from": T0.isoformat(), "to": (T0 + timedelta(hours=10)).isoformat(), "interval": "1h"})
    assert r.status_code == 200
    body = r.json()
    assert len(body["buckets"]) == 10
    united = [m for m in map(mention, range(60)) if "united" in m.brands and counted(m)]
    assert body["total"] == len(united)
    first_hour = [m for m in united if m.created_at < T0 + timedelta(hours=1)]
    b0 = body["buckets"][0]
    assert b0["total"] == len(first_hour)
    assert b0["negative"] == sum(m.sentiment.label == "negative" for m in first_hour)
    assert b0["negative"] + b0["neutral"] + b0["positive"] == b0["total"]
    assert sum(b["voices"] for b in body["buckets"]) == sum(m.duplicate_of is None for m in united)


def test_trend_leaves_spam_out_unless_asked_and_counts_echoes_once(client):
    params = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=10)).isoformat(), "interval": "1h"}
    default = client.get("/v1/brands/united/trend", params=params).json()
    everything = client.get("/v1/brands/united/trend", params={**params, "include_spam": "true"}).json()
    united = [m for m in map(mention, range(60)) if "united" in m.brands]
    spam = [m for m in united if not counted(m)]
    assert spam and everything["total"] == len(united) and default["total"] == len(united) - len(spam)
    echoes = sum(m.duplicate_of is not None for m in united)
    assert echoes and sum(b["voices"] for b in everything["buckets"]) == len(united) - echoes


@pytest.mark.parametrize(
    "path, params, status, words",
    [
        ("/v1/mentions/search", {"size": 0}, 422, "size"),
        ("/v1/mentions/search", {"size": 1000}, 422, "size"),
        ("/v1/mentions/search", {"sentiment": "angry"}, 422, "sentiment"),
        ("/v1/mentions/search", {"from": "not-a-date"}, 422, "from"),
        ("/v1/mentions/search", {"cursor": "garbage!"}, 400, "cursor"),
        ("/v1/mentions/search", {"brand": "Bad Brand!"}, 422, "brand"),
        ("/v1/mentions/search", {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, 400, "before"),
        ("/v1/brands/united/trend", {"interval": "1w"}, 400, "interval"),
        ("/v1/brands/united/trend", {"interval": "1m", "from": "2026-01-01T00:00:00Z"}, 400, "buckets"),
    ],
)
def test_bad_parameters_get_a_4xx_with_a_clear_message(client, path, params, status, words):
    r = client.get(path, params=params)
    assert r.status_code == status
    assert words in r.json()["error"]
    assert "Traceback" not in r.text
