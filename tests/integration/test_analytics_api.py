"""Comms, competitor, market-intel and IR endpoints over real Elasticsearch, and the hourly rollup.

Known fixture mentions are indexed with the real sink in an index prefix of their own, the rollup
is computed with ``rollup_hours`` (what the worker's timer and ``earshot rollup`` run), and every
number is checked against the fixture list.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from pipeline.enrich.phrases import STOP_WORDS, brand_words, extract_phrases
from pipeline.store.rollup import hours_between, rollup_hours
from pipeline.schema import Author, Emotion, EnrichedMention, Entities, Flag, Metrics, Sentiment, Spam
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client
from tests.conftest import create_api_key

pytestmark = pytest.mark.services

T0 = datetime(2026, 10, 5, tzinfo=timezone.utc)  # previous period: day 1; current period: day 2
CURRENT = (T0 + timedelta(hours=24), T0 + timedelta(hours=48))
PREVIOUS = (T0, T0 + timedelta(hours=24))
BRANDS = ["acme", "globex", "initech"]
LABELS = ["negative", "neutral", "positive"]
EMOTIONS = ["anger", "joy", "optimism", "sadness"]


def make(i: int, at: datetime, brands: list[str], label: str, text: str, *, emotion: str = "joy",
         complaint: bool = False, purposes: list[str] | None = None, spam: float | None = None,
         duplicate_of: str | None = None, hashtags: list[str] | None = None, cashtags: list[str] | None = None,
         handle: str | None = None, followers: int = 10, likes: int = 0) -> EnrichedMention:
    return EnrichedMention(
        id=f"analytics:{i:04d}", source="analyticstest", text=text, lang="en", created_at=at, ingested_at=at,
        author=Author(handle=handle or f"user{i % 7}", followers=followers),
        metrics=Metrics(likes=likes, shares=1, replies=0),
        sentiment=Sentiment(label=label, score=0.8, **{l: (0.8 if l == label else 0.1) for l in LABELS}),
        emotion=Emotion(label=emotion, score=0.7, **{e: (0.7 if e == emotion else 0.1) for e in EMOTIONS}),
        complaint=Flag(label=complaint, score=0.9 if complaint else 0.1),
        purposes=purposes or [], brands=brands, model_version="test@1",
        spam=Spam(score=spam) if spam is not None else None, duplicate_of=duplicate_of,
        entities=Entities(hashtags=hashtags or [], cashtags=cashtags or []),
        phrases=extract_phrases(text, brand_words(brands)),  # as the enricher does
    )


def fixture_mentions() -> list[EnrichedMention]:
    out: list[EnrichedMention] = []
    for h in range(48):
        for j, brand in enumerate(BRANDS):
            n = 1 + (h + j) % 3 + (1 if brand == "acme" and h >= 24 else 0)
            for k in range(n):
                i = len(out)
                label = LABELS[(h + k + j) % 3]
                complaint = label == "negative" and k % 2 == 0
                text = (f"still waiting on my refund, support never answers ticket {i}" if complaint
                        else f"saw {brand} in the news this morning, item {i} of the day")
                out.append(make(i, T0 + timedelta(hours=h, minutes=7 * k), [brand], label, text,
                                emotion=EMOTIONS[(h + k) % 4], complaint=complaint,
                                purposes=["customer_care"] if complaint else (["praise"] if label == "positive" else []),
                                duplicate_of="analytics:0000" if (i % 11 == 5) else None,
                                followers=100 * (i % 7), likes=i % 5))
    t = CURRENT[0]
    for k in range(4):  # spam: left out everywhere by default
        out.append(make(len(out), t + timedelta(hours=2 * k, minutes=3), ["acme"], "positive",
                        f"free crypto giveaway click now {k}", spam=0.95))
    for k in range(5):  # an emerging topic in the last 6 hours of the current period
        out.append(make(len(out), T0 + timedelta(hours=42 + k, minutes=11), ["acme"], "neutral",
                        f"everyone is talking about the zorblax gadget launch {k}", hashtags=["zorblax"]))
    for k in range(6):  # product feedback
        out.append(make(len(out), t + timedelta(hours=3 * k, minutes=13), ["acme"], "negative",
                        f"battery drains overnight after the update, firmware {k}", purposes=["product_feedback"],
                        hashtags=["batterylife"]))
    for k in range(4):  # investor talk, with markup to escape
        out.append(make(len(out), t + timedelta(hours=k, minutes=17), ["acme"], "positive",
                        f"acme earnings beat expectations <b>again</b> quarter {k}", purposes=["investor"],
                        handle="marketwatcher" if k % 2 else "fundguy"))
    for k in range(3):  # a cashtag without the investor purpose
        out.append(make(len(out), t + timedelta(hours=5 + k, minutes=19), ["acme"], "neutral",
                        f"$ACME earnings call tomorrow, listening in {k}", cashtags=["ACME"], handle="marketwatcher"))
    for k in range(2):  # "earnings" but neither investor nor cashtag: not investor chatter
        out.append(make(len(out), t + timedelta(hours=9 + k, minutes=21), ["acme"], "neutral",
                        f"my earnings from the side gig bought an acme blender {k}"))
    out.append(make(len(out), t + timedelta(hours=1, minutes=23), ["acme", "globex"], "negative",
                    "acme vs globex: both lost my luggage, refund please", complaint=True, purposes=["customer_care"],
                    handle="bigvoice", followers=1_000_000, likes=500))
    return out


MENTIONS = fixture_mentions()


def counted(m: EnrichedMention, brand: str, since: datetime, until: datetime) -> bool:
    return brand in m.brands and since <= m.created_at < until and (m.spam is None or m.spam.score < 0.7)


def of(brand: str, period: tuple[datetime, datetime]) -> list[EnrichedMention]:
    return [m for m in MENTIONS if counted(m, brand, *period)]


async def _load(settings, mentions: list[EnrichedMention], roll_up: bool) -> None:
    es = make_es_client(settings)
    try:
        await ensure_mentions_layout(es, settings)
        assert await MentionSink(es, settings).write([(m.to_document(), m.created_at) for m in mentions]) == []
        await es.indices.refresh(index=settings.mentions_alias)
        if roll_up:
            hours = {h for m in mentions for h in hours_between(m.created_at, m.created_at + timedelta(seconds=1))}
            await rollup_hours(es, settings, hours)
            await es.indices.refresh(index=settings.rollup_index)
    finally:
        await es.close()


@pytest.fixture(scope="module")
def own_settings(settings):
    return settings.model_copy(update={"index_prefix": f"{settings.index_prefix}-analytics"})


@pytest.fixture(scope="module")
def keys(own_settings) -> dict[str, str]:
    return {role: create_api_key(own_settings, role) for role in ("admin", "comms", "ir", "care")}


@pytest.fixture(scope="module")
def client(own_settings, keys):
    asyncio.run(_load(own_settings, MENTIONS, roll_up=True))
    with TestClient(create_app(own_settings), headers={"Authorization": f"Bearer {keys['admin']}"}) as c:
        yield c


def iso(t: datetime) -> str:
    return t.isoformat()


def period_params(period=CURRENT, **extra) -> dict[str, str]:
    return {"from": iso(period[0]), "to": iso(period[1]), **extra}


# -- share of voice and the rollup ------------------------------------------------------------------

def test_share_of_voice_numbers_from_the_rollup(client):
    r = client.get("/v1/competitors/share-of-voice", params=period_params(brands="acme,globex,initech"))
    assert r.status_code == 200, r.text
    assert r.headers["x-earshot-source"] == "rollup"
    body = r.json()
    assert set(body) == {"interval", "from", "to", "brands", "totals", "buckets"}
    assert body["brands"] == BRANDS and body["interval"] == "1h" and len(body["buckets"]) == 24
    volumes = {b: len(of(b, CURRENT)) for b in BRANDS}
    positives = {b: sum(m.sentiment.label == "positive" for m in of(b, CURRENT)) for b in BRANDS}
    for b in BRANDS:
        assert body["totals"][b]["volume"] == volumes[b]
        assert body["totals"][b]["share"] == pytest.approx(volumes[b] / sum(volumes.values()))
        assert body["totals"][b]["positive_share"] == pytest.approx(positives[b] / sum(positives.values()))
    for key in ("share", "positive_share", "negative_share"):
        assert sum(t[key] for t in body["totals"].values()) == pytest.approx(1.0)
        for bucket in body["buckets"]:
            assert sum(bucket[key].values()) == pytest.approx(1.0) or not any(bucket[key].values())
    first = [m for m in MENTIONS if counted(m, "acme", CURRENT[0], CURRENT[0] + timedelta(hours=1))]
    assert body["buckets"][0]["start"] == "2026-10-06T00:00:00Z"
    assert body["buckets"][0]["volume"]["acme"] == len(first)


@pytest.mark.parametrize("path, params", [
    ("/v1/competitors/share-of-voice", period_params(brands="acme,globex,initech")),
    ("/v1/competitors/share-of-voice", period_params(brands="acme,globex", interval="6h")),
    ("/v1/competitors/compare", period_params(brands="acme,globex,initech")),
    ("/v1/brands/acme/trend", period_params(interval="1h")),
    ("/v1/brands/acme/trend", period_params((T0, CURRENT[1]), interval="1d")),
])
def test_rollup_and_raw_paths_give_the_same_numbers(client, path, params):
    rolled = client.get(path, params={**params, "source": "rollup"})
    raw = client.get(path, params={**params, "source": "raw"})
    auto = client.get(path, params=params)
    assert rolled.status_code == raw.status_code == auto.status_code == 200, (rolled.text, raw.text)
    assert (rolled.headers["x-earshot-source"], raw.headers["x-earshot-source"],
            auto.headers["x-earshot-source"]) == ("rollup", "raw", "rollup")
    strip = lambda body: {k: v for k, v in body.items() if k != "source"}  # noqa: E731
    assert strip(rolled.json()) == strip(raw.json()) == strip(auto.json())


def test_trend_reads_raw_for_spam_sub_hour_intervals_and_refuses_a_forced_rollup_then(client):
    assert client.get("/v1/brands/acme/trend", params=period_params(include_spam="true")).headers[
        "x-earshot-source"] == "raw"
    assert client.get("/v1/brands/acme/trend", params=period_params(interval="30m")).headers[
        "x-earshot-source"] == "raw"
    forced = client.get("/v1/brands/acme/trend", params=period_params(interval="30m", source="rollup"))
    assert forced.status_code == 400 and "whole" in forced.json()["error"]


def test_auto_falls_back_to_raw_until_an_hour_is_rolled_up_and_rollups_are_idempotent(client, own_settings):
    late = make(9000, T0 + timedelta(hours=3, minutes=5), ["hooli"], "positive", "hooli shows up late")
    asyncio.run(_load(own_settings, [late], roll_up=False))
    params = period_params(PREVIOUS, brands="hooli")
    auto = client.get("/v1/competitors/share-of-voice", params=params)
    assert auto.headers["x-earshot-source"] == "raw" and auto.json()["totals"]["hooli"]["volume"] == 1
    assert client.get("/v1/competitors/share-of-voice", params={**params, "source": "rollup"}).json()[
        "totals"]["hooli"]["volume"] == 0
    for _ in range(2):  # twice: a replayed rollup must not double count
        asyncio.run(_load(own_settings, [late], roll_up=True))
        auto = client.get("/v1/competitors/share-of-voice", params=params)
        assert auto.headers["x-earshot-source"] == "rollup" and auto.json()["totals"]["hooli"]["volume"] == 1


# -- reputation and compare -------------------------------------------------------------------------

def readable(terms: list[str], brand_names: set[str]) -> bool:
    """No stop word at a phrase's edges, no brand name anywhere."""
    return all(t.split()[0] not in STOP_WORDS and t.split()[-1] not in STOP_WORDS
               and not set(t.split()) & brand_names for t in terms)


