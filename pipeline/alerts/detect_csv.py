"""``earshot detect``: the stream's spike detector over a ``timestamp,value`` CSV.

Input: one row per bucket (a count), any bucket width (inferred: the most common step), ISO
timestamps (naive = UTC) of each bucket's *start*. Output: one row per incident opened,
``timestamp,severity,score,observed,expected``, where ``timestamp`` is the *end* of the bucket
whose data raised it; escalations, updates and re-openings within the cooldown write no row.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from typing import IO

from pipeline.alerts.detector import DetectorConfig, IncidentEvent, SeriesDetector, infer_bucket_s

OUTPUT_FIELDS = ("timestamp", "severity", "score", "observed", "expected")


class BadSeries(ValueError):
    """The input CSV cannot be read as a series; the message names the line."""


def read_series(source: IO[str]) -> tuple[list[float], list[float], bool]:
    """(bucket starts in epoch s, values, whether timestamps were naive) from a CSV."""
    reader = csv.DictReader(source)
    if not reader.fieldnames or not {"timestamp", "value"} <= {f.strip() for f in reader.fieldnames}:
        raise BadSeries(f"expected a header with 'timestamp,value', got {reader.fieldnames}")
    timestamps, values, naive = [], [], True
    for line, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            when = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
            value = float(row["value"])
        except ValueError as exc:
            raise BadSeries(f"line {line}: {exc}") from exc
        if value < 0 or value != value:
            raise BadSeries(f"line {line}: value must be a count >= 0, got {row['value']!r}")
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        else:
            naive = False
        timestamps.append(when.timestamp())
        values.append(value)
    if len(timestamps) < 2:
        raise BadSeries("need at least two rows")
    return timestamps, values, naive


def opened_incidents(timestamps: list[float], values: list[float], tz: str = "UTC",
                     config: DetectorConfig | None = None) -> list[IncidentEvent]:
    """Run the detector over the series, keep the events that open a new incident."""
    config = config or DetectorConfig(bucket_s=infer_bucket_s(timestamps))
    detector = SeriesDetector(config=config, tz=tz)
    opened: list[IncidentEvent] = []
    for ts, value in sorted(zip(timestamps, values)):
        opened += [e for e in detector.observe(ts, value) if e.kind == "opened"]
    return opened


def write_incidents(events: list[IncidentEvent], sink: IO[str], naive: bool) -> None:
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(OUTPUT_FIELDS)
    for event in events:
        end = datetime.fromtimestamp(event.reading.bucket_end, timezone.utc)
        stamp = end.strftime("%Y-%m-%d %H:%M:%S") if naive else end.isoformat()
        r = event.reading
        writer.writerow([stamp, event.severity, f"{r.score:.2f}", f"{r.observed:g}", f"{r.expected:.2f}"])
