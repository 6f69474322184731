"""Named listening queries: what a team listens for, as stored and as seeded from ``brands.yaml``.

A ``ListeningQuery`` has an id (slug), a kind (``brand``, ``competitor`` or ``topic``), an
optional brand it belongs to, the query text in the listening language, and a version bumped
on every change (the stream reloads when any (id, version) pair changes). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.enrich.brands import BrandSpec
from pipeline.listening.parser import MAX_QUERY_CHARS, parse

QueryKind = Literal["brand", "competitor", "topic"]
QUERY_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"

_KEYWORD = {"type": "keyword", "ignore_above": 256}
QUERY_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "name": {"type": "text", "fields": {"keyword": _KEYWORD}},
        "kind": _KEYWORD,
        "brand": _KEYWORD,
        "query": {"type": "text", "index": False},
        "enabled": {"type": "boolean"},
        "description": {"type": "text"},
        "seeded": {"type": "boolean"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
        "version": {"type": "long"},
    },
}


class ListeningQuery(BaseModel):
    """One stored listening query (the document in the queries index)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(..., pattern=QUERY_ID, description="Slug; mentions carry it in 'queries'.")
    name: str = Field(..., min_length=1, max_length=200)
    kind: QueryKind = "topic"
    brand: str | None = Field(None, pattern=QUERY_ID, description="The brand a topic query belongs to, if any.")
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, description="In the listening language.")
    enabled: bool = True
    description: str | None = Field(None, max_length=1000)
    seeded: bool = Field(False, description="Created from brands.yaml on first start.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(1, ge=1)

    @field_validator("query")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse(value)  # raises QuerySyntaxError (a ValueError) with position and expectation
        return value


def _quoted(phrase: str) -> str:
    return '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'


def brand_query_text(spec: BrandSpec) -> str:
    """The listening query equivalent to a ``brands.yaml`` entry: its name and aliases as
    phrases, its @handles, #hashtags and $cashtags, ORed."""
    parts = [_quoted(p) for p in dict.fromkeys([spec.name, *spec.aliases]) if p.strip()]
    parts += [f"@{h}" for h in spec.handles] + [f"#{h}" for h in spec.hashtags] + [f"${c}" for c in spec.cashtags]
    return " OR ".join(parts)


def seed_queries(specs: Iterable[BrandSpec], now: datetime) -> list[ListeningQuery]:
    """One query per brand of ``brands.yaml`` (id = the brand id), for a first start."""
    return [
        ListeningQuery(id=spec.id, name=spec.name, kind="competitor" if spec.competitor else "brand",
                       brand=spec.id, query=brand_query_text(spec), seeded=True, created_at=now,
                       updated_at=now, description="Seeded from brands.yaml")
        for spec in specs
    ]


def fingerprint(queries: Iterable[ListeningQuery]) -> frozenset[tuple[str, int, bool]]:
    """What decides whether the stream's matcher must be rebuilt."""
    return frozenset((q.id, q.version, q.enabled) for q in queries)