def net(mentions: list[EnrichedMention]) -> float:
    labels = [m.sentiment.label for m in mentions]
    return (labels.count("positive") - labels.count("negative")) / len(labels)


def test_reputation_against_the_previous_period(client):
    r = client.get("/v1/brands/acme/reputation", params=period_params())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "rollup" and r.headers["x-earshot-source"] == "rollup"
    now, before = of("acme", CURRENT), of("acme", PREVIOUS)
    assert body["current"]["volume"] == len(now) and body["previous"]["volume"] == len(before)
    assert body["previous"]["from"] == iso(PREVIOUS[0]).replace("+00:00", "Z")
    assert body["current"]["net_sentiment"] == pytest.approx(net(now))
    assert body["deltas"]["volume"] == len(now) - len(before)
    assert body["deltas"]["volume_change"] == pytest.approx((len(now) - len(before)) / len(before))
    assert body["deltas"]["net_sentiment"] == pytest.approx(net(now) - net(before))
    assert body["current"]["complaints"] == sum(m.complaint.label for m in now)
    assert sum(body["current"]["sentiment"]["shares"].values()) == pytest.approx(1.0)
    assert body["current"]["emotion"]["counts"]["anger"] == sum(m.emotion.label == "anger" for m in now)
    top = body["current"]["purposes"][0]
    assert top["count"] == max(sum(p in m.purposes for m in now) for p in ("customer_care", "praise"))
    themes = [t["term"] for t in body["current"]["complaint_themes"]]
    assert "refund" in themes and "support never answers" in themes and "support" not in themes
    assert readable(themes, {"acme", "globex"}), themes
    authors = body["current"]["influential_authors"]
    assert authors[0] == {"handle": "bigvoice", "mentions": 1, "followers": 1_000_000, "engagement": 501}
    assert len(body["series"]) == 24 and sum(p["volume"] for p in body["series"]) == len(now)
    raw = client.get("/v1/brands/acme/reputation", params=period_params(source="raw")).json()
    assert {k: v for k, v in raw.items() if k != "source"} == {k: v for k, v in body.items() if k != "source"}


