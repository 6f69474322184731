"""Alerts and webhooks over the real Elasticsearch and Kafka: the routes, the sink's merge rules,
the live SSE stream through a real uvicorn server, and signed webhook deliveries to local receivers."""

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi.testclient import TestClient

import api.routes.alerts as alert_routes
from api.alert_feed import AlertFeed
from api.main import create_app
from bench.harness import free_port
from tests.servers import Receiver, serve
from pipeline.alerts.sink import AlertSink, ensure_alerts_layout
from pipeline.alerts.records import SEVERITIES, SIGNALS, STATUSES, Alert, AlertWindow, alert_id
from pipeline.store.mention_sink import make_es_client
from pipeline.alerts.delivery import WebhookRegistry, deliver, deliver_digests
from pipeline.alerts.webhooks import SIGNATURE_HEADER, DigestBook, verify

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)  # the listed alerts
T1 = datetime(2026, 11, 10, tzinfo=timezone.utc)  # alerts the other tests write, outside the listed range
SEEDED = [(["alpha", "beta"][i % 3 == 0], SIGNALS[i % 4], SEVERITIES[(i // 2) % 4], STATUSES[i % 3], i)
          for i in range(24)]


def make_alert(brand: str, signal: str = "volume", severity: str = "high", status: str = "open",
               minute: int = 0, start: datetime = T1, **extra) -> dict:
    started = start + timedelta(minutes=10 * minute)
    return Alert(
        id=alert_id(brand, signal, started), brand=brand, signal=signal, severity=severity, status=status,
        started_at=started, updated_at=started + timedelta(minutes=5),
        window=AlertWindow(start=started, end=started + timedelta(minutes=5), bucket_s=300),
        observed=40.0, expected=5.0, score=6.0, peak_score=6.0, teams=["customer_care"], **extra,
    ).to_document()


def seeded(brand, signal, severity, status, i):
    return make_alert(brand, signal, severity, status, minute=i, start=T0)


async def with_es(settings, work):
    es = make_es_client(settings)
    try:
        return await work(es)
    finally:
        await es.close()


def write_alerts(settings, docs, refresh=True):
    async def go(es):
        await ensure_alerts_layout(es, settings)
        stored = await AlertSink(es, settings).write(docs)
        if refresh:
            await es.indices.refresh(index=settings.alerts_index)
        return stored

    return asyncio.run(with_es(settings, go))


@pytest.fixture(scope="module")
def client(settings, admin_headers):
    write_alerts(settings, [seeded(*s) for s in SEEDED])
    with TestClient(create_app(settings), headers=admin_headers) as c:
        yield c


def listed(client, **params):
    params = {"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat(), "size": 100, **params}
    r = client.get("/v1/alerts", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def ids(rows):
    return [seeded(*s)["id"] for s in rows]


# -- list, filter, read --------------------------------------------------------------------

def test_list_is_newest_updated_first_and_the_cursor_walks_every_alert_once(client):
    seen, cursor = [], None
    while True:
        page = listed(client, size=5, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == len(SEEDED)
        seen += [a["id"] for a in page["alerts"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids(reversed(SEEDED))


def test_filters_by_brand_status_signal_and_severity_list(client):
    page = listed(client, brand="beta", status="open")
    assert [a["id"] for a in page["alerts"]] == ids(s for s in reversed(SEEDED) if s[0] == "beta" and s[3] == "open")
    page = listed(client, signal="risk")
    assert {a["id"] for a in page["alerts"]} == set(ids(s for s in SEEDED if s[1] == "risk"))
    wanted = set(ids(s for s in SEEDED if s[2] in ("high", "critical")))
    assert {a["id"] for a in listed(client, severity="high,critical")["alerts"]} == wanted
    r = client.get("/v1/alerts", params=[("severity", "high"), ("severity", "critical"), ("from", T0.isoformat()),
                                         ("to", (T0 + timedelta(days=1)).isoformat()), ("size", "100")])
    assert {a["id"] for a in r.json()["alerts"]} == wanted


def test_time_range_is_on_updated_at(client):
    # alert i is updated at T0 + 10 i + 5 minutes
    page = listed(client, **{"from": (T0 + timedelta(minutes=45)).isoformat(),
                             "to": (T0 + timedelta(minutes=95)).isoformat()})
    assert [a["id"] for a in page["alerts"]] == ids(s for s in reversed(SEEDED) if 4 <= s[4] <= 8)


def test_get_one_alert_and_404_with_a_message(client):
    doc = seeded(*SEEDED[3])
    r = client.get(f"/v1/alerts/{doc['id']}")
    assert r.status_code == 200 and r.json() == doc
    missing = client.get("/v1/alerts/0000deadbeef")
    assert missing.status_code == 404 and "0000deadbeef" in missing.json()["error"]
    assert client.post("/v1/alerts/0000deadbeef/ack").status_code == 404
    assert client.post("/v1/alerts/0000deadbeef/resolve", json={"by": "ana"}).status_code == 404


@pytest.mark.parametrize(
    "params, status, words",
    [
        ({"severity": "urgent"}, 400, "severity must be one of"),
        ({"severity": "high,nope"}, 400, "nope"),
        ({"status": "closed"}, 422, "status"),
        ({"signal": "mood"}, 422, "signal"),
        ({"size": 0}, 422, "size"),
        ({"size": 101}, 422, "at most 100"),
        ({"brand": "Not A Brand"}, 422, "brand"),
        ({"from": "yesterday"}, 422, "from"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, 400, "before"),
        ({"cursor": "garbage!"}, 400, "cursor"),
    ],
)
def test_bad_parameters_get_a_4xx_with_a_clear_message(client, params, status, words):
    r = client.get("/v1/alerts", params=params)
    assert r.status_code == status
    assert words in r.json()["error"] and "Traceback" not in r.text


def test_stream_refuses_bad_filters(client):
    assert client.get("/v1/alerts/stream", params={"min_severity": "huge"}).status_code == 422
    assert client.get("/v1/alerts/stream", params={"brand": "Bad!"}).status_code == 400


# -- people's changes and the detector's later writes ---------------------------------------------

async def published_versions(settings, key: str) -> list[int]:
    """Versions of alert ``key`` on the alerts topic, from the beginning."""
    consumer = AIOKafkaConsumer(settings.topic_alerts, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return [json.loads(r.value)["version"] for records in batches.values() for r in records
                if r.key == key.encode()]
    finally:
        await consumer.stop()


def test_ack_and_resolve_bump_the_version_publish_it_and_are_idempotent(client, settings):
    doc = make_alert("gamma", version=3)
    write_alerts(settings, [doc], refresh=False)
    acked = client.post(f"/v1/alerts/{doc['id']}/ack", json={"by": "ana", "note": "looking"})
    assert acked.json()["note"] == "looking"
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_by"] == "ana" and acked.json()["acknowledged_at"] and acked.json()["version"] == 4
    assert acked.json()["last_change"] == "acknowledged"
    again = client.post(f"/v1/alerts/{doc['id']}/ack", json={"by": "bob"}).json()
    assert again["acknowledged_by"] == "ana" and again["version"] == 4

    done = client.post(f"/v1/alerts/{doc['id']}/resolve").json()  # no body: anonymous
    assert done["status"] == "resolved" and done["resolved_by"] == "anonymous" and done["resolved_at"]
    assert done["version"] == 5 and done["acknowledged_by"] == "ana"
    assert client.post(f"/v1/alerts/{doc['id']}/resolve", json={"by": "bob"}).json() == done
    assert client.get(f"/v1/alerts/{doc['id']}").json() == done
    assert asyncio.run(published_versions(settings, doc["id"])) == [4, 5]


def test_a_later_detector_version_keeps_the_human_resolution_and_an_older_one_is_ignored(client, settings):
    doc = make_alert("delta", version=2)
    write_alerts(settings, [doc], refresh=False)
    done = client.post(f"/v1/alerts/{doc['id']}/resolve", json={"by": "ana"}).json()
    assert done["version"] == 3

    stale = write_alerts(settings, [{**doc, "version": 2, "observed": 1.0}], refresh=False)
    assert stale == []
    assert client.get(f"/v1/alerts/{doc['id']}").json() == done

    newer = {**make_alert("delta", version=4, severity="critical", status="escalated"), "observed": 99.0}
    [stored] = write_alerts(settings, [newer], refresh=False)
    assert stored["status"] == "resolved" and stored["resolved_by"] == "ana"  # what the worker publishes
    now = client.get(f"/v1/alerts/{doc['id']}").json()
    assert now["version"] == 4 and now["observed"] == 99.0 and now["severity"] == "critical"
    assert now["status"] == "resolved" and now["resolved_by"] == "ana" and now["resolved_at"] == done["resolved_at"]


def test_a_resolve_landing_between_the_sinks_read_and_its_write_is_kept(client, settings):
    doc = make_alert("omicron", version=1)
    write_alerts(settings, [doc], refresh=False)

    class ResolveDuringWrite:
        """The real client, but a person resolves the alert right after the sink's first read."""

        def __init__(self, es):
            self.es, self.reads = es, 0

        async def mget(self, **kwargs):
            found = await self.es.mget(**kwargs)
            self.reads += 1
            if self.reads == 1:
                assert client.post(f"/v1/alerts/{doc['id']}/resolve", json={"by": "ana"}).status_code == 200
            return found

        async def bulk(self, **kwargs):
            return await self.es.bulk(**kwargs)

    async def go(es):
        racing = ResolveDuringWrite(es)
        later = (datetime.fromisoformat(doc["updated_at"].replace("Z", "+00:00")) + timedelta(minutes=5)).isoformat()
        stored = await AlertSink(racing, settings).write([{**doc, "version": 2, "severity": "critical",
                                                           "updated_at": later}])
        return racing.reads, stored

    reads, [stored] = asyncio.run(with_es(settings, go))
    assert reads == 2  # the conditional write lost the race and merged again
    assert stored["resolved_by"] == "ana" and stored["severity"] == "critical"
    assert client.get(f"/v1/alerts/{doc['id']}").json()["status"] == "resolved"


def test_changes_are_stored_when_kafka_is_down(settings, admin_headers):
    doc = make_alert("epsilon")
    write_alerts(settings, [doc], refresh=False)
    offline = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})  # nothing listens there
    started = time.monotonic()
    with TestClient(create_app(offline), headers=admin_headers) as c:
        r = c.post(f"/v1/alerts/{doc['id']}/ack", json={"by": "ana"})
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "ana"
        assert c.get(f"/v1/alerts/{doc['id']}").json()["version"] == 2
    assert time.monotonic() - started < 10


# -- the live stream -----------------------------------------------------------------------

class Publisher(threading.Thread):
    """Publishes ``alerts`` to the alerts topic with aiokafka, round after round, until stopped
    (the stream starts at the end of the topic: whatever it missed while connecting is resent)."""

    def __init__(self, settings, alerts):
        super().__init__(daemon=True)
        self.settings, self.alerts, self.stop = settings, alerts, threading.Event()

    def run(self):
        async def go():
            producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap)
            await producer.start()
            try:
                while not self.stop.is_set():
                    for doc in self.alerts:
                        await producer.send_and_wait(self.settings.topic_alerts, json.dumps(doc).encode(),
                                                     key=doc["id"].encode())
                    await asyncio.sleep(0.3)
            finally:
                await producer.stop()

        asyncio.run(go())


def test_sse_delivers_published_alerts_that_pass_the_filters_and_forgets_closed_clients(settings, api_keys, monkeypatch):
    monkeypatch.setattr(alert_routes, "KEEPALIVE_S", 0.3)
    app = create_app(settings)
    wanted = make_alert("zeta", severity="high", version=7)
    too_low = make_alert("zeta", signal="negative", severity="low")
    other_brand = make_alert("eta", severity="critical")
    with serve(app) as base, httpx.Client(base_url=base, timeout=10, headers={"X-API-Key": api_keys["comms"]}) as http:
        feed = app.state.alert_feed
        publisher = Publisher(settings, [too_low, other_brand, wanted])
        events, comments = [], []
        try:
            with http.stream("GET", "/v1/alerts/stream", params={"brand": "zeta", "min_severity": "medium"}) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                publisher.start()
                started = time.monotonic()
                event: dict[str, str] = {}
                for line in r.iter_lines():
                    if line.startswith(":"):
                        comments.append(line)
                    elif line:
                        field, _, value = line.partition(": ")
                        event[field] = value
                    elif event:
                        events.append(event)
                        event = {}
                    if events:
                        publisher.stop.set()  # quiet from now on: the next thing due is a keep-alive
                        if ": keep-alive" in comments[1:]:
                            assert len(feed.subscribers) == 1
                            break  # leaving iter_lines closes the response: the client is gone
                    assert time.monotonic() - started < 10, f"no event within 10 s; comments {comments}"
        finally:
            publisher.stop.set()
            publisher.join(10)
        first = events[0]
        assert first["id"] == f"{wanted['id']}:7" and first["event"] == "alert"
        assert json.loads(first["data"]) == wanted
        assert comments[0] == ": connected"
        assert {e["id"] for e in events} == {f"{wanted['id']}:7"}  # the filtered ones never came
        deadline = time.monotonic() + 5
        while feed.subscribers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not feed.subscribers, "a closed client is still subscribed"


def test_a_client_too_slow_to_read_is_dropped_not_buffered_forever(settings):
    async def go():
        feed = AlertFeed(settings, queue_size=3)
        slow, quick = feed.subscribe(frozenset(), "low"), feed.subscribe(frozenset(), "low")
        for version in range(1, 6):
            feed.fan_out(make_alert("theta", version=version))
            await quick.queue.get()
        return feed, slow, quick

    feed, slow, quick = asyncio.run(go())
    assert feed.subscribers == {quick}
    assert slow.queue.qsize() == 1 and slow.queue.get_nowait() is None  # the stream ends


def test_the_feed_skips_records_that_are_not_alerts(settings):
    async def go():
        feed = AlertFeed(settings)
        sub = feed.subscribe(frozenset(), "low")
        unknown_severity = json.dumps({**make_alert("pi"), "severity": "dire"}).encode()
        for junk in (b"not json", b"[1]", b'{"id": "x"}', unknown_severity):
            feed._consume(junk, partition=0, offset=0)
        feed._consume(json.dumps(make_alert("pi")).encode(), partition=0, offset=1)
        return sub

    sub = asyncio.run(go())
    assert sub.queue.qsize() == 1 and sub.queue.get_nowait()["brand"] == "pi"


# -- webhooks: registration, scopes, delivery ------------------------------------------------------

@pytest.fixture
def receivers():
    made = []

    def make(*answers):
        made.append(Receiver(*answers))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def register(client, **body):
    r = client.post("/v1/webhooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def run_delivery(settings, alert, hooks, sleep=None, **overrides):
    fast = settings.model_copy(update={"webhook_backoff_s": 0.01, "webhook_timeout_s": 2, **overrides})

    async def go():
        async with httpx.AsyncClient() as http:
            return await deliver(alert, hooks, http, fast, **({"sleep": sleep} if sleep else {}))

    return asyncio.run(go())


def registered_hooks(settings):
    return asyncio.run(with_es(settings, lambda es: WebhookRegistry(es, settings).hooks()))


def test_a_flaky_receiver_gets_the_alert_on_the_third_try_with_a_valid_signature(client, settings, receivers):
    flaky, other = receivers(503, 503, 200), receivers(200)
    created = register(client, url=flaky.url, brands=["iota"], min_severity="medium")
    register(client, url=other.url, brands=["kappa"])
    assert created["secret"] and "secret" not in json.dumps(client.get("/v1/webhooks").json())
    hooks = [h for h in registered_hooks(settings) if h.url in (flaky.url, other.url)]
    alert = make_alert("iota", severity="high", version=2)

    assert run_delivery(settings, alert, hooks, webhook_max_attempts=4) == []
    assert len(flaky.requests) == 3 and other.requests == []
    headers, body = flaky.requests[-1]
    assert verify(created["secret"], headers[SIGNATURE_HEADER], body, now=time.time())
    assert json.loads(body) == {"type": "alert", "alert": alert}
    assert {h["X-Earshot-Delivery"] for h, _ in flaky.requests} == {f"{alert['id']}:2"}


def test_incidents_below_a_hooks_threshold_reach_it_as_one_signed_digest(client, settings, receivers):
    """Issue 14: a hook with min_severity 8 is not paged for a 3/10 or a 5/10 incident; both reach
    it in one digest; a hook with the default threshold is paged for both and gets no digest."""
    pager, digest = receivers(200), receivers(200)
    loud = register(client, url=pager.url, brands=["omicron"])
    quiet = register(client, url=digest.url, brands=["omicron"], min_severity=8)
    assert client.get("/v1/webhooks").json()["webhooks"][-1]["min_severity"] == 8
    hooks = [h for h in registered_hooks(settings) if h.id in (loud["id"], quiet["id"])]
    small = make_alert("omicron", severity="low", minute=1, severity_score=3,
                       paging={"page": True, "reason": "threshold", "paged_score": 3},
                       explanation={"summary": "omicron: severity 3/10 (low). Rising: \"late train\".", "phrases": []})
    medium = make_alert("omicron", severity="medium", minute=2, severity_score=5,
                        paging={"page": True, "reason": "threshold", "paged_score": 5})
    book = DigestBook()
    fast = settings.model_copy(update={"webhook_backoff_s": 0.01, "webhook_timeout_s": 2})

    async def go():
        async with httpx.AsyncClient() as http:
            for alert in (small, medium):
                assert await deliver(alert, hooks, http, fast, digests=book) == []
            return await deliver_digests(book.take(), hooks, T1, T1 + timedelta(hours=1), http, fast)

    assert asyncio.run(go()) == []
    assert len(pager.requests) == 2 and len(digest.requests) == 1
    headers, body = digest.requests[0]
    assert verify(quiet["secret"], headers[SIGNATURE_HEADER], body, now=time.time())
    assert headers["X-Earshot-Delivery"] == f"digest:{quiet['id']}:{int((T1 + timedelta(hours=1)).timestamp())}"
    sent = json.loads(body)
    assert sent["type"] == "digest" and [e["id"] for e in sent["incidents"]] == [small["id"], medium["id"]]
    assert sent["incidents"][0]["summary"].startswith("omicron: severity 3/10")


def test_429_waits_as_long_as_retry_after_says(client, settings, receivers):
    limited = receivers((429, {"Retry-After": "2"}), 200)
    created = register(client, url=limited.url, brands=["lambda"], format="slack")
    hooks = [h for h in registered_hooks(settings) if h.id == created["id"]]
    waits = []

    async def record(seconds):
        waits.append(seconds)

    assert run_delivery(settings, make_alert("lambda"), hooks, sleep=record) == []
    assert waits == [2.0] and len(limited.requests) == 2
    assert "blocks" in json.loads(limited.requests[-1][1])


def test_a_receiver_that_keeps_failing_becomes_a_dead_letter_after_max_attempts(client, settings, receivers):
    broken, gone = receivers(500), receivers(410)
    failing = register(client, url=broken.url, brands=["mu"])
    final = register(client, url=gone.url, brands=["mu"])
    hooks = [h for h in registered_hooks(settings) if h.id in (failing["id"], final["id"])]
    alert = make_alert("mu")

    letters = run_delivery(settings, alert, hooks, webhook_max_attempts=3)
    assert len(broken.requests) == 3 and len(gone.requests) == 1  # 4xx other than 429: no retry
    by_hook = {json.loads(letter["payload"])["webhook_id"]: letter for letter in letters}
    assert set(by_hook) == {failing["id"], final["id"]}
    assert by_hook[failing["id"]]["stage"] == "webhook"
    assert "3 attempt(s)" in by_hook[failing["id"]]["reason"] and "HTTP 500" in by_hook[failing["id"]]["reason"]
    assert "HTTP 410" in by_hook[final["id"]]["reason"]
    payload = json.loads(by_hook[failing["id"]]["payload"])
    assert payload["url"] == broken.url and payload["alert"] == alert
    assert failing["secret"] not in json.dumps(letters)


def test_network_errors_are_retried_then_dead_lettered(client, settings):
    created = register(client, url=f"http://127.0.0.1:{free_port()}/nobody", brands=["nu"])
    hooks = [h for h in registered_hooks(settings) if h.id == created["id"]]
    [letter] = run_delivery(settings, make_alert("nu"), hooks, webhook_max_attempts=2)
    assert "2 attempt(s)" in letter["reason"] and "ConnectError" in letter["reason"]


def test_the_registry_sees_new_registrations_after_its_cache_time(client, settings):
    now = [0.0]

    async def go(es):
        registry = WebhookRegistry(es, settings, ttl_s=5, clock=lambda: now[0])
        before = {h.id for h in await registry.hooks()}
        created = register(client, url="https://example.com/later", brands=["xi"])
        cached = {h.id for h in await registry.hooks()}
        now[0] = 5.0
        return before, cached, {h.id for h in await registry.hooks()}, created["id"]

    before, cached, after, new_id = asyncio.run(with_es(settings, go))
    assert new_id not in before and cached == before and after == before | {new_id}


def test_delete_removes_a_hook_and_a_second_delete_is_404(client):
    created = register(client, url="https://example.com/gone")
    assert client.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    assert created["id"] not in {h["id"] for h in client.get("/v1/webhooks").json()["webhooks"]}
    missing = client.delete(f"/v1/webhooks/{created['id']}")
    assert missing.status_code == 404 and created["id"] in missing.json()["error"]


@pytest.mark.parametrize("body, words", [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "https://example.com/x", "format": "xml"}, "format"),
    ({"url": "https://example.com/x", "min_severity": "huge"}, "min_severity"),
    ({"url": "https://example.com/x", "secret": "short"}, "secret"),
    ({"url": "https://example.com/x", "brands": ["Bad Brand"]}, "brands"),
])
def test_bad_registrations_get_a_422_with_the_field(client, body, words):
    r = client.post("/v1/webhooks", json=body)
    assert r.status_code == 422 and words in r.json()["error"]


def test_webhook_routes_need_the_webhooks_admin_scope(settings, api_keys):
    with TestClient(create_app(settings)) as c:
        body = {"url": "https://example.com/admin"}
        missing = c.post("/v1/webhooks", json=body)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/webhooks").status_code == 401
        assert c.post("/v1/webhooks", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        comms = {"Authorization": f"Bearer {api_keys['comms']}"}
        assert c.post("/v1/webhooks", json=body, headers=comms).status_code == 403
        assert c.post("/v1/webhooks", json=body, headers={"Authorization": f"Basic {api_keys['crisis']}"}).status_code == 401
        ok = c.post("/v1/webhooks", json=body, headers={"Authorization": f"Bearer {api_keys['crisis']}"})
        assert ok.status_code == 201 and ok.json()["secret"]
        assert c.get("/v1/alerts", headers=comms).status_code == 200  # comms reads alerts, cannot hook them
