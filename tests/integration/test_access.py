"""Access control and request hardening over the real Elasticsearch (and Kafka for ingest): the
role x route matrix, 401/429 cases, the audit log, CORS, security headers, body limits, and
hostile query strings."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.auth.scopes import ROLES, allows
from api.audit import audit_read_pattern
from api.auth.guard import api_routes
from api.auth.keys import revoke_key
from api.main import create_app
from pipeline.schema import EnrichedMention, Sentiment
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client
from pipeline.alerts.webhooks import SIGNATURE_HEADER, sign
from tests.conftest import create_api_key

pytestmark = pytest.mark.services

OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
HOSTILE = ['"}}, {"match_all": {}}', "*:*", '{"script": {"source": "x"}}', '" OR 1=1 --', "\\", "text:* OR *"]
# Path parameters that match nothing, and requests that stop at validation after the auth check.
PATH_VALUES = {"alert_id": "nonexistent", "webhook_id": "0000000000000000", "query_id": "no-such-query",
               "brand": "united", "mention_id": "accesstest:nonexistent", "team": "customer_care",
               "key_id": "0000000000000000"}
QUERY = {"/v1/alerts/stream": {"min_severity": "huge"}}  # a 422, not an endless stream
BODY = {"/v1/ingest": b"{}", "/v1/alerts/{alert_id}/ack": b"{}", "/v1/alerts/{alert_id}/resolve": b"{}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def mention(i: int, text: str) -> EnrichedMention:
    t = datetime(2026, 11, 2, tzinfo=timezone.utc) + timedelta(minutes=i)
    return EnrichedMention(id=f"accesstest:{i}", source="accesstest", text=text, lang="en", created_at=t,
                           ingested_at=t, sentiment=Sentiment(label="neutral", score=0.8, negative=0.1, neutral=0.8,
                                                              positive=0.1),
                           model_version="test@1", brands=["united"])


@pytest.fixture(scope="module")
def client(settings):
    async def load():
        es = make_es_client(settings)
        try:
            await ensure_mentions_layout(es, settings)
            texts = ["flight delayed at the gate", "lovely crew, match all expectations", "script kiddies everywhere"]
            assert await MentionSink(es, settings).write([(m.to_document(), m.created_at) for m in
                                                          (mention(i, t) for i, t in enumerate(texts))]) == []
            await es.indices.refresh(index=settings.mentions_alias)
        finally:
            await es.close()

    asyncio.run(load())
    with TestClient(create_app(settings)) as c:
        yield c


def call(client, method: str, path: str, headers: dict[str, str]):
    url = re.sub(r"\{(\w+)(?::path)?\}", lambda m: PATH_VALUES[m[1]], path)
    body = BODY.get(path, b"{}" if method in ("POST", "PUT") else None)
    return client.request(method, url, params=QUERY.get(path), content=body,
                          headers={**headers, "Content-Type": "application/json"})


# -- every route needs a scope; each role gets exactly its scopes --------------------------------------

def test_every_route_but_health_and_metrics_declares_a_scope(client):
    routes = api_routes(client.app)
    assert {(m, p) for m, p, scopes in routes if not scopes} <= OPEN
    assert len([r for r in routes if r[2]]) >= 20
    for path in ("/healthz", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
    spec = client.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"bearerKey", "headerKey"}
    assert spec["paths"]["/v1/alerts/{alert_id}/ack"]["post"]["x-scopes"] == ["alerts:write"]


def test_auth_matrix_each_role_on_each_route(client, api_keys):
    problems = []
    for method, path, scopes in api_routes(client.app):
        if not scopes:
            continue
        for role in ROLES:
            status = call(client, method, path, bearer(api_keys[role])).status_code
            allowed = all(allows(role, s) for s in scopes)
            if allowed and (status in (401, 403) or status >= 500) or not allowed and status != 403:
                problems.append(f"{role} {method} {path}: {status} (allowed: {allowed})")
        status = call(client, method, path, {}).status_code
        if status != 401:
            problems.append(f"no key {method} {path}: {status}")
    assert not problems, "\n".join(problems)


def test_missing_malformed_unknown_wrong_and_revoked_keys_get_401(settings, api_keys):
    key = create_api_key(settings, "comms", name="soon-revoked")
    key_id = key.split("_")[1]
    with TestClient(create_app(settings.model_copy(update={"api_key_cache_s": 0}))) as c:
        search = "/v1/mentions/search"
        missing = c.get(search)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "API key" in missing.json()["error"]
        for bad in ("hello", "esk_nothex_" + "x" * 43, "esk_0123456789abcdef_" + "x" * 43,  # unknown id
                    key[:-3] + "AAA" if not key.endswith("AAA") else key[:-3] + "BBB"):  # wrong secret
            assert c.get(search, headers=bearer(bad)).status_code == 401, bad
        assert c.get(search, headers={"Authorization": f"Basic {key}"}).status_code == 401
        assert c.get(search, headers={"X-API-Key": key}).status_code == 200
        assert c.get(search, headers=bearer(key)).status_code == 200

        async def revoke():
            es = make_es_client(settings)
            try:
                await revoke_key(es, settings, key_id, datetime.now(timezone.utc))
            finally:
                await es.close()

        asyncio.run(revoke())
        revoked = c.get(search, headers=bearer(key))
        assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
        assert c.get(search, headers=bearer(api_keys["comms"])).status_code == 200


def test_a_bootstrap_admin_key_from_the_settings_works_without_a_stored_record(settings):
    boot = "bootstrap-key-of-at-least-some-length"
    with TestClient(create_app(settings.model_copy(update={"bootstrap_admin_key": SecretStr(boot)}))) as c:
        assert c.get("/v1/audit", headers=bearer(boot)).status_code == 200
        assert c.get("/v1/audit", headers=bearer(boot + "x")).status_code == 401


# -- rate limit and audit log ------------------------------------------------------------------------

def audit_entries(client, admin: str, until, deadline_s: float = 20, **params) -> list[dict]:
    """Entries of the audit log for ``params`` once ``until(entries)`` holds (the writer batches
    and ES refreshes each second), or as they are at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        page = client.get("/v1/audit", params={"size": 100, **params}, headers=bearer(admin))
        assert page.status_code == 200, page.text
        entries = page.json()["entries"]
        if until(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.5)


