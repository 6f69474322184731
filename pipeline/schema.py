"""The data contract: every earshot process reads and writes these records.

``Mention`` is what a connector publishes to ``mentions.raw``; ``EnrichedMention`` is what the
worker publishes to ``mentions.enriched`` and indexes in Elasticsearch. Both carry a
``schema_version``. Fields a producer sends that this version does not know are kept under
``raw`` (forward compatible), never dropped and never an error.

``parse_mention`` is the validator the pipeline runs on every raw record: it returns a
``Mention``, a ``Deletion`` (``{"op": "delete", ...}``: a platform removed the post), or a
``Rejection`` with a human-readable reason (a value, not an exception), so
the worker can send bad records to the dead-letter topic and keep going.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 2  # 2: emotion, complaint, toxicity, irony, purposes, teams, priority, model_version

SentimentLabel = Literal["negative", "neutral", "positive"]
EmotionLabel = Literal["anger", "joy", "optimism", "sadness"]
# "sentiment_only": a language only the multilingual model serves (models/multilingual/): sentiment is
# read, the other heads stay None.
ModelStatus = Literal["ok", "sentiment_only", "unsupported_language"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Author(_Record):
    handle: str | None = Field(None, max_length=256)
    display_name: str | None = Field(None, max_length=512)
    followers: int | None = Field(None, ge=0)
    verified: bool = False


class Metrics(_Record):
    likes: int = Field(0, ge=0)
    shares: int = Field(0, ge=0)
    replies: int = Field(0, ge=0)


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class Mention(_Record):
    """One post that mentions something we listen for, normalised across platforms."""

    schema_version: int = SCHEMA_VERSION
    id: str = Field(..., min_length=1, max_length=512, description="Stable id: '<source>:<native id>'.")
    source: str = Field(..., min_length=1, max_length=64, description="Platform or corpus name.")
    url: str | None = Field(None, max_length=4096)
    author: Author = Field(default_factory=Author)
    text: str = Field(..., description="The post's text, as published.")
    lang: str | None = Field(None, max_length=16, description="ISO 639-1 code if the platform gives one.")
    created_at: datetime = Field(..., description="When the post was published (UTC).")
    created_at_estimated: bool = Field(
        False, description="created_at is a guess (the source gave no readable time: the feed's date or "
                           "when first seen); spike counting and trends leave such mentions out.")
    ingested_at: datetime = Field(..., description="When a connector published it to Kafka (UTC).")
    metrics: Metrics = Field(default_factory=Metrics)
    in_reply_to: str | None = Field(None, max_length=512)
    raw: dict[str, Any] = Field(default_factory=dict, description="Platform fields we do not model.")

    @model_validator(mode="before")
    @classmethod
    def _keep_unknown_fields_under_raw(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        unknown = {k: v for k, v in data.items() if k not in known}
        if not unknown:
            return data
        kept = {k: v for k, v in data.items() if k in known}
        raw = kept.get("raw") or {}
        if not isinstance(raw, dict):
            return data  # let field validation reject the malformed 'raw' with its reason
        kept["raw"] = {**raw, **unknown}
        return kept

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value

    @field_validator("created_at", "ingested_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _utc(value)


class Sentiment(_Record):
    label: SentimentLabel
    score: float = Field(..., ge=0.0, le=1.0, description="Probability of the label, 0..1.")
    negative: float = Field(..., ge=0.0, le=1.0)
    neutral: float = Field(..., ge=0.0, le=1.0)
    positive: float = Field(..., ge=0.0, le=1.0)
    uncertain: bool = Field(False, description="The post reads as ironic: the label may be inverted.")


class Emotion(_Record):
    label: EmotionLabel
    score: float = Field(..., ge=0.0, le=1.0, description="Probability of the label, 0..1.")
    anger: float = Field(..., ge=0.0, le=1.0)
    joy: float = Field(..., ge=0.0, le=1.0)
    optimism: float = Field(..., ge=0.0, le=1.0)
    sadness: float = Field(..., ge=0.0, le=1.0)


class Flag(_Record):
    """A yes/no reading (complaint, offensive, hate, irony): ``label`` is ``score >= 0.5``."""

    label: bool
    score: float = Field(..., ge=0.0, le=1.0, description="Probability of yes, 0..1.")


class PurposeScores(_Record):
    """Probability of each purpose, 0..1 (a post can serve several)."""

    customer_care: float = Field(0.0, ge=0.0, le=1.0)
    sales_lead: float = Field(0.0, ge=0.0, le=1.0)
    product_feedback: float = Field(0.0, ge=0.0, le=1.0)
    praise: float = Field(0.0, ge=0.0, le=1.0)
    press: float = Field(0.0, ge=0.0, le=1.0)
    investor: float = Field(0.0, ge=0.0, le=1.0)
    employer: float = Field(0.0, ge=0.0, le=1.0)
    risk: float = Field(0.0, ge=0.0, le=1.0)
    spam: float = Field(0.0, ge=0.0, le=1.0)


class Spam(_Record):
    """How spam- or bot-like a mention looks (``pipeline/enrich/spam.py``)."""

    score: float = Field(..., ge=0.0, le=1.0, description="0..1; trends leave out >= EARSHOT_SPAM_THRESHOLD.")
    signals: list[str] = Field(default_factory=list, description="Signals that fired, strongest first.")


class Entities(_Record):
    """Sigil-bearing tokens, extracted here because ES's standard analyzer strips the sigils."""

    handles: list[str] = Field(default_factory=list, description="Lower-case, without '@'.")
    hashtags: list[str] = Field(default_factory=list, description="Lower-case, without '#'.")
    cashtags: list[str] = Field(default_factory=list, description="Upper-case, without '$'.")
    urls: list[str] = Field(default_factory=list)


