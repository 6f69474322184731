"""Match a post against the brands and competitors a user tracks (``brands.yaml``).

A brand is named by its names/aliases (case-insensitive, whole words only: "Delta" matches
"delta's flight" but not "Deltaville"), its @handles, #hashtags and $cashtags. Handles, hashtags
and cashtags are compared with the entities extracted from the text, so ``@united`` names the
brand even though the bare word "united" is deliberately not an alias (too ambiguous).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.schema import Entities


class BrandSpec(BaseModel):
    """One tracked brand as written in ``brands.yaml``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str
    aliases: list[str] = Field(default_factory=list)
    handles: list[str] = Field(default_factory=list)
    hashtags: list[str] = Field(default_factory=list)
    cashtags: list[str] = Field(default_factory=list)
    competitor: bool = Field(False, description="True for a competitor, False for an own brand.")
    timezone: str = Field("UTC", description="IANA zone whose hours and weekdays its spike baselines follow.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)") from exc
        return value

    @field_validator("handles", "hashtags")
    @classmethod
    def _strip_sigil_lower(cls, values: list[str]) -> list[str]:
        return [v.lstrip("@#").lower() for v in values]

    @field_validator("cashtags")
    @classmethod
    def _strip_dollar_upper(cls, values: list[str]) -> list[str]:
        return [v.lstrip("$").upper() for v in values]


class BrandsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    brands: list[BrandSpec]


@dataclass(frozen=True)
class BrandMatch:
    brands: list[str] = field(default_factory=list)
    competitors: list[str] = field(default_factory=list)


def _phrase_pattern(phrase: str) -> str:
    # Words inside a phrase may be separated by any run of spaces; the phrase must not be
    # glued to other word characters or to a sigil (that case is the entity's job).
    words = [re.escape(w) for w in phrase.split()]
    return r"(?<![\w@#$])" + r"\s+".join(words) + r"(?!\w)"


class BrandMatcher:
    """Compiled matcher for a list of brands; ``match`` is pure and thread-safe."""

    def __init__(self, specs: list[BrandSpec]):
        self.specs = specs
        self._by_id = {s.id: s for s in specs}
        if len(self._by_id) != len(specs):
            raise ValueError("brand ids in brands.yaml must be unique")
        # One alternation per brand: one regex scan per brand per post.
        self._name_patterns: dict[str, re.Pattern[str]] = {}
        for spec in specs:
            phrases = [p for p in {spec.name, *spec.aliases} if p.strip()]
            if phrases:
                # Longest first so "American Airlines" wins over "American" inside one brand.
                alternation = "|".join(_phrase_pattern(p) for p in sorted(phrases, key=len, reverse=True))
                self._name_patterns[spec.id] = re.compile(alternation, re.IGNORECASE)
        self._handle = {h: s.id for s in specs for h in s.handles}
        self._hashtag = {h: s.id for s in specs for h in s.hashtags}
        self._cashtag = {c: s.id for s in specs for c in s.cashtags}

    @classmethod
    def from_yaml(cls, path: Path) -> "BrandMatcher":
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls(BrandsFile.model_validate(data).brands)

    def timezone(self, brand_id: str) -> str:
        """IANA zone of a tracked brand's daily rhythm (UTC for an unknown id)."""
        spec = self._by_id.get(brand_id)
        return spec.timezone if spec else "UTC"

    def is_competitor(self, brand_id: str) -> bool:
        return self._by_id[brand_id].competitor

    def match(self, text: str, entities: Entities) -> BrandMatch:
        """Brand ids named in ``text`` (in brands.yaml order), and which are competitors."""
        found: set[str] = set()
        found.update(self._handle[h] for h in entities.handles if h in self._handle)
        found.update(self._hashtag[h] for h in entities.hashtags if h in self._hashtag)
        found.update(self._cashtag[c] for c in entities.cashtags if c in self._cashtag)
        for brand_id, pattern in self._name_patterns.items():
            if brand_id not in found and pattern.search(text):
                found.add(brand_id)
        ordered = [s.id for s in self.specs if s.id in found]
        return BrandMatch(
            brands=ordered,
            competitors=[b for b in ordered if self._by_id[b].competitor],
        )
