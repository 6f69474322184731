"""Fuzz ``POST /v1/ingest`` (real Kafka behind it): hostile bodies get a 202 or a 4xx, never a 5xx,
and every item's result says accepted or rejected."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from api.main import create_app

pytestmark = pytest.mark.services

HOSTILE = st.sampled_from(["<script>alert(1)</script>", '{"query":{"match_all":{}}}', "../../etc/passwd",
                           "\u0000", "' OR 1=1 --", "${jndi:ldap://x}", "💥" * 50])
VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=50) | HOSTILE,
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8) | HOSTILE, c, max_size=4),
                     max_leaves=20)
ITEM = st.fixed_dictionaries({}, optional={"id": VALUE | st.text(min_size=1, max_size=20), "source": VALUE | st.just("fuzz"),
                                           "text": VALUE | HOSTILE, "created_at": VALUE | st.just("2026-11-24T10:00:00Z"),
                                           "author": VALUE, "op": st.just("delete") | VALUE}) | VALUE


@pytest.fixture(scope="module")
def client(settings, api_keys):
    with TestClient(create_app(settings), headers={"X-API-Key": api_keys["data"]}) as c:
        yield c


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300),
                      st.builds(lambda items: json.dumps({"mentions": items}, default=str).encode("utf-8", "surrogatepass"),
                                st.lists(ITEM, min_size=1, max_size=5)),
                      st.builds(lambda v: json.dumps(v, default=str).encode("utf-8", "surrogatepass"), VALUE)))
def test_hostile_bodies_get_202_or_4xx(client, body):
    response = client.post("/v1/ingest", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202 or 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.status_code == 202:
        result = response.json()
        assert all(r["status"] in ("accepted", "rejected") for r in result["results"])
        assert result["accepted"] + result["rejected"] == len(result["results"])
    else:
        assert response.json()["error"]


def test_a_deeply_nested_body_is_a_4xx(client):
    response = client.post("/v1/ingest", content=b"[" * 50_000 + b"]" * 50_000)
    assert 400 <= response.status_code < 500
