"""Triage over the real Elasticsearch: a team's queue, actions that persist, conflicts, KPIs by hand."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.triage_store import act, ensure_triage_layout
from pipeline.schema import Author, EnrichedMention, Sentiment, Spam
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client
from pipeline.store.triage_state import Action

pytestmark = pytest.mark.services

NOW = datetime.now(timezone.utc).replace(microsecond=0)
NEUTRAL = Sentiment(label="negative", score=0.8, negative=0.8, neutral=0.1, positive=0.1)


def mention(mid: str, team: str, hours_ago: float, priority: float = 10.0, spam: float | None = None,
            duplicate_of: str | None = None) -> EnrichedMention:
    created = NOW - timedelta(hours=hours_ago)
    return EnrichedMention(
        id=f"triagetest:{mid}", source="triagetest", text=f"post {mid}: my bag is lost", lang="en",
        url=f"https://example.org/{mid}", author=Author(handle=f"user_{mid}", followers=100),
        created_at=created, ingested_at=created, sentiment=NEUTRAL, purposes=["customer_care"], teams=[team],
        priority=priority, brands=["united"], spam=Spam(score=spam) if spam is not None else None,
        duplicate_of=duplicate_of)


QUEUE = [  # team tqueue: (id, hours ago, priority, spam, duplicate_of)
    mention("q1", "tqueue", 5, 90), mention("q2", "tqueue", 3, 50), mention("q3", "tqueue", 4, 50),
    mention("q4", "tqueue", 1, 10), mention("q5", "tqueue", 2, 95, spam=0.9),
    mention("q6", "tqueue", 2, 80, duplicate_of="triagetest:q1"), mention("q7", "tqueue", 6, 70),
    mention("q8", "tother", 2, 60),
]
# Handover: h1..h3 routed to thand (h3 routed there 80 h ago); nothing routed to tpr.
HANDOVER = [mention("h1", "thand", 3, 40), mention("h2", "thand", 2, 30), mention("h3", "thand", 80, 20)]
# team tkpi: (id, hours ago, seconds to first response or None); k7 is resolved without a response.
KPI_CASES = [("k1", 100, 60), ("k2", 90, 300), ("k3", 80, 1200), ("k4", 80, 7200), ("k5", 100, 80 * 3600),
             ("k6", 74, None), ("k7", 74, None), ("k8", 2, 600), ("k9", 0.5, None), ("k12", 10, None)]
KPI = [mention(mid, "tkpi", hours) for mid, hours, _ in KPI_CASES] + [
    mention("k10", "tkpi", 50, spam=0.9), mention("k11", "tkpi", 50, duplicate_of="triagetest:k1")]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def care(settings, api_keys):
    async def load():
        es = make_es_client(settings)
        try:
            await ensure_mentions_layout(es, settings)
            assert await MentionSink(es, settings).write([(m.to_document(), m.created_at) for m in QUEUE + KPI + HANDOVER]) == []
            await es.indices.refresh(index=settings.mentions_alias)
        finally:
            await es.close()

    asyncio.run(load())
    with TestClient(create_app(settings), headers=bearer(api_keys["care"])) as c:
        yield c


def queue_ids(client, team: str = "tqueue", **params) -> list[str]:
    r = client.get(f"/v1/triage/{team}/queue", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return [item["mention"]["id"].split(":")[1] for item in r.json()["items"]]


def test_queue_is_the_teams_routed_mentions_by_priority_then_age_without_noise(care):
    assert queue_ids(care) == ["q1", "q7", "q3", "q2", "q4"]
    assert queue_ids(care, include_spam="true") == ["q5", "q1", "q7", "q3", "q2", "q4"]
    assert queue_ids(care, include_duplicates="true") == ["q1", "q6", "q7", "q3", "q2", "q4"]
    item = care.get("/v1/triage/tqueue/queue", params={"limit": 1}).json()["items"][0]
    assert item["mention"] == {
        "id": "triagetest:q1", "source": "triagetest", "url": "https://example.org/q1", "text": "post q1: my bag is lost",
        "author": {"handle": "user_q1", "display_name": None, "followers": 100, "verified": False}, "lang": "en",
        "created_at": (NOW - timedelta(hours=5)).isoformat().replace("+00:00", "Z"), "sentiment": NEUTRAL.model_dump(),
        "purposes": ["customer_care"], "priority": 90.0, "teams": ["tqueue"], "brands": ["united"]}
    assert item["triage"]["status"] == "new" and item["triage"]["version"] == 0 and item["triage"]["history"] == []


def test_queue_pages_with_a_cursor_visit_each_item_once(care):
    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = care.get("/v1/triage/tqueue/queue", params=params).json()
        seen += [item["mention"]["id"].split(":")[1] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["q1", "q7", "q3", "q2", "q4"]


def test_actions_change_the_queue_and_survive_a_restart(care, settings, api_keys):
    r = care.post("/v1/triage/mentions/triagetest:q3/assign", json={"assignee": "ana", "note": "on it"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] and body["triage"]["status"] == "assigned" and body["triage"]["version"] == 1
    assert body["triage"]["history"][0]["by"] == "test-care" and body["triage"]["history"][0]["note"] == "on it"
    again = care.post("/v1/triage/mentions/triagetest:q3/assign", json={"assignee": "ana"})
    assert again.status_code == 200 and not again.json()["changed"] and again.json()["triage"]["version"] == 1
    responded = care.post("/v1/triage/mentions/triagetest:q7/respond", json={"note": "DM sent"})
    assert responded.json()["triage"]["status"] == "responded"
    assert responded.json()["triage"]["first_response_s"] >= 6 * 3600
    assert care.post("/v1/triage/mentions/triagetest:q2/resolve").json()["triage"]["status"] == "resolved"

    with TestClient(create_app(settings), headers=bearer(api_keys["care"])) as fresh:  # a new process
        assert queue_ids(fresh) == ["q1", "q3", "q4"]
        assert queue_ids(fresh, status="assigned") == ["q3"]
        assert queue_ids(fresh, status="new") == ["q1", "q4"]
        [q3] = [i for i in fresh.get("/v1/triage/tqueue/queue").json()["items"] if i["mention"]["id"].endswith("q3")]
        assert q3["triage"]["assignee"] == "ana" and q3["triage"]["version"] == 1
        first = fresh.post("/v1/triage/mentions/triagetest:q7/respond", json={}).json()
        assert not first["changed"] and first["triage"]["first_response_s"] == responded.json()["triage"]["first_response_s"]


def test_conflicts_unknown_mentions_and_bad_requests(care):
    stale = care.post("/v1/triage/mentions/triagetest:q4/assign", json={"assignee": "bo", "version": 3})
    assert stale.status_code == 409 and "version" in stale.json()["error"]
    ok = care.post("/v1/triage/mentions/triagetest:q4/assign", json={"assignee": "bo", "version": 0})
    assert ok.status_code == 200 and ok.json()["triage"]["version"] == 1
    assert care.post("/v1/triage/mentions/triagetest:q4/resolve", json={"note": "spam really"}).status_code == 200
    refused = care.post("/v1/triage/mentions/triagetest:q4/respond", json={})
    assert refused.status_code == 409 and "resolved" in refused.json()["error"]
    assert care.post("/v1/triage/mentions/triagetest:q4/resolve").json()["changed"] is False
    missing = care.post("/v1/triage/mentions/triagetest:nope/assign", json={"assignee": "bo"})
    assert missing.status_code == 404
    for path, body in (("q1/assign", {}), ("q1/assign", {"assignee": ""}), ("q1/assign", {"assignee": "a", "x": 1}),
                       ("q1/respond", {"responded_at": (NOW - timedelta(days=30)).isoformat()}),
                       ("q1/respond", {"responded_at": "yesterday"})):
        r = care.post(f"/v1/triage/mentions/triagetest:{path}", json=body)
        assert r.status_code == 422, (path, body, r.text)
    assert care.get("/v1/triage/tqueue/queue", params={"status": "responded"}).status_code == 422
    assert care.get("/v1/triage/tqueue/queue", params={"cursor": "garbage!"}).status_code == 400
    assert care.get("/v1/triage/Bad Team!/queue").status_code == 422


def test_concurrent_writers_all_land_through_the_conditional_write(care, settings):
    """Four writers at once: each loses at most three races, within ``CONFLICT_RETRIES`` (5)."""
    async def race():
        es = make_es_client(settings)
        try:
            await ensure_triage_layout(es, settings)
            now = datetime.now(timezone.utc)
            results = await asyncio.gather(*(act(es, settings, "triagetest:q1", Action(
                "assign", f"writer{i}", now, note=f"note {i}", assignee=f"agent{i}")) for i in range(4)))
            stored = await es.get(index=settings.triage_index, id="triagetest:q1")
            return results, stored["_source"]
        finally:
            await es.close()

    results, stored = asyncio.run(race())
    assert all(changed for _, changed in results)
    assert stored["version"] == 4 and sorted(h["by"] for h in stored["history"]) == [f"writer{i}" for i in range(4)]


def test_triage_needs_the_triage_scopes(care, api_keys):
    for role, expected in (("care", 200), ("admin", 200), ("comms", 403), ("data", 403)):
        headers = bearer(api_keys[role])
        assert care.get("/v1/triage/tqueue/queue", headers=headers).status_code == expected, role
        assert care.get("/v1/triage/tkpi/kpis", headers=headers).status_code == expected, role
        r = care.post("/v1/triage/mentions/triagetest:q8/assign", headers=headers, json={"assignee": role})
        assert r.status_code == expected, role
    assert care.get("/v1/triage/tqueue/queue", headers={"Authorization": ""}).status_code == 401


@pytest.fixture(scope="module")
def kpi_state(care, settings):
    for mid, hours, response_s in KPI_CASES:
        if response_s is not None:
            at = NOW - timedelta(hours=hours) + timedelta(seconds=response_s)
            r = care.post(f"/v1/triage/mentions/triagetest:{mid}/respond", json={"responded_at": at.isoformat()})
            assert r.status_code == 200, r.text
    assert care.post("/v1/triage/mentions/triagetest:k7/resolve").status_code == 200
    assert care.post("/v1/triage/mentions/triagetest:k9/assign", json={"assignee": "ana"}).status_code == 200
    assert care.post("/v1/triage/mentions/triagetest:k10/respond", json={}).status_code == 200  # spam: not counted

    async def refresh():
        es = make_es_client(settings)
        try:
            await es.indices.refresh(index=settings.triage_index)
        finally:
            await es.close()

    asyncio.run(refresh())


def test_kpis_match_the_numbers_worked_by_hand(care, kpi_state):
    r = care.get("/v1/triage/tkpi/kpis", params={"from": (NOW - timedelta(hours=200)).isoformat()})
    assert r.status_code == 200, r.text
    k = r.json()
    # First responses, sorted: 60, 300, 600 (k8), 1200, 7200, 288000 (k5: after 80 h).
    # Median: rank 2.5 -> (600 + 1200) / 2; p90: rank 4.5 -> 7200 + 0.5 * (288000 - 7200).
    assert k["responded"] == 6
    assert k["first_response_median_s"] == pytest.approx(900.0)
    assert k["first_response_p90_s"] == pytest.approx(147_600.0)
    assert k["routed"] == 10  # k1..k9, k12; the spam k10 and the copy k11 are left out
    assert k["backlog"] == 3  # k6, k9 (assigned is still awaiting), k12
    # Older than the 1 h SLA: all but k9 (9). Handled within it: k1, k2, k3, k8 -> 5 breaches:
    # k4 (2 h), k5 (80 h), k6 (never), k7 (resolved after 74 h, no reply), k12 (never).
    assert (k["sla_s"], k["sla_due"], k["sla_breaches"]) == (3600, 9, 5)
    # Older than 72 h: k1..k7 (7); answered within 72 h: k1..k4 -> k5, k6, k7 unanswered.
    assert (k["older_than_72h"], k["unanswered_72h"]) == (7, 3)
    assert k["unanswered_72h_share"] == pytest.approx(3 / 7, abs=1e-4)
    assert set(k) >= {"team", "from", "to", "as_of"}


def test_kpis_take_a_per_team_sla_and_a_range(settings, api_keys, kpi_state):
    tuned = settings.model_copy(update={"triage_sla_by_team": {"tkpi": 100_000}})
    with TestClient(create_app(tuned), headers=bearer(api_keys["care"])) as c:
        k = c.get("/v1/triage/tkpi/kpis", params={"from": (NOW - timedelta(hours=200)).isoformat()}).json()
        # Due: created > 27.8 h ago (k1..k7); within 100000 s: k1..k4 -> k5, k6, k7 breach.
        assert (k["sla_s"], k["sla_due"], k["sla_breaches"]) == (100_000, 7, 3)
        recent = c.get("/v1/triage/tkpi/kpis", params={"from": (NOW - timedelta(hours=24)).isoformat()}).json()
        assert (recent["routed"], recent["responded"], recent["backlog"]) == (3, 1, 2)  # k8, k9, k12
        assert recent["first_response_median_s"] == pytest.approx(600.0) and recent["older_than_72h"] == 0
        assert recent["unanswered_72h_share"] is None
        bad = c.get("/v1/triage/tkpi/kpis", params={"from": NOW.isoformat(), "to": (NOW - timedelta(hours=1)).isoformat()})
        assert bad.status_code == 400


def test_erasure_removes_the_triage_state_too(care, settings):
    from pipeline.store.erasure import ErasureTarget, erase

    assert care.post("/v1/triage/mentions/triagetest:q8/assign", json={"assignee": "ana",
                                                                        "note": "author says: call me on 555"}).status_code == 200

    async def erase_q8():
        es = make_es_client(settings)
        try:
            report = await erase(es, settings, ErasureTarget(mention_id="triagetest:q8"), datetime.now(timezone.utc))
            found = await es.options(ignore_status=404).get(index=settings.triage_index, id="triagetest:q8")
            return report, found.get("found")
        finally:
            await es.close()

    report, still_there = asyncio.run(erase_q8())
    assert report.mentions_deleted == 1 and report.triage_deleted == 1 and not still_there
    assert care.post("/v1/triage/mentions/triagetest:q8/assign", json={"assignee": "ana"}).status_code == 404


def test_each_action_is_audited_with_what_it_changed(care, api_keys):
    assert care.post("/v1/triage/mentions/triagetest:k12/assign", json={"assignee": "audited"}).status_code == 200
    key_id = api_keys["care"].split("_")[1]
    deadline = time.monotonic() + 20
    while True:
        entries = care.get("/v1/audit", params={"key_id": key_id, "method": "POST", "size": 100},
                           headers=bearer(api_keys["admin"])).json()["entries"]
        mine = [e for e in entries if (e.get("action") or {}).get("assignee") == "audited"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    [entry] = mine
    assert entry["route"] == "/v1/triage/mentions/{mention_id}/assign" and entry["key_name"] == "test-care"
    assert entry["action"]["mention_id"] == "triagetest:k12" and entry["action"]["triage_action"] == "assign"
    assert entry["action"]["status"] == "assigned" and entry["action"]["changed"] is True


def bound_key(settings, role: str, teams: list[str], name: str) -> str:
    """A key of ``role`` bound to ``teams`` (as ``earshot keys create --teams``)."""
    from api.auth.keys import create_key

    async def create() -> str:
        es = make_es_client(settings)
        try:
            _, key = await create_key(es, settings, role, name, datetime.now(timezone.utc), teams=teams)
            return key.text
        finally:
            await es.close()

    return asyncio.run(create())


def test_a_team_bound_key_reads_and_acts_on_its_teams_queues_only(care, settings, api_keys):
    tqueue = bearer(bound_key(settings, "care", ["tqueue"], "care-tqueue"))
    assert care.get("/v1/triage/tqueue/queue", headers=tqueue).status_code == 200
    assert care.get("/v1/triage/tqueue/kpis", headers=tqueue).status_code == 200
    for path in ("/v1/triage/tother/queue", "/v1/triage/investor_relations/queue", "/v1/triage/tother/kpis"):
        refused = care.get(path, headers=tqueue)
        assert refused.status_code == 403, path
        assert "serves the teams tqueue only" in refused.json()["error"], refused.text
    # q8 is routed to tother: a tqueue key may not act on it, an unbound care key and admin may.
    theirs = care.post("/v1/triage/mentions/triagetest:q3/assign", headers=tqueue, json={"assignee": "x", "note": "t"})
    assert theirs.status_code == 200, theirs.text
    other = care.post("/v1/triage/mentions/triagetest:h1/assign", headers=tqueue, json={"assignee": "x"})
    assert other.status_code == 403 and "thand" in other.json()["error"]
    assert care.get("/v1/triage/thand/queue", headers=bearer(api_keys["admin"])).status_code == 200
    assert care.get("/v1/triage/thand/queue").status_code == 200  # the unbound care key: every team
    # Bound admin keys still see all; a malformed team id is refused at creation.
    admin_bound = bearer(bound_key(settings, "admin", ["tqueue"], "admin-bound"))
    assert care.get("/v1/triage/thand/queue", headers=admin_bound).status_code == 200
    with pytest.raises(ValueError):
        bound_key(settings, "care", ["bad team!"], "bad")


def test_a_handover_moves_the_mention_to_the_other_teams_queue_and_keeps_it_tracked(care, settings, api_keys):
    hand = bearer(bound_key(settings, "care", ["thand"], "care-thand"))
    pr = bearer(bound_key(settings, "comms", [], "unused"))  # comms has no triage scope
    tpr = bearer(bound_key(settings, "care", ["tpr"], "care-tpr"))
    before = care.get("/v1/triage/thand/kpis", headers=hand, params={"from": (NOW - timedelta(hours=200)).isoformat()}).json()
    assert care.post("/v1/triage/mentions/triagetest:h1/assign", headers=hand, json={"assignee": "ana"}).status_code == 200
    for body in ({"team": "tpr"}, {"team": "tpr", "reason": ""}, {"team": "bad team", "reason": "x"}):
        assert care.post("/v1/triage/mentions/triagetest:h1/handover", headers=hand, json=body).status_code == 422, body
    r = care.post("/v1/triage/mentions/triagetest:h1/handover", headers=hand,
                  json={"team": "tpr", "reason": "a journalist asking for comment"})
    assert r.status_code == 200, r.text
    state = r.json()["triage"]
    assert state["teams"] == ["tpr"] and state["routed_teams"] == ["thand"] and state["handed_over"]
    assert state["status"] == "new" and state["assignee"] is None
    last = state["history"][-1]
    assert (last["action"], last["team"], last["from_teams"], last["reason"]) == (
        "handover", "tpr", ["thand"], "a journalist asking for comment")
    again = care.post("/v1/triage/mentions/triagetest:h1/handover", headers=tpr, json={"team": "tpr", "reason": "x"})
    assert again.status_code == 200 and again.json()["changed"] is False
    # Gone from thand's queue, in tpr's; the thand key may no longer act on it, the tpr key may.
    assert queue_ids(care, "thand") == ["h2", "h3"]
    assert queue_ids(care, "tpr") == ["h1"]
    assert care.post("/v1/triage/mentions/triagetest:h1/assign", headers=hand, json={"assignee": "x"}).status_code == 403
    assert care.post("/v1/triage/mentions/triagetest:h1/handover", headers=pr, json={"team": "thand", "reason": "x"}).status_code == 403
    assert care.post("/v1/triage/mentions/triagetest:h1/respond", headers=tpr,
                     json={"reply_url": "https://example.org/reply/1"}).status_code == 200
    # A later action refreshes the mention's facts but keeps the handover's team.
    resolved = care.post("/v1/triage/mentions/triagetest:h1/resolve", headers=tpr, json={"note": "answered"}).json()
    assert resolved["triage"]["teams"] == ["tpr"] and resolved["triage"]["status"] == "resolved"
    assert resolved["triage"]["history"][-2]["reply_url"] == "https://example.org/reply/1"
    # h3 (80 h old, never answered) goes to tpr as well: the KPIs follow the mentions.
    assert care.post("/v1/triage/mentions/triagetest:h3/handover", headers=hand, json={"team": "tpr", "reason": "PR"}).status_code == 200

    async def refresh():
        es = make_es_client(settings)
        try:
            await es.indices.refresh(index=settings.triage_index)
        finally:
            await es.close()

    asyncio.run(refresh())
    window = {"from": (NOW - timedelta(hours=200)).isoformat()}
    after = care.get("/v1/triage/thand/kpis", headers=hand, params=window).json()
    taken = care.get("/v1/triage/tpr/kpis", headers=tpr, params=window).json()
    assert (before["routed"], before["backlog"], before["older_than_72h"]) == (3, 3, 1)
    assert (after["routed"], after["backlog"], after["older_than_72h"], after["unanswered_72h"]) == (1, 1, 0, 0)
    assert (taken["routed"], taken["responded"], taken["backlog"], taken["older_than_72h"], taken["unanswered_72h"]) == (
        2, 1, 1, 1, 1)


def test_a_handover_is_audited_with_its_team_and_reason(care, api_keys):
    assert care.post("/v1/triage/mentions/triagetest:h2/handover",
                     json={"team": "tsales", "reason": "asks for a group fare"}).status_code == 200
    key_id = api_keys["care"].split("_")[1]
    deadline = time.monotonic() + 20
    while True:
        entries = care.get("/v1/audit", params={"key_id": key_id, "method": "POST", "size": 100},
                           headers=bearer(api_keys["admin"])).json()["entries"]
        mine = [e for e in entries if (e.get("action") or {}).get("triage_action") == "handover"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    [entry] = mine
    assert entry["action"]["team"] == "tsales" and entry["action"]["reason"] == "asks for a group fare"
    assert entry["action"]["mention_id"] == "triagetest:h2"