def test_compare_puts_mixes_side_by_side(client):
    body = client.get("/v1/competitors/compare", params=period_params(brands="globex,acme")).json()
    assert [b["brand"] for b in body["brands"]] == ["globex", "acme"]
    for entry in body["brands"]:
        mentions = of(entry["brand"], CURRENT)
        assert entry["volume"] == len(mentions)
        assert entry["sentiment"]["counts"]["negative"] == sum(m.sentiment.label == "negative" for m in mentions)
        assert entry["net_sentiment"] == pytest.approx(net(mentions))


# -- market intelligence ----------------------------------------------------------------------------

def test_a_planted_emerging_topic_is_found_with_examples(client):
    r = client.get("/v1/market/emerging-topics", params={"brand": "acme", "window": "6h", "background": "7d",
                                                         "to": iso(CURRENT[1])})
    assert r.status_code == 200, r.text
    topics = r.json()["topics"]
    phrases = {t["term"]: t for t in topics if t["kind"] == "phrase"}
    tags = {t["term"]: t for t in topics if t["kind"] == "hashtag"}
    # The longest phrase covering "zorblax" replaces it and its shorter phrases: it reads better.
    assert "zorblax gadget launch" in phrases and "zorblax" not in phrases and "zorblax" in tags
    assert readable(list(phrases), {"acme"}), list(phrases)
    assert phrases["zorblax gadget launch"]["count"] == 5 and tags["zorblax"]["background_count"] == 5
    assert 1 <= len(phrases["zorblax gadget launch"]["examples"]) <= 3
    assert all("zorblax" in e["text"] for e in phrases["zorblax gadget launch"]["examples"])
    assert r.json()["total"] == len([m for m in MENTIONS if m.duplicate_of is None
                                     and counted(m, "acme", CURRENT[1] - timedelta(hours=6), CURRENT[1])])


