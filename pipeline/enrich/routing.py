"""Route a mention to the team(s) that own it, and score how urgently it needs them (``routing.yaml``).

Teams come from the mention's purposes (the model's multi-label output): each purpose names
its teams in ``routing.yaml``, a per-language override can replace them (a Spanish care desk),
and a per-brand override beats both (a subsidiary's own care team). A mention that names a
brand but has no purpose goes to ``fallback_teams``; one with neither goes to nobody.

Abuse needs no reply: a spam-only mention, a hateful one, or an offensive one that is not a
complaint (complaint probability below 0.5), each without the ``risk`` purpose, gets none of the
teams that answer customers (those the ``customer_care`` and ``sales_lead`` purposes route to),
while every other team, risk's included, still gets it. An angry customer who swears is still a
customer: an offensive complaint is answered.

Priority, in points from 0 to 100 (rounded to 2 decimals), is ``100 * reach * negativity * urgency``:

- reach, 0.1..1 (no unit): ``0.1 + 0.9 * log10(1 + audience) / 7``, clamped, where audience (people)
  is ``followers + 20 * shares + 5 * replies + likes``; an audience of about 10 million saturates.
- negativity, 0.25..1: ``0.25 + 0.75 * max(negative, complaint)`` (each a 0..1 probability, None
  as 0), so a neutral sales lead still counts and a furious complaint counts fully.
- urgency, 0..1: the highest urgency among the mention's purposes (``fallback_urgency`` for a
  brand-only mention); spam alone scores 0.

The constants (7 decades, the weights, the floors) are under ``priority:`` in ``routing.yaml``.
``route`` is pure and thread-safe; only ``from_yaml`` reads a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from models.tasks import PURPOSES

# The purpose head's labels, in the model's order: one list, in models/tasks.py.
Purpose = Literal[PURPOSES]  # type: ignore[valid-type]

# The built-in teams; routing.yaml may add its own ids (a subsidiary's care desk).
TEAMS = ("customer_care", "marketing_pr", "sales", "product", "investor_relations", "hr", "legal_crisis")

# P(complaint) from which an offensive post is an angry customer rather than a troll.
COMPLAINT_THRESHOLD = 0.5

# Purposes whose teams reply to the author: the ones that abuse and spam must not reach.
REPLY_PURPOSES: tuple[str, ...] = ("customer_care", "sales_lead")

DEFAULT_RULES_FILE = Path(__file__).resolve().parents[1] / "routing.yaml"  # user config stays at pipeline/

TeamId = str  # any non-empty id the user chooses; the built-in ones are TEAMS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PurposeRoute(_Strict):
    """Where one purpose goes by default, and how urgent it is (0..1)."""

    teams: list[TeamId]
    urgency: float = Field(..., ge=0.0, le=1.0)

    @field_validator("teams")
    @classmethod
    def _non_empty_ids(cls, teams: list[str]) -> list[str]:
        return _check_team_ids(teams)


class AudienceWeights(_Strict):
    """People reached per follower, like, share and reply (a share reaches the sharer's followers)."""

    followers: float = Field(1.0, ge=0.0)
    likes: float = Field(1.0, ge=0.0)
    shares: float = Field(20.0, ge=0.0)
    replies: float = Field(5.0, ge=0.0)


class PriorityParams(_Strict):
    """The constants of the priority score (see the module docstring)."""

    decades: float = Field(7.0, gt=0.0, description="log10 span of audience from reach_floor to 1.")
    reach_floor: float = Field(0.1, gt=0.0, le=1.0)
    negativity_floor: float = Field(0.25, ge=0.0, le=1.0)
    audience_weights: AudienceWeights = Field(default_factory=AudienceWeights)


# purpose -> teams, replacing the default teams of that purpose
TeamOverrides = dict[Purpose, list[TeamId]]


def _default_alert_teams() -> dict[str, list[str]]:
    return {"volume": ["legal_crisis", "marketing_pr"], "negative": ["legal_crisis", "marketing_pr"],
            "complaint": ["customer_care", "legal_crisis"], "risk": ["legal_crisis", "marketing_pr"]}


class RoutingFile(_Strict):
    """``routing.yaml`` as written by the user."""

    purposes: dict[Purpose, PurposeRoute]
    fallback_teams: list[TeamId] = Field(default_factory=lambda: ["marketing_pr"])
    fallback_urgency: float = Field(0.1, ge=0.0, le=1.0)
    brand_overrides: dict[str, TeamOverrides] = Field(default_factory=dict)
    language_overrides: dict[str, TeamOverrides] = Field(default_factory=dict)
    priority: PriorityParams = Field(default_factory=PriorityParams)
    alerts: dict[Literal["volume", "negative", "complaint", "risk"], list[TeamId]] = Field(
        default_factory=_default_alert_teams, description="Spike signal -> teams its alerts go to.")
    alert_brand_overrides: dict[str, dict[Literal["volume", "negative", "complaint", "risk"], list[TeamId]]] = Field(
        default_factory=dict, description="Per brand: replace a signal's alert teams.")

    @field_validator("purposes")
    @classmethod
    def _every_purpose_routed(cls, purposes: dict[str, PurposeRoute]) -> dict[str, PurposeRoute]:
        # A purpose left out would silently route nowhere; make the user say so ("teams: []").
        missing = [p for p in PURPOSES if p not in purposes]
        if missing:
            raise ValueError(f"every purpose needs an entry, missing: {', '.join(missing)}")
        return purposes

    @field_validator("fallback_teams")
    @classmethod
    def _fallback_ids(cls, teams: list[str]) -> list[str]:
        return _check_team_ids(teams)

    @field_validator("brand_overrides", "language_overrides")
    @classmethod
    def _override_ids(cls, overrides: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
        for by_purpose in overrides.values():
            for teams in by_purpose.values():
                _check_team_ids(teams)
        return overrides

    @field_validator("language_overrides")
    @classmethod
    def _lower_case_languages(cls, overrides: dict[str, TeamOverrides]) -> dict[str, TeamOverrides]:
        return {lang.lower(): teams for lang, teams in overrides.items()}


def _check_team_ids(teams: list[str]) -> list[str]:
    blank = [t for t in teams if not t.strip()]
    if blank:
        raise ValueError("team ids must be non-empty")
    return teams


def _describe(error: ErrorDetails) -> str:
    """One validation error as ``where: what``, naming a bad mapping key plainly."""
    loc = [str(part) for part in error["loc"]]
    if loc and loc[-1] == "[key]":
        # pydantic reports a bad dict key at "<key>.[key]"; the only keys checked are purposes.
        return f"{'.'.join(loc[:-1])}: unknown purpose {error['input']!r}, expected one of {', '.join(PURPOSES)}"
    return f"{'.'.join(loc) or '(top level)'}: {error['msg']}"


@dataclass(frozen=True)
class RoutingInput:
    """What routing needs to know about one enriched mention.

    ``negative`` and ``complaint`` are 0..1 probabilities, None where the models do not support
    the language (scored as 0). ``followers`` is None when the platform does not say.
    """

    purposes: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    lang: str | None = None
    negative: float | None = None
    complaint: float | None = None
    offensive: bool = False
    hate: bool = False
    followers: int | None = None
    likes: int = 0
    shares: int = 0
    replies: int = 0

    def __post_init__(self) -> None:
        unknown = [p for p in self.purposes if p not in PURPOSES]
        if unknown:
            raise ValueError(f"unknown purpose(s) {unknown}; known: {', '.join(PURPOSES)}")

    @property
    def spam_only(self) -> bool:
        return set(self.purposes) == {"spam"}

    @property
    def needs_reply(self) -> bool:
        """False for spam alone and for abuse that is not a risk: trolls are not answered.

        Offensive language inside a complaint is not trolling (the offensive head also fires on
        furious customers), so it only counts as abuse when the post is not a complaint."""
        abusive = self.hate or (self.offensive and (self.complaint or 0.0) < COMPLAINT_THRESHOLD)
        return not (self.spam_only or (abusive and "risk" not in self.purposes))


@dataclass(frozen=True)
class Route:
    teams: tuple[str, ...]  # sorted, de-duplicated
    priority: float  # points, 0..100


def reach(followers: int | None, likes: int, shares: int, replies: int, params: PriorityParams) -> float:
    """How many people a post can reach, on a log scale from ``reach_floor`` to 1 (no unit)."""
    w = params.audience_weights
    audience = w.followers * (followers or 0) + w.likes * likes + w.shares * shares + w.replies * replies
    # Counts are validated >= 0 upstream; the max keeps log10 defined whatever a caller passes.
    decades_reached = math.log10(1.0 + max(0.0, audience)) / params.decades
    floor = params.reach_floor
    return min(1.0, max(floor, floor + (1.0 - floor) * decades_reached))


def negativity(negative: float | None, complaint: float | None, params: PriorityParams) -> float:
    """How badly the author feels, ``negativity_floor``..1: the stronger of the two signals."""
    signal = min(1.0, max(0.0, negative or 0.0, complaint or 0.0))
    floor = params.negativity_floor
    return floor + (1.0 - floor) * signal


def priority(reach_score: float, negativity_score: float, urgency: float) -> float:
    """``100 * reach * negativity * urgency`` in points, clamped to 0..100, rounded to 2 decimals."""
    return round(min(100.0, max(0.0, 100.0 * reach_score * negativity_score * urgency)), 2)


class RoutingRules:
    """Compiled ``routing.yaml``; ``route`` is pure and thread-safe."""

    def __init__(self, spec: RoutingFile):
        self.spec = spec

    @classmethod
    def from_yaml(cls, path: Path) -> "RoutingRules":
        """Load and validate a rules file; a malformed one raises ValueError naming the file and key."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        try:
            return cls(RoutingFile.model_validate(data))
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            raise ValueError(f"{path}: invalid routing rules: {problems}") from exc

    @classmethod
    def default(cls) -> "RoutingRules":
        """The rules shipped in ``pipeline/routing.yaml``."""
        return cls.from_yaml(DEFAULT_RULES_FILE)

    def teams_for(self, purpose: str, brand: str | None, lang: str | None) -> tuple[str, ...]:
        """Teams owning ``purpose`` for this brand and language: brand override, else language, else default."""
        by_brand = self.spec.brand_overrides.get(brand, {}) if brand else {}
        if purpose in by_brand:
            return tuple(by_brand[purpose])
        by_lang = self.spec.language_overrides.get(lang.lower(), {}) if lang else {}
        if purpose in by_lang:
            return tuple(by_lang[purpose])
        return tuple(self.spec.purposes[purpose].teams)

    def alert_teams(self, brand: str, signal: str) -> tuple[str, ...]:
        """Teams a spike alert of ``signal`` on ``brand`` goes to (brand override first)."""
        override = self.spec.alert_brand_overrides.get(brand, {})
        if signal in override:
            return tuple(override[signal])
        return tuple(self.spec.alerts.get(signal, ()))

    def route(self, item: RoutingInput) -> Route:
        """The teams that own ``item`` (union over its brands) and its priority (points, 0..100)."""
        if not item.purposes and not item.brands:
            return Route(teams=(), priority=0.0)
        teams: set[str] = set()
        # Each brand routes on its own overrides; a brand-less mention routes on language/default.
        for brand in item.brands or (None,):
            if item.purposes:
                owned = {t for p in item.purposes for t in self.teams_for(p, brand, item.lang)}
            else:
                owned = set(self.spec.fallback_teams)
            if not item.needs_reply:
                owned -= {t for p in REPLY_PURPOSES for t in self.teams_for(p, brand, item.lang)}
            teams |= owned
        return Route(teams=tuple(sorted(teams)), priority=self._priority(item))

    def _priority(self, item: RoutingInput) -> float:
        if item.spam_only:
            return 0.0
        if item.purposes:
            urgency = max(self.spec.purposes[p].urgency for p in item.purposes)
        else:
            urgency = self.spec.fallback_urgency
        params = self.spec.priority
        return priority(
            reach(item.followers, item.likes, item.shares, item.replies, params),
            negativity(item.negative, item.complaint, params),
            urgency,
        )