def test_a_key_over_its_rate_gets_429_with_retry_after_and_its_uses_are_audited(client, settings, api_keys):
    key = create_api_key(settings, "comms", name="limited", rate_per_minute=3)
    key_id = key.split("_")[1]
    answers = [client.get("/v1/mentions/search", params={"q": "delayed"}, headers=bearer(key)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 20  # one request per 20 s at 3 per minute
    assert client.get("/v1/mentions/search", headers=bearer(api_keys["comms"])).status_code == 200  # other keys go on

    entries = audit_entries(client, api_keys["admin"], lambda found: len(found) >= 4, key_id=key_id)
    assert sorted(e["outcome"] for e in entries) == ["ok", "ok", "ok", "rate_limited"]
    for entry in entries:
        assert entry["key_name"] == "limited" and entry["role"] == "comms" and entry["via"] == "key"
        assert entry["method"] == "GET" and entry["route"] == "/v1/mentions/search" and entry["client_ip"]
    forbidden = client.get("/v1/audit", headers=bearer(key))
    assert forbidden.status_code in (403, 429)


def test_state_changes_and_refused_keys_are_audited_with_their_details(client, api_keys):
    admin = api_keys["admin"]
    created = client.post("/v1/queries", headers=bearer(admin), json={
        "id": "audited-query", "name": "Audited", "query": "@united AND refund"})
    assert created.status_code == 201, created.text
    stranger = "esk_feedfeedfeedfeed_" + "x" * 43
    assert client.get("/v1/alerts", headers=bearer(stranger)).status_code == 401

    def mine(entries):
        return [e for e in entries if e["route"] == "/v1/queries" and e["action"].get("query_id") == "audited-query"]

    [write] = mine(audit_entries(client, admin, mine, method="POST", key_id=admin.split("_")[1]))
    assert write["status"] == 201 and write["role"] == "admin" and write["action"]["query"] == "@united AND refund"
    [refused] = audit_entries(client, admin, bool, key_id="feedfeedfeedfeed")
    assert refused["outcome"] == "unauthenticated" and refused["route"] == "/v1/alerts" and refused["key_name"] is None


def test_entries_still_queued_when_the_api_stops_are_written(settings):
    key = create_api_key(settings, "ir", name="last-words")
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/mentions/search", headers=bearer(key)).status_code == 200

    async def stored():
        es = make_es_client(settings)
        try:
            await es.indices.refresh(index=audit_read_pattern(settings))
            found = await es.search(index=audit_read_pattern(settings), query={"term": {"key_id": key.split("_")[1]}})
            return [hit["_source"] for hit in found["hits"]["hits"]]
        finally:
            await es.close()

    [entry] = asyncio.run(stored())
    assert entry["key_name"] == "last-words" and entry["role"] == "ir" and entry["outcome"] == "ok"


def test_the_audit_log_never_blocks_requests_when_elasticsearch_is_down(settings):
    boot = "bootstrap-key-of-at-least-some-length"
    down = settings.model_copy(update={"es_url": "http://127.0.0.1:9", "bootstrap_admin_key": SecretStr(boot),
                                       "audit_queue_size": 5, "audit_flush_s": 0.05})
    started = time.monotonic()
    with TestClient(create_app(down)) as c:
        answers = [c.get("/v1/audit", headers=bearer(boot)).status_code for _ in range(30)]
        assert set(answers) == {503}
        audit = c.app.state.audit
        assert audit.queue.qsize() <= 5
        time.sleep(0.3)
    assert audit.dropped > 0 and audit.written == 0
    assert time.monotonic() - started < 15


# -- CORS, security headers, body limits -----------------------------------------------------------

def test_cors_is_closed_by_default_and_open_to_configured_origins_only(client, settings, api_keys):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    assert "access-control-allow-origin" not in client.options("/v1/alerts", headers=preflight).headers
    plain = client.get("/v1/alerts", headers={**bearer(api_keys["comms"]), "Origin": "https://evil.example"})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers

    dash = "https://dash.example.com"
    with TestClient(create_app(settings.model_copy(update={"api_cors_origins": [dash]}))) as c:
        ok = c.options("/v1/alerts", headers={**preflight, "Origin": dash})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == dash
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        got = c.get("/v1/alerts", headers={**bearer(api_keys["comms"]), "Origin": dash})
        assert got.headers["access-control-allow-origin"] == dash
        assert "access-control-allow-origin" not in c.options("/v1/alerts", headers=preflight).headers


def test_security_headers_on_answers_good_and_bad(client, api_keys):
    for response in (client.get("/healthz"), client.get("/v1/alerts"),
                     client.get("/v1/alerts", headers=bearer(api_keys["comms"]))):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["cache-control"] == "no-store"
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["content-security-policy"]  # the docs page only


def test_bodies_over_the_limit_get_413_before_they_are_read(client, api_keys):
    crisis = {**bearer(api_keys["crisis"]), "Content-Type": "application/json"}
    big = json.dumps({"url": "https://example.com/x", "description": "x" * 1_100_000}).encode()
    too_big = client.post("/v1/webhooks", content=big, headers=crisis)
    assert too_big.status_code == 413 and too_big.json()["error"]

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b"x" * 50_000

    assert client.post("/v1/webhooks", content=chunks(), headers=crisis).status_code == 413
    # ingest keeps its own, larger limit (EARSHOT_INGEST_MAX_BYTES)
    data = {**bearer(api_keys["data"]), "Content-Type": "application/json"}
    padded = json.dumps({"mentions": [], "padding": "x" * 2_000_000}).encode()
    assert client.post("/v1/ingest", content=padded, headers=data).status_code == 422
    huge = json.dumps({"mentions": [], "padding": "x" * 5_100_000}).encode()
    assert client.post("/v1/ingest", content=huge, headers=data).status_code == 413


# -- ingest: a key with ingest:write, or a signature ------------------------------------------------

def test_ingest_takes_a_key_with_ingest_write_or_a_signature(settings, api_keys):
    secret = "ingest-secret-for-access-tests-0123"
    body = json.dumps({"mentions": [{"id": "a1", "source": "accesstest", "text": "hello @united",
                                     "created_at": "2026-11-24T09:00:00Z"}]}).encode()
    signed = {SIGNATURE_HEADER: sign(secret, int(time.time()), body), "Content-Type": "application/json"}
    with TestClient(create_app(settings.model_copy(update={"ingest_secret": SecretStr(secret)}))) as c:
        assert c.post("/v1/ingest", content=body, headers=signed).status_code == 202
        assert c.post("/v1/ingest", content=body, headers={"X-API-Key": api_keys["data"]}).status_code == 202
        assert c.post("/v1/ingest", content=body).status_code == 401
        forged = {**signed, SIGNATURE_HEADER: sign("another-secret-0123456789", int(time.time()), body)}
        assert c.post("/v1/ingest", content=body, headers=forged).status_code == 401
        # a key that is sent is judged on its own, whatever the signature
        assert c.post("/v1/ingest", content=body, headers={**signed, **bearer(api_keys["comms"])}).status_code == 403
        assert c.post("/v1/ingest", content=body, headers={**signed, **bearer("esk_bad")}).status_code == 401
    with TestClient(create_app(settings)) as c:  # no secret configured: a key is the only way in
        assert c.post("/v1/ingest", content=body, headers=signed).status_code == 401


# -- hostile query strings are text ------------------------------------------------------------------

@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_query_strings_are_searched_as_text(client, api_keys, hostile):
    comms = bearer(api_keys["comms"])
    assert client.get("/v1/mentions/search", params={"q": "delayed", "source": "accesstest"},
                      headers=comms).json()["total"] == 1  # the search itself works
    free = client.get("/v1/mentions/search", params={"q": hostile, "source": "accesstest"}, headers=comms)
    assert free.status_code == 200, free.text
    assert free.json()["total"] < 3  # never every mention, as match_all or *:* as DSL would give
    listening = client.get("/v1/mentions/search", params={"query": hostile, "source": "accesstest"}, headers=comms)
    assert listening.status_code == 422 or (listening.status_code == 200 and listening.json()["total"] < 3)
    for name in ("brand", "tagged", "lang"):
        assert client.get("/v1/mentions/search", params={name: hostile}, headers=comms).status_code == 422
    source = client.get("/v1/mentions/search", params={"source": hostile}, headers=comms)
    assert source.status_code == 200 and source.json()["total"] == 0  # an exact term, matching no source


# -- earshot keys ----------------------------------------------------------------------------------

def test_the_keys_command_creates_a_key_shown_once_lists_it_without_secrets_and_revokes_it(settings, capsys):
    from cli.main import main
    from pipeline.settings import get_settings

    get_settings.cache_clear()  # the session's EARSHOT_* namespace is in the environment now
    try:
        assert main(["keys", "create", "--role", "care", "--name", "cli-made", "--rate-per-minute", "7"]) == 0
        key = capsys.readouterr().out.strip()
        key_id, secret = key.split("_")[1], key.split("_", 2)[2]
        assert main(["keys", "list"]) == 0
        listed = capsys.readouterr().out
        [row] = [line for line in listed.splitlines() if line.startswith(key_id)]
        assert row.split()[1:4] == ["cli-made", "care", "7"] and secret not in listed
        with TestClient(create_app(settings.model_copy(update={"api_key_cache_s": 0}))) as c:
            assert c.get("/v1/mentions/search", headers=bearer(key)).status_code == 200
            assert main(["keys", "revoke", key_id]) == 0
            assert c.get("/v1/mentions/search", headers=bearer(key)).status_code == 401
        assert main(["keys", "revoke", "0000000000000000"]) == 1
        # --teams binds the key: listed with its teams, refused on another team's queue.
        assert main(["keys", "create", "--role", "care", "--name", "cli-care", "--teams", "customer_care"]) == 0
        bound = capsys.readouterr().out.strip()
        assert main(["keys", "list"]) == 0
        [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(bound.split("_")[1])]
        assert row.split()[-1] == "customer_care"
        with TestClient(create_app(settings)) as c:
            assert c.get("/v1/triage/customer_care/queue", headers=bearer(bound)).status_code == 200
            refused = c.get("/v1/triage/investor_relations/queue", headers=bearer(bound))
            assert refused.status_code == 403 and "serves the teams customer_care only" in refused.json()["error"]
        assert main(["keys", "create", "--role", "care", "--name", "cli-bad", "--teams", "bad team!"]) == 2
    finally:
        get_settings.cache_clear()


def test_admins_create_list_and_revoke_keys_over_the_api_with_their_teams(client, api_keys):
    admin = bearer(api_keys["admin"])
    made = client.post("/v1/keys", headers=admin, json={"name": "api-care", "role": "care",
                                                         "teams": ["customer_care", "sales"]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["teams"] == ["customer_care", "sales"] and body["role"] == "care" and body["key"].startswith("esk_")
    assert "triage:write" in body["scopes"] and "secret_sha256" not in body
    key = bearer(body["key"])
    assert client.get("/v1/triage/sales/queue", headers=key).status_code == 200
    assert client.get("/v1/triage/investor_relations/queue", headers=key).status_code == 403
    config = client.get("/dashboard/config", headers=key).json()["caller"]
    assert config["role"] == "care" and config["teams"] == ["customer_care", "sales"] and config["views"] == ["care"]
    listed = client.get("/v1/keys", headers=admin).json()["keys"]
    [row] = [k for k in listed if k["key_id"] == body["key_id"]]
    assert row["teams"] == ["customer_care", "sales"] and "key" not in row
    for bad in ({"name": "x", "role": "nope"}, {"name": "x", "role": "care", "teams": ["no spaces"]}, {"role": "care"}):
        assert client.post("/v1/keys", headers=admin, json=bad).status_code == 422, bad
    assert client.post("/v1/keys", headers=key, json={"name": "x", "role": "admin"}).status_code == 403
    revoked = client.post(f"/v1/keys/{body['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/v1/triage/sales/queue", headers=key).status_code == 401  # at once on this process
    assert client.post("/v1/keys/0000000000000000/revoke", headers=admin).status_code == 404
    views = {role: client.get("/dashboard/config", headers=bearer(api_keys[role])).json()["caller"]["views"]
             for role in ("admin", "comms", "crisis", "ir", "data")}
    assert views == {"admin": ["comms", "crisis", "care", "ir", "data", "admin"], "comms": ["comms"],
                     "crisis": ["crisis", "comms"], "ir": ["ir"], "data": ["data", "comms"]}
