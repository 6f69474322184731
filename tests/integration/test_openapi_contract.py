"""The API against its own OpenAPI document: schemathesis generates requests from the spec of the
real app (``create_app``), sends them to a real uvicorn server over the local Elasticsearch and
Kafka, and checks every answer: no 5xx, a documented status code, the documented content type, and
a body that matches the declared schema.

The app runs in an index prefix of its own, loaded with fixture mentions (rolled up), alerts and a
stored query, so reads return real documents; the destructive routes (erasure, DELETE) only touch
that namespace. Generation is derandomized and bounded, so the run is the same on every machine.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from pipeline.alerts.sink import AlertSink, ensure_alerts_layout
from pipeline.alerts.records import SEVERITIES, SIGNALS, STATUSES, Alert, AlertWindow, alert_id
from pipeline.store.rollup import hours_between, rollup_hours
from pipeline.schema import Author, EnrichedMention, Entities, Flag, Sentiment, Spam
from pipeline.settings import Settings
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client
from tests.servers import serve

pytestmark = pytest.mark.services

ADMIN_KEY = "contract-test-bootstrap-admin-key"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
LABELS = ["negative", "neutral", "positive"]
MAX_EXAMPLES = 15  # per operation and generation mode: the whole run stays within a couple of minutes
# Not run: an endless stream (no response ever completes) has nothing to validate.
EXCLUDED = {"/v1/alerts/stream": "Server-Sent Events: the response never ends"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fixture_mentions() -> list[EnrichedMention]:
    """Mentions of the last two days, for the default ranges of the trend and analytics routes."""
    out = []
    for i in range(48):
        label = LABELS[i % 3]
        created = NOW - timedelta(hours=i, minutes=7)
        out.append(EnrichedMention(
            id=f"contract:{i:03d}", source="contracttest", lang="en" if i % 5 else "fr",
            text=f"flight {i} was delayed again $UAL #fail" if i % 2 else f"great crew on flight {i} <b>thanks</b>",
            created_at=created, ingested_at=created, author=Author(handle=f"user{i % 6}", followers=10 * i),
            sentiment=Sentiment(label=label, score=0.8, **{l: (0.8 if l == label else 0.1) for l in LABELS}),
            complaint=Flag(label=label == "negative", score=0.9 if label == "negative" else 0.1),
            purposes=["customer_care"] if label == "negative" else (["investor"] if i % 7 == 0 else []),
            teams=["customer_care"] if label == "negative" else [], priority=float(i % 10) * 10,
            brands=["united"] if i % 4 else ["delta", "united"], competitors=[] if i % 4 else ["delta"],
            entities=Entities(hashtags=["fail"] if i % 2 else [], cashtags=["UAL"] if i % 2 else []),
            spam=Spam(score=0.95) if i % 9 == 4 else None, duplicate_of="contract:001" if i % 6 == 5 else None,
            queries=["delays"] if i % 2 else [], model_version="test@1",
        ))
    return out


def fixture_alerts() -> list[dict]:
    alerts = []
    for i in range(8):
        started = NOW - timedelta(hours=3 * i)
        alerts.append(Alert(
            id=alert_id("united", SIGNALS[i % len(SIGNALS)], started), brand="united", signal=SIGNALS[i % len(SIGNALS)],
            severity=SEVERITIES[i % len(SEVERITIES)], status=STATUSES[i % len(STATUSES)], started_at=started,
            updated_at=started + timedelta(minutes=5), window=AlertWindow(start=started, end=started + timedelta(minutes=5),
                                                                          bucket_s=300),
            observed=40.0, expected=5.0, score=6.0, peak_score=6.0, teams=["customer_care"],
        ).to_document())
    return alerts


async def load(settings) -> None:
    es = make_es_client(settings)
    try:
        mentions = fixture_mentions()
        await ensure_mentions_layout(es, settings)
        assert await MentionSink(es, settings).write([(m.to_document(), m.created_at) for m in mentions]) == []
        await es.indices.refresh(index=settings.mentions_alias)
        hours = {h for m in mentions for h in hours_between(m.created_at, m.created_at + timedelta(seconds=1))}
        await rollup_hours(es, settings, hours)
        await es.indices.refresh(index=settings.rollup_index)
        await ensure_alerts_layout(es, settings)
        await AlertSink(es, settings).write(fixture_alerts())
        await es.indices.refresh(index=settings.alerts_index)
    finally:
        await es.close()


OPENAPI = create_app(Settings()).openapi()  # the real app's spec; building the app connects nothing (its lifespan does)
# Loaded at import: schemathesis' lazy ``from_fixture`` loader does not work with this pytest (9.2).
schema = schemathesis.openapi.from_dict(OPENAPI, config=schemathesis.Config.from_dict({
    "headers": HEADERS,
    "request-timeout": 30,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
})).exclude(path=list(EXCLUDED))


@pytest.fixture(scope="module")
def api_url(settings) -> str:
    """The app of an index prefix of its own under uvicorn, over fixture data: its base URL."""
    own = settings.model_copy(update={
        "index_prefix": f"{settings.index_prefix}-contract",
        "bootstrap_admin_key": SecretStr(ADMIN_KEY),
        "api_rate_per_minute": 1_000_000,  # the run sends thousands of requests with one key
    })
    asyncio.run(load(own))
    app = create_app(own)
    with serve(app) as url:
        created = httpx.post(f"{url}/v1/queries", headers=HEADERS, json={
            "id": "delays", "name": "Delays", "kind": "topic", "brand": "united", "query": "delayed OR late"})
        assert created.status_code == 201, created.text
        # The audit log's index is created by its first write: wait for it, so reads of it find its shard ready.
        deadline = time.monotonic() + 30
        while (audit := httpx.get(f"{url}/v1/audit", headers=HEADERS)).status_code != 200 or not audit.json()["entries"]:
            assert time.monotonic() < deadline, audit.text
            time.sleep(0.5)
        assert app.openapi() == OPENAPI  # what the cases come from is what this app serves
        yield url


@schema.parametrize()
def test_every_operation_answers_as_its_openapi_document_says(case, api_url):
    case.call_and_validate(base_url=api_url, checks=CHECKS)


# Times the ISO 8601 grammar allows that once gave a 500 or an Elasticsearch refusal (a 400 blaming the
# backend): offsets beyond +-18:00, a naive time beside an aware one, the ends of Python's calendar. The
# generator reaches them only with far more examples than a test run affords, so they are sent here.
EDGE_TIMES = [{"to": "2026-10-31T11:30:16+21:58"}, {"from": "2026-10-31T11:30:16-23:59"},
              {"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"}, {"to": "0001-01-01T00:00:00+05:00"},
              {"to": "9999-12-31T23:59:59-05:00"}, {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"}]
REQUIRED = {"brand": "united", "team": "customer_care", "brands": "united,delta",  # values for required parameters
            "mention_id": "contract:unknown"}  # an id nothing is stored under: a documented 404 once times pass
TIMED = sorted(path for path, operations in OPENAPI["paths"].items() if path not in EXCLUDED
               for p in operations.get("get", {}).get("parameters", []) if p["name"] == "to")


@pytest.mark.parametrize("path", TIMED)
def test_edge_times_are_taken_in_utc_or_refused_with_a_422(path, api_url):
    operation = schema[path]["GET"]
    required = {p["name"]: p["in"] for p in OPENAPI["paths"][path]["get"]["parameters"] if p.get("required")}
    for times in EDGE_TIMES:
        case = operation.Case(path_parameters={n: REQUIRED[n] for n, where in required.items() if where == "path"},
                              query={**{n: REQUIRED[n] for n, where in required.items() if where == "query"}, **times})
        response = case.call_and_validate(base_url=api_url, headers=HEADERS, checks=CHECKS)
        answers = (200, 422, 404) if "mention_id" in required else (200, 422)
        assert response.status_code in answers, (times, response.status_code, response.text[:300])
