"""Erasure and retention against the real Elasticsearch (and Kafka for the deletion notices)."""

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaConsumer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.main import create_app
from pipeline.alerts.sink import AlertSink, ensure_alerts_layout
from pipeline.alerts.records import Alert, AlertWindow, alert_id
from pipeline.store.erasure import AuthorRef, ErasureTarget, erase, kafka_publisher
from pipeline.store.retention import apply_retention
from pipeline.schema import Author, EnrichedMention, parse_mention
from pipeline.settings import get_settings
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client

pytestmark = pytest.mark.services


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def mention(mention_id: str, handle: str, created: datetime, source: str = "x"):
    """A document exactly as the worker indexes it, with its created_at."""
    m = EnrichedMention(id=mention_id, source=source, text=f"{handle} says the flight is late again ({mention_id})",
                        author=Author(handle=handle, display_name=handle.title()), created_at=created,
                        ingested_at=created, brands=["united"])
    return m.to_document(), created


def alert_with_examples(examples: list[tuple[str, str, datetime]], started: datetime) -> dict:
    return Alert(id=alert_id("united", "volume", started), brand="united", signal="volume", severity="high",
                 status="open", started_at=started, updated_at=started + timedelta(minutes=5),
                 window=AlertWindow(start=started, end=started + timedelta(minutes=5), bucket_s=300),
                 observed=40.0, expected=5.0, score=6.0, peak_score=6.0,
                 mentions=[{"id": i, "text": f"text of {i}", "created_at": at, "author": handle, "engagement": 3}
                           for i, handle, at in examples]).to_document()


@pytest.fixture()
def scoped(settings):
    """Settings with an index prefix of this test's own (cleaned up with the session's namespace)."""
    return settings.model_copy(update={"index_prefix": f"{settings.index_prefix}-er{uuid.uuid4().hex[:6]}"})


def run(coro):
    return asyncio.run(coro)


async def seed(settings, mentions, alerts=()):
    es = make_es_client(settings)
    try:
        await ensure_mentions_layout(es, settings)
        await ensure_alerts_layout(es, settings)
        assert await MentionSink(es, settings).write(list(mentions)) == []
        if alerts:
            await AlertSink(es, settings).write(list(alerts))
        await es.indices.refresh(index=f"{settings.mentions_index_pattern},{settings.alerts_index}")
    finally:
        await es.close()


async def stored_ids(settings) -> dict[str, str]:
    """id -> concrete index of every stored mention."""
    es = make_es_client(settings)
    try:
        await es.indices.refresh(index=settings.mentions_index_pattern)
        response = await es.search(index=settings.mentions_alias, size=1000, query={"match_all": {}})
        return {hit["_id"]: hit["_index"] for hit in response["hits"]["hits"]}
    finally:
        await es.close()


async def alert_examples(settings, alert) -> list[str]:
    es = make_es_client(settings)
    try:
        return [m["id"] for m in (await es.get(index=settings.alerts_index, id=alert["id"]))["_source"]["mentions"]]
    finally:
        await es.close()


ALICE = [mention("x:a1", "alice", utc(2026, 1, 5)), mention("x:a2", "alice", utc(2026, 2, 5)),
         mention("x:a3", "Alice", utc(2026, 3, 5)), mention("x:a4", "@alice", utc(2026, 3, 6))]
BOB = [mention("x:b1", "bob", utc(2026, 1, 6)), mention("x:b2", "bob", utc(2026, 2, 6)),
       mention("x:b3", "bob", utc(2026, 3, 7))]
OTHER_ALICE = [mention("reddit:a9", "alice", utc(2026, 2, 9), source="reddit")]  # same handle, another platform


def test_erasing_an_author_removes_them_from_every_monthly_index_and_every_alert_and_nothing_else(scoped):
    alert = alert_with_examples([("x:a1", "alice", utc(2026, 1, 5)), ("x:b1", "bob", utc(2026, 1, 6)),
                                 ("x:a0", "alice", utc(2026, 1, 1))], utc(2026, 1, 5))  # x:a0: no longer indexed
    bobs_alert = alert_with_examples([("x:b2", "bob", utc(2026, 2, 6))], utc(2026, 2, 6))
    run(seed(scoped, ALICE + BOB + OTHER_ALICE, [alert, bobs_alert]))
    before = run(stored_ids(scoped))
    assert len(set(before.values())) == 3  # three monthly indices

    sent: list[tuple[str, bytes, bytes]] = []

    async def publish(records):
        sent.extend(records)

    async def go():
        es = make_es_client(scoped)
        try:
            return await erase(es, scoped, ErasureTarget(author=AuthorRef.parse("x:alice")), utc(2026, 4, 1), publish)
        finally:
            await es.close()

    report = run(go())
    assert report.counts() == {"mentions_deleted": 4, "alerts_changed": 1, "alert_examples_removed": 2,
                               "deletion_notices": 4}
    assert set(run(stored_ids(scoped))) == {"x:b1", "x:b2", "x:b3", "reddit:a9"}
    assert run(alert_examples(scoped, alert)) == ["x:b1"]
    assert run(alert_examples(scoped, bobs_alert)) == ["x:b2"]
    # Each notice is the connectors' deletion record, keyed by the id, on mentions.raw.
    assert {(topic, key.decode()) for topic, key, _ in sent} == {(scoped.topic_raw, i) for i in ("x:a1", "x:a2", "x:a3", "x:a4")}
    for _, key, value in sent:
        notice = parse_mention(value, now=utc(2026, 4, 1))
        assert notice.id == key.decode() and notice.source == "x" and notice.reason == "erasure"

    again = run(go())  # idempotent: nothing left to erase
    assert again.mentions_deleted == 0 and again.alerts_changed == 0