def test_product_feedback_grouped_by_theme(client):
    body = client.get("/v1/market/product-feedback", params=period_params(brand="acme")).json()
    feedback = [m for m in of("acme", CURRENT) if "product_feedback" in m.purposes]
    assert body["total"] == len(feedback) == 6 and body["sentiment"]["negative"] == 6
    assert "battery drains overnight" in {t["term"] for t in body["themes"]}
    assert all(t["examples"] and "battery" in t["examples"][0]["text"] for t in body["themes"]
               if "battery" in t["term"])
    assert body["hashtags"][0]["hashtag"] == "batterylife" and body["hashtags"][0]["count"] == 6
    assert all("battery" in e["text"] for e in body["hashtags"][0]["examples"])


# -- investor relations -----------------------------------------------------------------------------

def test_ir_chatter_is_restricted_to_investor_or_cashtag_posts_with_highlights_and_pages(client, keys):
    ir = {"Authorization": f"Bearer {keys['ir']}"}
    expected = {m.id for m in MENTIONS if "earnings" in m.text and ("investor" in m.purposes or m.entities.cashtags)}
    seen, cursor = [], None
    while True:
        params = {"q": "earnings", "size": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/ir/chatter", params=params, headers=ir)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == len(expected) == 7
        assert {a["handle"]: a["mentions"] for a in body["authors"]} == {"marketwatcher": 5, "fundguy": 2}
        assert body["cashtags"] == [{"cashtag": "ACME", "mentions": 3}]
        for hit in body["hits"]:
            assert "<mark>earnings</mark>" in hit["highlight"] and "<b>" not in hit["highlight"]
        seen += [h["id"] for h in body["hits"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and set(seen) == expected
    escaped = client.get("/v1/ir/chatter", params={"q": "expectations"}, headers=ir).json()["hits"][0]["highlight"]
    assert "&lt;b&gt;again&lt;&#x2F;b&gt;" in escaped or "&lt;b&gt;again&lt;/b&gt;" in escaped


# -- access -------------------------------------------------------------------------------------------

def test_keys_and_roles(own_settings, keys, client):
    with TestClient(create_app(own_settings)) as anonymous:
        assert anonymous.get("/v1/competitors/share-of-voice", params={"brands": "acme"}).status_code == 401
        comms = {"Authorization": f"Bearer {keys['comms']}"}
        care = {"Authorization": f"Bearer {keys['care']}"}
        assert anonymous.get("/v1/brands/acme/reputation", headers=care).status_code == 403
        assert anonymous.get("/v1/market/emerging-topics", headers=care).status_code == 403
        assert anonymous.get("/v1/ir/chatter", headers=comms).status_code == 403
        assert anonymous.get("/v1/brands/acme/reputation", headers=comms).status_code == 200
        spec = anonymous.get("/openapi.json").json()["paths"]
        assert spec["/v1/ir/chatter"]["get"]["x-scopes"] == ["ir:read"]
        assert spec["/v1/competitors/share-of-voice"]["get"]["x-scopes"] == ["trends:read"]
