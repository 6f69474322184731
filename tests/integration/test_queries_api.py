"""``/v1/queries`` against real Elasticsearch: CRUD, positioned syntax errors, version guards, scopes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.conftest import create_api_key

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def q_settings(settings):
    return settings.model_copy(update={"index_prefix": settings.index_prefix + "-q"})


@pytest.fixture(scope="module")
def client(q_settings):
    admin = create_api_key(q_settings, "admin")
    with TestClient(create_app(q_settings), headers={"Authorization": f"Bearer {admin}"}) as c:
        yield c


def test_create_get_list_change_delete(client):
    body = {"id": "acme-returns", "name": "Returns", "kind": "topic", "brand": "acme",
            "query": '@acme AND (return* OR refund) NOT "gift card"'}
    created = client.post("/v1/queries", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and created.json()["seeded"] is False
    assert client.post("/v1/queries", json=body).status_code == 409
    assert client.get("/v1/queries/acme-returns").json()["query"] == body["query"]
    assert [q["id"] for q in client.get("/v1/queries", params={"brand": "acme"}).json()["queries"]] == ["acme-returns"]
    assert client.get("/v1/queries", params={"kind": "brand", "brand": "acme"}).json()["queries"] == []

    changed = client.put("/v1/queries/acme-returns", json={**{k: v for k, v in body.items() if k != "id"},
                                                          "enabled": False, "version": 1})
    assert changed.status_code == 200 and changed.json()["version"] == 2 and changed.json()["enabled"] is False
    stale = client.put("/v1/queries/acme-returns", json={"name": "x", "query": "a", "version": 1})
    assert stale.status_code == 409 and "version 2" in stale.json()["error"]

    assert client.delete("/v1/queries/acme-returns").status_code == 204
    assert client.get("/v1/queries/acme-returns").status_code == 404
    assert client.delete("/v1/queries/acme-returns").status_code == 404


@pytest.mark.parametrize("text, position, expected", [
    ("(@acme OR refund", 16, "')'"),
    ("acme AND", 8, "a term"),
    ('"unclosed phrase', 16, "'\"'"),
])
def test_syntax_errors_say_where_and_what_was_expected(client, text, position, expected):
    response = client.post("/v1/queries", json={"id": "bad", "name": "bad", "query": text})
    assert response.status_code == 422
    problem = response.json()
    assert problem["position"] == position and expected in problem["expected"], problem
    assert "syntax error" in problem["error"]


def test_bad_ids_and_unknown_fields_are_422(client):
    assert client.post("/v1/queries", json={"id": "Bad Id", "name": "x", "query": "a"}).status_code == 422
    assert client.post("/v1/queries", json={"id": "ok", "name": "x", "query": "a", "extra": 1}).status_code == 422
    assert client.get("/v1/queries/Bad%20Id").status_code == 422


def test_reading_needs_queries_read_and_changing_queries_admin(q_settings):
    comms, care = create_api_key(q_settings, "comms"), create_api_key(q_settings, "care")
    with TestClient(create_app(q_settings)) as c:
        assert c.get("/v1/queries").status_code == 401
        assert c.get("/v1/queries", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get("/v1/queries", headers={"X-API-Key": care}).status_code == 403
        assert c.get("/v1/queries", headers={"X-API-Key": comms}).status_code == 200
        body = {"id": "comms-try", "name": "x", "query": "a"}
        assert c.post("/v1/queries", json=body, headers={"X-API-Key": comms}).status_code == 403
