"""Push ingest end to end: signed ``POST /v1/ingest`` -> Kafka -> worker -> Elasticsearch, bad
items to the dead-letter topic with their reason, and a deletion notice removing a mention."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from pydantic import SecretStr

from api.main import create_app
from pipeline.alerts.webhooks import SIGNATURE_HEADER, sign
from tests.e2e.test_pipeline_e2e import ES
from tests.servers import serve

pytestmark = [pytest.mark.services, pytest.mark.e2e]
SECRET = "ingest-secret-for-tests-0123456789"


@pytest.fixture(scope="module")
def api(settings, worker):
    with serve(create_app(settings.model_copy(update={"ingest_secret": SecretStr(SECRET)}))) as url:
        yield url


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, int(time.time()), body), "Content-Type": "application/json"}


def post(api: str, payload, secret: str | None = SECRET) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = signed(body, secret) if secret else {"Content-Type": "application/json"}
    return httpx.post(f"{api}/v1/ingest", content=body, headers=headers, timeout=30)


def stored(settings, mention_id: str) -> dict | None:
    httpx.post(f"{ES}/{settings.mentions_alias}/_refresh", timeout=30)
    response = httpx.post(f"{ES}/{settings.mentions_alias}/_search", timeout=30,
                          json={"query": {"ids": {"values": [mention_id]}}})
    if response.status_code == 404:  # no mention indexed yet in this test session
        return None
    hits = response.json()["hits"]["hits"]
    return hits[0]["_source"] if hits else None


def wait_until(check, what: str, worker, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert worker.alive(), f"worker died:\n{worker.tail()}"
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen in {timeout_s} s; worker log:\n{worker.tail()}")


def test_unsigned_badly_signed_oversized_and_malformed_requests_are_refused(api):
    one = {"mentions": [{"id": "1", "source": "crm", "text": "hi", "created_at": "2026-11-24T09:00:00Z"}]}
    assert post(api, one, secret=None).status_code == 401
    assert post(api, one, secret="another-secret-of-some-length").status_code == 401
    assert post(api, {"mentions": one["mentions"] * 1001}).status_code == 413
    bad = post(api, b"{not json")
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    assert post(api, {"items": []}).status_code == 422


def test_pushed_mentions_are_indexed_bad_ones_dead_lettered_and_a_deletion_removes_one(api, settings, worker):
    run = uuid.uuid4().hex[:8]
    now = datetime.now(timezone.utc).isoformat()
    payload = {"mentions": [
        {"id": f"{run}-a", "source": "crm", "text": "My @united bag is lost, again", "created_at": now,
         "author": {"handle": "jo", "followers": 12}, "vendor_field": "kept"},
        {"id": f"{run}-b", "source": "crm", "text": "", "created_at": now},
        {"id": f"crm:{run}-c", "source": "crm", "text": "Great service from @united today", "created_at": now},
        "not an object",
    ]}
    response = post(api, payload)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    results = body["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted", "rejected"]
    assert results[0]["id"] == f"crm:{run}-a" and results[2]["id"] == f"crm:{run}-c"  # namespaced once
    assert "text" in results[1]["reason"] and "object" in results[3]["reason"]

    first = wait_until(lambda: stored(settings, f"crm:{run}-a"), "the pushed mention", worker)
    assert first["brands"] == ["united"] and first["raw"]["vendor_field"] == "kept"
    assert first["author"]["followers"] == 12 and first["sentiment"]["label"] == "negative"
    wait_until(lambda: stored(settings, f"crm:{run}-c"), "the second pushed mention", worker)

    letters = dead_letters(settings, lambda letter: letter.get("mention_id") == f"crm:{run}-b")
    assert letters and letters[0]["stage"] == "ingest" and "text" in letters[0]["reason"]

    gone = post(api, {"mentions": [{"op": "delete", "id": f"crm:{run}-a", "source": "crm",
                                    "requested_at": datetime.now(timezone.utc).isoformat()}]})
    assert gone.status_code == 202 and gone.json()["accepted"] == 1
    wait_until(lambda: stored(settings, f"crm:{run}-a") is None, "the deletion", worker)
    assert stored(settings, f"crm:{run}-c") is not None  # only the deleted one went


def dead_letters(settings, ours, timeout_s: float = 30) -> list[dict]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topic_dlq, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=2000)
    found: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not found and time.monotonic() < deadline:
            found += [letter for letter in (json.loads(m.value) for m in consumer) if ours(letter)]
    finally:
        consumer.close()
    return found


def test_seeded_and_new_listening_queries_tag_the_stream_and_changes_apply_without_restart(api, settings, worker,
                                                                                        admin_headers):
    listed = httpx.get(f"{api}/v1/queries", timeout=30, headers=admin_headers).json()["queries"]
    seeded = {q["id"]: q for q in listed if q["seeded"]}
    assert {"united", "american"} <= set(seeded) and seeded["american"]["kind"] == "competitor"
    assert "@united" in seeded["united"]["query"]

    run = uuid.uuid4().hex[:8]
    qid = f"lost-bags-{run}"
    created = httpx.post(f"{api}/v1/queries", timeout=30, headers=admin_headers, json={
        "id": qid, "name": "Lost bags", "brand": "united", "query": f'(bag* OR luggage) AND "{run}" NOT lang:es'})
    assert created.status_code == 201, created.text

    def push(n: int, text: str) -> str:
        mention = {"id": f"{run}-{n}", "source": "crm", "text": text, "lang": "en",
                   "created_at": datetime.now(timezone.utc).isoformat()}
        assert post(api, {"mentions": [mention]}).status_code == 202
        return f"crm:{run}-{n}"

    # The worker reloads queries every EARSHOT_QUERIES_REFRESH_S (5 s): wait for the new one.
    deadline = time.monotonic() + 60
    n, tagged = 0, None
    while time.monotonic() < deadline and not tagged:
        n += 1
        mention_id = push(n, f"@united my luggage is gone {run}")
        doc = wait_until(lambda: stored(settings, mention_id), "the pushed mention", worker)
        tagged = qid in doc["queries"] and doc
        assert "united" in doc["queries"]  # the seeded brand query tags it from the start
        if not tagged:
            time.sleep(2)
    assert tagged, "the new query never tagged a mention"

    changed = httpx.put(f"{api}/v1/queries/{qid}", timeout=30, headers=admin_headers, json={
        "name": "Lost bags", "brand": "united", "query": f'suitcase AND "{run}"', "version": 1})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    time.sleep(settings.queries_refresh_s + 3)
    later = push(1000, f"@united my luggage is gone {run}")
    doc = wait_until(lambda: stored(settings, later), "the mention after the change", worker)
    assert qid not in doc["queries"] and "united" in doc["queries"]

    # The preview runs the compiled query on the index: the old wording's matches, not the new.
    httpx.post(f"{ES}/{settings.mentions_alias}/_refresh", timeout=30)
    preview = httpx.get(f"{api}/v1/queries/{qid}/preview", timeout=30, headers=admin_headers).json()
    assert preview["total"] == 0 and preview["es_query"]
    old = httpx.put(f"{api}/v1/queries/{qid}", timeout=30, headers=admin_headers, json={
        "name": "Lost bags", "query": f'luggage AND "{run}"', "version": 2})
    assert old.status_code == 200
    preview = httpx.get(f"{api}/v1/queries/{qid}/preview", timeout=30, headers=admin_headers).json()
    assert preview["total"] == n + 1 and all(run in m["text"] for m in preview["mentions"])


def test_copies_link_to_the_first_post_which_counts_its_echoes_and_bots_score_as_spam(api, settings, worker):
    run = uuid.uuid4().hex[:8]
    now = datetime.now(timezone.utc).isoformat()
    text = f"United cancelled flight {run} and left two hundred people stranded at the gate overnight"
    posts = [{"id": f"{run}-first", "source": "crm", "text": text + " https://t.co/a1", "created_at": now,
              "author": {"handle": "first", "followers": 800}}]
    posts += [{"id": f"{run}-copy{i}", "source": "crm", "text": f"RT @first: {text} https://t.co/z{i}",
               "created_at": now, "author": {"handle": f"fan{i}", "followers": 50}} for i in range(3)]
    assert post(api, {"mentions": posts}).json()["accepted"] == 4
    # One account posting link- and tag-stuffed texts at a machine's pace.
    bot = [{"id": f"{run}-bot{i}", "source": "crm", "created_at": now, "author": {"handle": f"deals{run}", "followers": 0},
            "text": f"Deal {i} {run} cheap flights http://spam.example/{i} http://spam.example/x{i} #travel #deals #cheap #win"}
           for i in range(40)]
    assert post(api, {"mentions": bot}).json()["accepted"] == 40

    # All four were published at the same instant from different partitions: whichever the worker
    # saw first is the first post, and the three others are its echoes.
    ids = [f"crm:{p['id']}" for p in posts]

    def linked():
        docs = [stored(settings, i) for i in ids]
        firsts = [d for d in docs if d and d["duplicate_of"] is None and d.get("echoes") == 3]
        return all(docs) and len(firsts) == 1 and (firsts[0], docs)

    first, docs = wait_until(linked, "one first post with three echoes", worker)
    assert len(first["simhash"]) == 16 and first["spam"]["score"] < settings.spam_threshold
    copies = [d for d in docs if d["id"] != first["id"]]
    assert all(c["duplicate_of"] == first["id"] and "echo" in c["spam"]["signals"] for c in copies)
    last_bot = wait_until(lambda: stored(settings, f"crm:{run}-bot39"), "the bot's last post", worker)
    assert last_bot["spam"]["score"] >= settings.spam_threshold
    assert {"burst", "links", "no_audience"} <= set(last_bot["spam"]["signals"])