class EnrichedMention(Mention):
    """A validated mention plus what the pipeline understood about it."""

    lang_confidence: float | None = Field(None, ge=0.0, le=1.0)
    # Model readings: None (and model_status "unsupported_language") for posts in a language
    # the models were not trained on, rather than a guess; sentiment only ("sentiment_only") for
    # the languages of the multilingual model. model_version says which model read the post.
    model_status: ModelStatus = "ok"
    model_version: str | None = Field(None, description="'<name>@<version>' of the model that read it.")
    sentiment: Sentiment | None = None
    emotion: Emotion | None = None
    complaint: Flag | None = None
    offensive: Flag | None = None
    hate: Flag | None = None
    irony: Flag | None = None
    purposes: list[str] = Field(default_factory=list, description="What the post is for (see models/tasks.py).")
    purpose_scores: PurposeScores | None = None
    teams: list[str] = Field(default_factory=list, description="Team(s) that own it (pipeline/routing.yaml).")
    priority: float = Field(0.0, ge=0.0, le=100.0, description="reach x negativity x urgency, 0..100.")
    brands: list[str] = Field(default_factory=list, description="Ids of every tracked brand named.")
    competitors: list[str] = Field(default_factory=list, description="Subset of brands that are competitors.")
    queries: list[str] = Field(default_factory=list, description="Ids of the listening queries it matches.")
    simhash: str | None = Field(None, description="64-bit SimHash of the normalised text, 16 hex digits.")
    duplicate_of: str | None = Field(None, description="Id of the first post this one copies (retweet, paste).")
    echoes: int = Field(0, ge=0, description="On a first post: how many near-copies followed it.")
    spam: Spam | None = None
    entities: Entities = Field(default_factory=Entities)
    phrases: list[str] = Field(default_factory=list, description="Candidate keyphrases, 1-3 lower-case words, no stop "
                               "word at an edge, no URL fragment, no word of the named brands "
                               "(pipeline/enrich/phrases.py); what themes and topics count.")
    embedding: list[float] | None = Field(None, description="Unit-length sentence vector (384 floats) of the text as "
                                          "the models read it; None when the models did not read it.")
    enriched_at: datetime | None = None

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready dict stored in Elasticsearch and on ``mentions.enriched``."""
        return self.model_dump(mode="json")


class Deletion(_Record):
    """The platform deleted a post (or its author asked to be forgotten): remove the mention.

    Connectors publish it to ``mentions.raw`` keyed by the mention's id, so it is ordered after
    the post itself on the same partition, all the way to the index.
    """

    schema_version: int = SCHEMA_VERSION
    op: Literal["delete"]
    id: str = Field(..., min_length=1, max_length=512)
    source: str = Field(..., min_length=1, max_length=64)
    requested_at: datetime = Field(..., description="When the connector saw the deletion (UTC).")
    reason: str | None = Field(None, max_length=256, description="The platform's word for it, if any.")

    @field_validator("requested_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _utc(value)


def deletion_record(mention_id: str, source: str, requested_at: datetime, reason: str | None = None) -> dict[str, Any]:
    """The JSON-ready deletion notice a connector publishes."""
    return Deletion(op="delete", id=mention_id, source=source, requested_at=requested_at,
                    reason=reason).model_dump(mode="json")


@dataclass(frozen=True)
class Rejection:
    """Why a raw record was refused; goes to the dead-letter topic with the record."""

    reason: str
    mention_id: str | None = None


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        # Field names come from the sender: cap them, or a hostile key would fill the reason.
        where = ".".join(str(p)[:64] for p in err["loc"])[:200] or "record"
        parts.append(f"{where}: {err['msg'][:200]}")
    return "; ".join(parts)


def parse_mention(
    payload: bytes | str | dict[str, Any],
    *,
    now: datetime,
    max_text_bytes: int = 64 * 1024,
    max_future_skew: timedelta = timedelta(minutes=5),
) -> Mention | Deletion | Rejection:
    """Validate one raw record into a ``Mention``, or say why not.

    ``now`` is passed in (not read from the clock) so the rule "created_at no more than
    ``max_future_skew`` in the future" is a pure function of its inputs.
    """
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(f"not UTF-8: {exc.reason} at byte {exc.start}")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (json.JSONDecodeError, RecursionError) as exc:
            return Rejection(f"malformed JSON: {exc}"[:500])
    if not isinstance(payload, dict):
        return Rejection(f"expected a JSON object, got {type(payload).__name__}")

    raw_id = payload.get("id")
    mention_id = raw_id if isinstance(raw_id, str) else None
    if payload.get("op") == "delete":
        try:
            return Deletion.model_validate(payload)
        except ValidationError as exc:
            return Rejection(f"deletion notice: {_first_error(exc)}", mention_id)
    text = payload.get("text")
    if isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) > max_text_bytes:
        return Rejection(f"text is longer than {max_text_bytes} bytes", mention_id)
    try:
        mention = Mention.model_validate(payload)
    except ValidationError as exc:
        return Rejection(_first_error(exc), mention_id)
    except (RecursionError, TypeError, ValueError) as exc:
        return Rejection(f"invalid record: {exc}"[:500], mention_id)
    if mention.created_at > _utc(now) + max_future_skew:
        return Rejection(
            f"created_at {mention.created_at.isoformat()} is more than "
            f"{int(max_future_skew.total_seconds())} s in the future",
            mention.id,
        )
    return mention
