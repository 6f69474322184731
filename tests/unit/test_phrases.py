"""Keyphrase extraction in the pipeline and the read side's preference for longer phrases."""

from datetime import datetime, timezone

from pipeline.enrich.brands import BrandMatcher, BrandSpec
from pipeline.enrich.enricher import MentionEnricher
from pipeline.enrich.phrases import STOP_WORDS, URL_FRAGMENTS, brand_words, extract_phrases, prefer_phrases
from pipeline.enrich.routing import RoutingRules
from pipeline.schema import Mention
from tests.unit.test_enrich import Model

UNITED = brand_words(["united", "United Airlines", "UnitedAirlines", "flyunited", "UAL"])
NOISY = [
    "@united lost my luggage again at the gate, the gate agent was rude http://t.co/abc123 &amp; no refund #fail",
    "United Airlines cancelled flight 1234 https://www.united.com/x I'm stuck in Denver!!! www.example.com",
    "Don't fly with them. Worst customer service ever, 3 hours on hold... t.co/xyz RT @someone: of the at this we",
]


def test_no_stop_word_at_a_phrase_edge_no_url_fragment_no_handle_no_number():
    for text in NOISY:
        for phrase in extract_phrases(text, UNITED):
            words = phrase.split()
            assert 1 <= len(words) <= 3
            assert words[0] not in STOP_WORDS and words[-1] not in STOP_WORDS, phrase
            assert not set(words) & URL_FRAGMENTS, phrase
            assert not any(w.isdigit() or "/" in w or "." in w for w in words), phrase
            assert "someone" not in words and "fail" not in words  # a handle and a hashtag are entities


def test_the_brands_own_words_never_appear():
    for text in NOISY:
        assert not any(set(p.split()) & UNITED for p in extract_phrases(text, UNITED))
    assert "united" in extract_phrases("the united states of america")  # only when excluded


def test_phrases_read_as_people_write_them():
    first = extract_phrases(NOISY[0], UNITED)
    assert {"lost my luggage", "gate agent", "refund"} <= set(first)
    assert "my luggage" not in first and "at the gate" not in first
    assert "cancelled flight" in extract_phrases(NOISY[1], UNITED)
    assert "customer service" in extract_phrases(NOISY[2], UNITED)
    # A phrase never spans a clause break.
    assert "rude refund" not in first and "flight denver" not in extract_phrases(NOISY[1], UNITED)


def test_prefer_phrases_drops_a_word_that_a_phrase_covers():
    counted = [{"term": "luggage", "count": 10}, {"term": "lost luggage", "count": 8}, {"term": "gate", "count": 9},
               {"term": "gate agent", "count": 3}, {"term": "refund", "count": 5}]
    assert [t["term"] for t in prefer_phrases(counted, 10)] == ["lost luggage", "gate", "gate agent", "refund"]
    assert [t["term"] for t in prefer_phrases(counted, 2)] == ["lost luggage", "gate"]
    # "gate" is not inside "delegate": whole words only.
    assert prefer_phrases([{"term": "gate", "count": 2}, {"term": "delegate", "count": 2}], 5)[0]["term"] == "gate"


def test_the_enricher_stores_phrases_without_the_named_brands():
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    brands = BrandMatcher([BrandSpec(id="united", name="United Airlines", handles=["united"], hashtags=["flyunited"]),
                           BrandSpec(id="delta", name="Delta", competitor=True)])
    enricher = MentionEnricher(brands, Model(), RoutingRules.default())
    out = enricher.enrich([Mention(id="t:1", source="t", text="United Airlines lost my luggage, Delta never did",
                                   lang="en", created_at=now, ingested_at=now),
                           Mention(id="t:2", source="t", text="Ceci est un message en français, assez long",
                                   lang="fr", created_at=now, ingested_at=now)], now)
    assert "lost my luggage" in out[0].phrases
    assert not any({"united", "airlines", "delta"} & set(p.split()) for p in out[0].phrases)
    assert out[1].phrases == []  # English stop words: only for posts the models read
