"""Turn a batch of validated ``Mention``s into ``EnrichedMention``s.

The ``MentionEnricher`` holds the loaded resources (brand matcher, the models' ``Enricher``,
routing rules) and is called once per batch: the texts the models can read go through one
batched model call, everything else is per mention. No I/O. The worker's agent and
``earshot classify`` both call it, so they produce the same fields.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Protocol

from models.enricher import TextEnrichment
from pipeline.enrich.brands import BrandMatcher
from pipeline.enrich.entities import extract_entities
from pipeline.enrich.language import LanguageGuess, detect_language
from pipeline.enrich.routing import RoutingInput, RoutingRules
from pipeline.schema import Emotion, EnrichedMention, Flag, Mention, PurposeScores, Sentiment

log = logging.getLogger(__name__)

# A guess this unsure about a short post is no reason to withhold the models: fastText often
# misreads short English tweets as another language with low confidence.
UNSURE_LANGUAGE_CONFIDENCE = 0.5


class TextModel(Protocol):
    """What the models expose (``models.enricher.Enricher``): texts in, readings out."""

    model_version: str

    def predict(self, texts: list[str]) -> list[TextEnrichment]: ...


def models_can_read(declared: str | None, guess: LanguageGuess, supported: frozenset[str]) -> bool:
    """Whether the models (trained on English) should read a post in this language.

    A platform-declared language is trusted; a guess counts only when it is confident, and a
    post too short to tell is read (emoji and names carry sentiment in any language).
    """
    if declared:
        return declared.split("-")[0].lower() in supported
    if guess.lang is None or guess.confidence < UNSURE_LANGUAGE_CONFIDENCE:
        return True
    return guess.lang in supported


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
        **flags,
    )


class MentionEnricher:
    def __init__(self, brands: BrandMatcher, model: TextModel, routing: RoutingRules,
                 model_languages: frozenset[str] = frozenset({"en"})):
        self.brands = brands
        self.model = model
        self.routing = routing
        self.model_languages = model_languages

    def enrich(self, mentions: list[Mention], now: datetime | None = None) -> list[EnrichedMention]:
        """Enrich a batch; the output is in input order, one per input."""
        if not mentions:
            return []
        now = now or datetime.now(timezone.utc)
        guesses = [detect_language(m.text) for m in mentions]
        readable = [i for i, (m, g) in enumerate(zip(mentions, guesses)) if models_can_read(m.lang, g, self.model_languages)]
        readings = dict(zip(readable, self.model.predict([mentions[i].text for i in readable]))) if readable else {}
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
                           RoutingRules.from_yaml(settings.routing_file), frozenset(settings.model_languages))
