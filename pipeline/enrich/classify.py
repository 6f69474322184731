"""``earshot classify``: enrich a JSONL file of texts with the same code the worker runs.

Each input line is a JSON object with ``text`` (required) and ``id`` (optional; the line number
is used and written out otherwise); any other keys are passed through. Each output line is the input object plus:

    lang, sentiment {label, scores}, emotion {label, scores},
    complaint / offensive / hate / irony {label: bool, score}, purposes, teams, priority, model_version

For a post in a language the models do not read, each model field is the string
``"unsupported_language"`` (and ``purposes`` is empty) rather than a guess; for a language only
the multilingual model reads (``model_status`` ``sentiment_only``), sentiment is filled and every
other model field is ``"unsupported_language"``. Bad lines are
reported on stderr with their line number and skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

from pipeline.enrich.enricher import MentionEnricher
from pipeline.schema import EnrichedMention, Mention

UNSUPPORTED = "unsupported_language"
SENTIMENT_ONLY = "sentiment_only"
MODEL_FIELDS = ("sentiment", "emotion", "complaint", "offensive", "hate", "irony")


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


def parse_line(number: int, line: str, now: datetime) -> tuple[dict[str, Any], Mention] | BadLine:
    """One input line -> (the input object, a Mention to enrich), or why it cannot be read."""
    try:
        item = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        return BadLine(number, f"not JSON: {exc}"[:300])
    if not isinstance(item, dict):
        return BadLine(number, f"expected a JSON object, got {type(item).__name__}")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        return BadLine(number, "missing or empty 'text'")
    if "id" not in item:
        item = {"id": number, **item}  # so every output line can be matched to its input
    raw_id = item["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or str(raw_id) == "":
        return BadLine(number, "'id' must be a non-empty string or an integer")
    try:
        mention = Mention(id=str(raw_id), source="classify", text=text, created_at=now, ingested_at=now)
    except ValueError as exc:
        return BadLine(number, str(exc).splitlines()[0][:300])
    return item, mention


def output_record(item: dict[str, Any], enriched: EnrichedMention) -> dict[str, Any]:
    """The input object plus every enrichment field, in the documented shape."""
    out = dict(item)
    out["lang"] = enriched.lang
    if enriched.model_status in (UNSUPPORTED, SENTIMENT_ONLY):
        out.update({name: UNSUPPORTED for name in MODEL_FIELDS})
        if enriched.model_status == SENTIMENT_ONLY and enriched.sentiment is not None:
            s = enriched.sentiment
            out["sentiment"] = {"label": s.label, "scores": {"negative": s.negative, "neutral": s.neutral,
                                                             "positive": s.positive}}
    else:
        s, e = enriched.sentiment, enriched.emotion
        assert s is not None and e is not None
        out["sentiment"] = {"label": s.label, "scores": {"negative": s.negative, "neutral": s.neutral,
                                                         "positive": s.positive}}
        out["emotion"] = {"label": e.label, "scores": {"anger": e.anger, "joy": e.joy, "optimism": e.optimism,
                                                       "sadness": e.sadness}}
        for name in ("complaint", "offensive", "hate", "irony"):
            flag = getattr(enriched, name)
            out[name] = {"label": flag.label, "score": flag.score}
    out["purposes"] = list(enriched.purposes)
    out["teams"] = list(enriched.teams)
    out["priority"] = enriched.priority
    out["model_version"] = enriched.model_version
    return out


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        chunk.append((number, line))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify_stream(enricher: MentionEnricher, source: IO[str], sink: IO[str], errors: IO[str] = sys.stderr,
                    chunk_size: int = 256) -> tuple[int, int]:
    """Classify every line of ``source`` into ``sink``; returns (written, bad lines)."""
    written = bad = 0
    for chunk in _chunks(source, chunk_size):
        now = datetime.now(timezone.utc)
        parsed = []
        for number, line in chunk:
            result = parse_line(number, line, now)
            if isinstance(result, BadLine):
                bad += 1
                print(f"line {result.line}: {result.reason}; skipped", file=errors)
            else:
                parsed.append(result)
        enriched = enricher.enrich([mention for _, mention in parsed], now)
        for (item, _), document in zip(parsed, enriched):
            sink.write(json.dumps(output_record(item, document), ensure_ascii=False) + "\n")
            written += 1
    return written, bad
