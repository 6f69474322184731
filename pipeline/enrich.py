"""Turn a batch of validated ``Mention``s into ``EnrichedMention``s.

The ``Enricher`` holds the loaded resources (brand matcher, sentiment model) and is called
once per batch: one model forward pass per batch, everything else per mention. No I/O.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Protocol

from models.text import normalise_for_model
from pipeline.brands import BrandMatcher
from pipeline.entities import extract_entities
from pipeline.language import detect_language
from pipeline.schema import EnrichedMention, Mention, Sentiment

log = logging.getLogger(__name__)


class SentimentPredictor(Protocol):
    name: str

    def predict(self, texts: list[str], batch_size: int = 64) -> list: ...


class Enricher:
    def __init__(self, brands: BrandMatcher, sentiment: SentimentPredictor, batch_size: int = 64):
        self.brands = brands
        self.sentiment = sentiment
        self.batch_size = batch_size

    def enrich(self, mentions: list[Mention], now: datetime | None = None) -> list[EnrichedMention]:
        """Enrich a batch; the output is in input order, one per input."""
        if not mentions:
            return []
        now = now or datetime.now(timezone.utc)
        sentiments = self.sentiment.predict([normalise_for_model(m.text) for m in mentions], self.batch_size)
        model_name = self.sentiment.name
        enriched = []
        for mention, sentiment in zip(mentions, sentiments):
            entities = extract_entities(mention.text)
            matched = self.brands.match(mention.text, entities)
            guess = detect_language(mention.text)
            fields = mention.model_dump()
            fields.update(
                # A platform-declared language wins; otherwise our guess.
                lang=mention.lang or guess.lang,
                lang_confidence=None if mention.lang else guess.confidence,
                sentiment=Sentiment(
                    label=sentiment.label,
                    score=sentiment.score,
                    negative=sentiment.negative,
                    neutral=sentiment.neutral,
                    positive=sentiment.positive,
                    model=model_name,
                ),
                brands=matched.brands,
                competitors=matched.competitors,
                entities=entities,
                enriched_at=now,
            )
            enriched.append(EnrichedMention(**fields))
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
