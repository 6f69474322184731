"""The API when Elasticsearch cannot be reached: alive, not ready, clear 503s."""

from fastapi.testclient import TestClient

from api.main import create_app
from pipeline.settings import Settings


def test_health_stays_up_readiness_and_search_say_the_backend_is_down():
    # Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    with TestClient(create_app(Settings(es_url="http://127.0.0.1:9"))) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        search = client.get("/v1/mentions/search", params={"q": "delayed"})
        assert search.status_code == 503
        assert search.json()["error"] == "search backend unavailable, retry shortly"
        assert "Traceback" not in search.text


def test_before_anything_is_indexed_search_is_empty_and_trend_is_all_zero(services):
    settings = Settings(index_prefix="test-never-indexed")
    with TestClient(create_app(settings)) as client:
        search = client.get("/v1/mentions/search", params={"q": "delayed"})
        assert search.status_code == 200 and search.json() == {"total": 0, "hits": [], "next_cursor": None}
        trend = client.get("/v1/brands/united/trend", params={
            "from": "2026-11-01T00:30:00Z", "to": "2026-11-01T03:00:00Z", "interval": "1h"})
        assert trend.status_code == 200
        body = trend.json()
        assert body["total"] == 0
        assert [b["start"] for b in body["buckets"]] == [
            "2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", "2026-11-01T02:00:00Z"]
