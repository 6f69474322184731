"""Enrichment of validated mentions: language, entities, brands, models, routing, near-duplicates, spam."""