def _read_raw(settings, keys: set[str]) -> list[dict]:
    async def go():
        consumer = AIOKafkaConsumer(settings.topic_raw, bootstrap_servers=settings.kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            found: list[dict] = []
            deadline = asyncio.get_running_loop().time() + 20
            while asyncio.get_running_loop().time() < deadline and len(found) < len(keys):
                batches = await consumer.getmany(timeout_ms=1000)
                found += [json.loads(r.value) for recs in batches.values() for r in recs
                          if r.key and r.key.decode() in keys]
            return found
        finally:
            await consumer.stop()

    return run(go())


def test_erase_by_mention_id_from_the_cli_sends_a_deletion_notice_through_kafka(scoped, monkeypatch, capsys):
    from pipeline.worker.topics import ensure_topics
    from cli.main import main

    ensure_topics(scoped)
    run(seed(scoped, BOB))
    monkeypatch.setenv("EARSHOT_INDEX_PREFIX", scoped.index_prefix)
    get_settings.cache_clear()
    try:
        assert main(["erase", "--mention", "x:b2"]) == 0
    finally:
        get_settings.cache_clear()
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["mentions_deleted"] == 1 and counts["deletion_notices"] == 1
    assert set(run(stored_ids(scoped))) == {"x:b1", "x:b3"}
    notices = [r for r in _read_raw(scoped, {"x:b2"}) if r.get("op") == "delete"]
    assert notices and notices[0]["id"] == "x:b2" and notices[0]["source"] == "x"


def test_the_api_routes_return_counts_404_for_an_unknown_id_and_need_the_admin_token(scoped):
    from pipeline.worker.topics import ensure_topics

    ensure_topics(scoped)
    alert = alert_with_examples([("x:b1", "bob", utc(2026, 1, 6))], utc(2026, 1, 6))
    run(seed(scoped, ALICE + BOB, [alert]))
    admin = {"Authorization": "Bearer admin-token-123"}
    # The admin credential: the bootstrap admin key (API keys), or the older single admin token.
    field = "bootstrap_admin_key" if "bootstrap_admin_key" in type(scoped).model_fields else "admin_token"
    with TestClient(create_app(scoped.model_copy(update={field: SecretStr("admin-token-123") if field ==
                                                         "bootstrap_admin_key" else "admin-token-123"}))) as client:
        assert client.delete("/v1/mentions/x:a1").status_code == 401
        response = client.delete("/v1/mentions/x:a1", headers=admin)
        assert response.status_code == 200, response.text
        assert response.json()["mentions_deleted"] == 1
        missing = client.delete("/v1/mentions/x:nope", headers=admin)
        assert missing.status_code == 404 and "x:nope" in missing.json()["error"]

        response = client.post("/v1/erasure", json={"author": {"platform": "x", "handle": "@BOB"}}, headers=admin)
        assert response.status_code == 200, response.text
        assert response.json() == {"target": "author x:@BOB", "mentions_deleted": 3, "alerts_changed": 1,
                                   "alert_examples_removed": 1, "deletion_notices": 3}
        response = client.post("/v1/erasure", json={"mention_id": "x:a2"}, headers=admin)
        assert response.status_code == 200 and response.json()["mentions_deleted"] == 1
        both = client.post("/v1/erasure", json={"mention_id": "x:a3", "author": {"platform": "x", "handle": "a"}},
                           headers=admin)
        assert both.status_code == 422
        assert client.post("/v1/erasure", json={}, headers=admin).status_code == 422
    assert set(run(stored_ids(scoped))) == {"x:a3", "x:a4"}
    assert run(alert_examples(scoped, alert)) == []


def test_retention_drops_only_old_monthly_indices_and_the_alias_serves_the_rest(scoped):
    old = [mention("x:old1", "carol", utc(2025, 1, 3)), mention("x:old2", "carol", utc(2025, 1, 31, 23, 59))]
    kept = [mention("x:feb", "carol", utc(2025, 2, 1)), mention("x:mar", "carol", utc(2025, 3, 14))]
    # Alert examples are stripped one by one once older than the cutoff (stricter than whole months).
    alert = alert_with_examples([("x:old1", "carol", utc(2025, 1, 3)), ("x:feb", "carol", utc(2025, 2, 1)),
                                 ("x:feb20", "carol", utc(2025, 2, 20))], utc(2025, 2, 1))
    run(seed(scoped, old + kept, [alert]))
    now = utc(2025, 3, 15)  # 30 days back is 2025-02-13: January is past retention, February is not

    async def go(dry_run):
        es = make_es_client(scoped)
        try:
            return await apply_retention(es, scoped, now, retention_days=30, dry_run=dry_run)
        finally:
            await es.close()

    assert run(go(True)).dropped == [f"{scoped.index_prefix}-mentions-2025.01"]
    assert len(run(stored_ids(scoped))) == 4  # a dry run drops nothing
    report = run(go(False))
    assert report.dropped == [f"{scoped.index_prefix}-mentions-2025.01"] and report.alerts_stripped == 1
    assert run(stored_ids(scoped)) == {"x:feb": f"{scoped.index_prefix}-mentions-2025.02",
                                       "x:mar": f"{scoped.index_prefix}-mentions-2025.03"}
    assert run(alert_examples(scoped, alert)) == ["x:feb20"]
    assert run(go(False)).dropped == []
