"""Readable themes, stories and "more like this" over real Elasticsearch, with the real pipeline.

Posts about five things (a planted lost-luggage cluster in Denver, wifi, cabin crew, food, and an
emerging topic) are enriched by the real ``MentionEnricher`` (the shipped model: sentence vectors,
sentiment, complaint flags; keyphrases) and indexed with the real sink in an index prefix of their
own; the API then has to find the planted posts as one story and as each other's nearest neighbours.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from models.enricher import Enricher
from pipeline.enrich.brands import BrandMatcher, BrandSpec
from pipeline.enrich.enricher import MentionEnricher
from pipeline.enrich.phrases import STOP_WORDS, URL_FRAGMENTS
from pipeline.enrich.routing import RoutingRules
from pipeline.schema import Author, Mention
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client
from tests.conftest import create_api_key

pytestmark = pytest.mark.services

T0 = datetime(2026, 9, 14, tzinfo=timezone.utc)
CURRENT = (T0 + timedelta(hours=24), T0 + timedelta(hours=48))
LUGGAGE = [
    "@acmeair lost my luggage at the denver baggage claim, nobody can find my bag https://t.co/a1",
    "my suitcase never showed up at baggage claim in denver, thanks acme air",
    "third hour waiting at baggage claim in denver for my lost luggage &amp; still nothing from acme air",
    "acme air misplaced my checked bag on the denver flight, luggage still missing",
    "lost luggage again! acme air can't tell me where my suitcase is http://t.co/xyz",
    "baggage claim in denver is chaos, half the flight's luggage is lost @acmeair",
    "still no sign of my bag, the acme air lost luggage desk in denver is useless",
    "acme air lost both our suitcases, the baggage office in denver has no idea",
]
OTHERS = {
    "wifi": ["the inflight wifi on acme air never works, paid for nothing",
             "wifi on board dropped every five minutes, @acmeair please fix your internet",
             "acme air wifi was so slow I couldn't even load my email",
             "paid twelve dollars for acme air inflight internet and it never connected",
             "onboard wifi down again on my acme air flight, no connection the whole trip",
             "acme air's wifi is a joke, the internet kept disconnecting over the atlantic"],
    "crew": ["shoutout to the acme air flight attendants, the crew was wonderful and kind",
             "acme air cabin crew made my kid's first flight amazing, so friendly",
             "the flight attendants on @acmeair today were lovely, best service in years",
             "huge thanks to the acme air crew who helped my grandmother board",
             "acme air attendants were cheerful and attentive the entire flight",
             "kudos to the acme air cabin crew, professional and warm"],
    "food": ["acme air served the best pretzels and coffee on my morning flight",
             "the meal on acme air was cold and tasteless, sad sandwich",
             "acme air snack box was surprisingly tasty, loved the cookies",
             "inflight food on @acmeair has gotten worse, soggy pasta again",
             "acme air's new breakfast menu is great, fresh fruit and hot coffee"],
}
EARLIER = [LUGGAGE[0].replace("denver", "boston"), *OTHERS["wifi"][:3], *OTHERS["crew"][:3]]
COPY_ID, OTHER_BRAND_ID = "stories:copy", "stories:globex"


def build() -> list:
    brands = BrandMatcher([BrandSpec(id="acme", name="Acme Air", aliases=["AcmeAir"], handles=["acmeair"]),
                           BrandSpec(id="globex", name="Globex", handles=["globex"], competitor=True)])
    enricher = MentionEnricher(brands, Enricher.load("minilm-l6", threads=1), RoutingRules.default())
    posts: list[tuple[str, str, datetime]] = []
    for i, text in enumerate(LUGGAGE):
        posts.append((f"stories:luggage{i}", text, CURRENT[0] + timedelta(hours=18, minutes=20 * i)))
    for topic, texts in OTHERS.items():
        for i, text in enumerate(texts):
            posts.append((f"stories:{topic}{i}", text, CURRENT[0] + timedelta(hours=2 * i + 1, minutes=7)))
    for i, text in enumerate(EARLIER):
        posts.append((f"stories:earlier{i}", text, T0 + timedelta(hours=2 * i + 1)))
    posts.append((COPY_ID, LUGGAGE[0], CURRENT[0] + timedelta(hours=23)))
    posts.append((OTHER_BRAND_ID, "@globex lost my luggage at the denver baggage claim, my bag is gone",
                  CURRENT[0] + timedelta(hours=20)))
    mentions = [Mention(id=i, source="storiestest", text=t, lang="en", created_at=at, ingested_at=at,
                        author=Author(handle=f"user{n}", followers=10 * n)) for n, (i, t, at) in enumerate(posts)]
    enriched = enricher.enrich(mentions, CURRENT[1])
    return [m.model_copy(update={"duplicate_of": "stories:luggage0"}) if m.id == COPY_ID else m for m in enriched]


MENTIONS = build()


async def _load(settings) -> None:
    es = make_es_client(settings)
    try:
        await ensure_mentions_layout(es, settings)
        assert await MentionSink(es, settings).write([(m.to_document(), m.created_at) for m in MENTIONS]) == []
        await es.indices.refresh(index=settings.mentions_alias)
    finally:
        await es.close()


@pytest.fixture(scope="module")
def client(settings):
    own = settings.model_copy(update={"index_prefix": f"{settings.index_prefix}-stories"})
    asyncio.run(_load(own))
    with TestClient(create_app(own), headers={"Authorization": f"Bearer {create_api_key(own, 'admin')}"}) as c:
        yield c


def period(**extra) -> dict[str, str]:
    return {"from": CURRENT[0].isoformat(), "to": CURRENT[1].isoformat(), **extra}


def readable(term: str) -> bool:
    words = term.split()
    return (words[0] not in STOP_WORDS and words[-1] not in STOP_WORDS and not set(words) & URL_FRAGMENTS
            and not set(words) & {"acme", "air", "acmeair", "globex"})


def test_the_pipeline_stores_vectors_and_phrases():
    first = MENTIONS[0]
    assert first.embedding is not None and len(first.embedding) == 384
    assert sum(x * x for x in first.embedding) == pytest.approx(1.0, abs=1e-3)
    assert "baggage claim" in first.phrases and all(readable(p) for m in MENTIONS for p in m.phrases)


def test_themes_and_topics_read_as_phrases(client):
    themes = client.get("/v1/brands/acme/reputation", params=period()).json()["current"]["complaint_themes"]
    topics = client.get("/v1/market/emerging-topics", params={"brand": "acme", "window": "6h", "background": "2d",
                                                               "to": CURRENT[1].isoformat()}).json()["topics"]
    terms = [t["term"] for t in themes] + [t["term"] for t in topics if t["kind"] == "phrase"]
    assert terms and all(readable(t) for t in terms), terms
    assert {"baggage claim", "lost luggage"} & {t["term"] for t in topics}, topics


def test_the_planted_cluster_is_one_story(client):
    r = client.get("/v1/brands/acme/stories", params=period(k=4))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["volume"] == body["sampled"] == len(LUGGAGE) + sum(map(len, OTHERS.values()))  # no copy, no globex
    planted = {f"stories:luggage{i}" for i in range(len(LUGGAGE))}
    story = max(body["stories"], key=lambda s: len(planted & set(s["ids"])))
    assert len(planted & set(story["ids"])) >= 7 and len(set(story["ids"]) - planted) <= 2, story
    assert story["label"] and readable(story["label"]), story["label"]
    assert set(story["label"].split()) & {"luggage", "baggage", "claim", "denver", "bag", "suitcase"}
    assert len(story["representatives"]) == 2
    assert len({p["author"]["handle"] for p in story["representatives"]}) == 2
    assert sum(story["sentiment"].values()) == story["size"] == len(story["ids"])
    assert story["previous_volume"] <= 1 and story["volume"] == story["size"]
    assert sum(s["size"] for s in body["stories"]) == body["sampled"] and len(body["stories"]) <= 4


def test_more_like_this_finds_the_planted_neighbours_first(client):
    r = client.get("/v1/mentions/stories:luggage0/similar", params=period(brand="acme", size=5))
    assert r.status_code == 200, r.text
    found = [p["id"] for p in r.json()["similar"]]
    assert len(found) == 5 and all(i.startswith("stories:luggage") for i in found), found
    assert "stories:luggage0" not in found and COPY_ID not in found and OTHER_BRAND_ID not in found
    sims = [p["similarity"] for p in r.json()["similar"]]
    assert sims == sorted(sims, reverse=True) and -1 <= sims[-1] <= sims[0] <= 1
    anywhere = [p["id"] for p in client.get("/v1/mentions/stories:luggage0/similar", params={"size": 3}).json()["similar"]]
    assert OTHER_BRAND_ID in anywhere  # no brand filter: the competitor's near-identical post is near
    earlier = client.get("/v1/mentions/stories:luggage0/similar",
                         params={"to": CURRENT[0].isoformat(), "size": 3}).json()["similar"]
    assert earlier[0]["id"] == "stories:earlier0"  # the time filter applies inside the kNN search
    assert client.get("/v1/mentions/stories:nope/similar").status_code == 404


def test_scopes(client, settings):
    spec = client.get("/openapi.json").json()["paths"]
    assert spec["/v1/brands/{brand}/stories"]["get"]["x-scopes"] == ["trends:read"]
    assert spec["/v1/mentions/{mention_id}/similar"]["get"]["x-scopes"] == ["mentions:read"]
    assert "404" in spec["/v1/mentions/{mention_id}/similar"]["get"]["responses"]
