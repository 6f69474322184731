"""Elasticsearch layout for enriched mentions: template, time partitions, bulk actions.

Mentions live in monthly indices ``<prefix>-mentions-YYYY.MM`` (by ``created_at``), all behind
the read alias ``<prefix>-mentions``; a composable index template gives every new monthly index
its explicit mappings and joins it to the alias. Retention is "drop old monthly indices" (the
minimal ES distribution has no ILM and no delete-by-query). Documents are written with
``_id`` = mention id, so a replay overwrites instead of duplicating.

This module is pure (dicts in, dicts out); ``pipeline/store/mention_sink.py`` does the I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.tasks import PURPOSES
from pipeline.schema import SCHEMA_VERSION
from pipeline.settings import Settings

_TEXT_WITH_KEYWORD = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
}
_KEYWORD = {"type": "keyword", "ignore_above": 512}
_DATE = {"type": "date"}
_PROB = {"type": "half_float"}
_FLAG = {"properties": {"label": {"type": "boolean"}, "score": _PROB}}
EMOTIONS = ("anger", "joy", "optimism", "sadness")
EMBEDDING_DIMS = 384  # the encoder's width (models/weights/*/config.json hidden_size)

MENTION_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "schema_version": {"type": "short"},
        "id": _KEYWORD,
        "source": _KEYWORD,
        "url": {"type": "keyword", "index": False, "doc_values": False},
        "author": {
            "properties": {
                "handle": _KEYWORD,
                "display_name": _TEXT_WITH_KEYWORD,
                "followers": {"type": "long"},
                "verified": {"type": "boolean"},
            }
        },
        # The standard analyzer (the minimal ES has no language analyzers); highlights on it.
        "text": {"type": "text"},
        "lang": _KEYWORD,
        "lang_confidence": _PROB,
        "created_at": _DATE,
        "created_at_estimated": {"type": "boolean"},
        "ingested_at": _DATE,
        "enriched_at": _DATE,
        "metrics": {
            "properties": {
                "likes": {"type": "long"},
                "shares": {"type": "long"},
                "replies": {"type": "long"},
            }
        },
        "in_reply_to": _KEYWORD,
        # Kept for forward compatibility and audit, not searched: platform payloads vary.
        "raw": {"type": "object", "enabled": False},
        "model_status": _KEYWORD,
        "model_version": _KEYWORD,
        "sentiment": {
            "properties": {
                "label": _KEYWORD,
                "score": _PROB,
                "negative": _PROB,
                "neutral": _PROB,
                "positive": _PROB,
                "uncertain": {"type": "boolean"},
            }
        },
        "emotion": {
            "properties": {"label": _KEYWORD, "score": _PROB, **{e: _PROB for e in EMOTIONS}}
        },
        **{flag: _FLAG for flag in ("complaint", "offensive", "hate", "irony")},
        "purposes": _KEYWORD,
        "purpose_scores": {"properties": {p: _PROB for p in PURPOSES}},
        "teams": _KEYWORD,
        "priority": {"type": "float"},
        "brands": _KEYWORD,
        "competitors": _KEYWORD,
        "queries": _KEYWORD,
        "simhash": _KEYWORD,
        "duplicate_of": _KEYWORD,
        "echoes": {"type": "integer"},
        "spam": {"properties": {"score": {"type": "float"}, "signals": _KEYWORD}},
        "entities": {
            "properties": {
                "handles": _KEYWORD,
                "hashtags": _KEYWORD,
                "cashtags": _KEYWORD,
                "urls": {"type": "keyword", "ignore_above": 2048},
            }
        },
        "phrases": {"type": "keyword", "ignore_above": 128},
        # int8_hnsw: a quarter of the float32 memory for the kNN graph, recall barely changed
        # (measured on the minimal 8.19 distribution: the kNN search option with a filter works).
        "embedding": {"type": "dense_vector", "dims": EMBEDDING_DIMS, "index": True, "similarity": "cosine",
                      "index_options": {"type": "int8_hnsw"}},
    },
}


def mentions_template(settings: Settings) -> dict[str, Any]:
    """Body of the composable index template for the monthly mention indices."""
    return {
        "index_patterns": [settings.mentions_index_pattern],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": settings.index_shards,
                "number_of_replicas": settings.index_replicas,
                "refresh_interval": settings.index_refresh_interval,
            },
            "mappings": MENTION_MAPPINGS,
            "aliases": {settings.mentions_alias: {}},
        },
        "_meta": {"owner": "earshot", "schema_version": SCHEMA_VERSION},
    }


def mention_index_name(settings: Settings, created_at: datetime) -> str:
    """Monthly partition of a mention, by its (UTC) publication time."""
    return f"{settings.index_prefix}-mentions-{created_at:%Y.%m}"


def bulk_action(settings: Settings, document: dict[str, Any], created_at: datetime) -> dict[str, Any]:
    """One ``index`` action for ``helpers.async_bulk``: full replace by id (idempotent)."""
    return {
        "_op_type": "index",
        "_index": mention_index_name(settings, created_at),
        "_id": document["id"],
        "_source": document,
    }


# Bulk item statuses worth retrying: the cluster is busy or briefly unavailable.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES
