"""The API when Elasticsearch cannot be reached: alive, not ready, clear 503s."""

from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.main import create_app
from pipeline.settings import Settings

# The bootstrap admin key needs no Elasticsearch (stored keys are looked up there).
BOOTSTRAP = "bootstrap-admin-key-for-tests-0123456789"
HEADERS = {"Authorization": f"Bearer {BOOTSTRAP}"}


def test_health_stays_up_readiness_and_search_say_the_backend_is_down():
    # Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    with TestClient(create_app(Settings(es_url="http://127.0.0.1:9", bootstrap_admin_key=SecretStr(BOOTSTRAP))),
                    headers=HEADERS) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        search = client.get("/v1/mentions/search", params={"q": "delayed"})
        assert search.status_code == 503
        assert search.json()["error"] == "search backend unavailable, retry shortly"
        assert "Traceback" not in search.text
        stored_key = client.get("/v1/mentions/search", headers={"Authorization": "Bearer esk_0123456789abcdef_" + "x" * 43})
        assert stored_key.status_code == 503  # a stored key cannot be checked: retry, not "unauthorised"


def test_before_anything_is_indexed_search_is_empty_and_trend_is_all_zero(test_env):
    # In this session's namespace: the audit log it writes is removed with it.
    settings = Settings(index_prefix=test_env["EARSHOT_INDEX_PREFIX"] + "-never-indexed",
                        bootstrap_admin_key=SecretStr(BOOTSTRAP))
    with TestClient(create_app(settings), headers=HEADERS) as client:
        search = client.get("/v1/mentions/search", params={"q": "delayed"})
        assert search.status_code == 200 and search.json() == {"total": 0, "hits": [], "next_cursor": None}
        trend = client.get("/v1/brands/united/trend", params={
            "from": "2026-11-01T00:30:00Z", "to": "2026-11-01T03:00:00Z", "interval": "1h"})
        assert trend.status_code == 200
        body = trend.json()
        assert body["total"] == 0
        assert [b["start"] for b in body["buckets"]] == [
            "2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", "2026-11-01T02:00:00Z"]
