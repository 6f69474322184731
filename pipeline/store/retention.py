"""Data retention: drop dated indices whose every document is older than the retention period.

The minimal Elasticsearch has no ILM and no delete-by-query, so retention works on whole time
partitions: a family of dated indices (``<prefix>-mentions-YYYY.MM`` behind the read alias, and
``<prefix>-audit-YYYY.MM`` or ``-YYYY.MM.DD`` if the audit log is dated) loses an index once the
newest document it *could* hold (the last instant of its month or day) is older than
``now - retention_days``. Dropping an index also drops it from the alias; the rest keep serving.

Alerts live in one undated index (``<prefix>-alerts``, one small document per incident) and are
kept: they are the incident history teams compare against. The example posts an alert embeds
(text, author handle) are personal data, so they follow the mentions' retention instead: they are
stripped from alerts once older than the cutoff (``pipeline/store/erasure.py``), the incident stays.

``indices_to_drop`` is pure (names and a clock in, names out); ``apply_retention`` does the I/O.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from elasticsearch import AsyncElasticsearch

from pipeline.settings import Settings

log = logging.getLogger(__name__)

# The suffix of a dated index: a month (YYYY.MM, what pipeline/store/mappings.py writes) or a day.
_DATED_SUFFIX = re.compile(r"^(?P<year>\d{4})\.(?P<month>\d{2})(?:\.(?P<day>\d{2}))?$")


def partition_end(suffix: str) -> datetime | None:
    """First instant (UTC) after the period a dated index covers, or None if ``suffix`` is not a
    valid ``YYYY.MM`` / ``YYYY.MM.DD``. Every document of the index is older than this."""
    match = _DATED_SUFFIX.match(suffix)
    if not match:
        return None
    try:
        start = datetime(int(match["year"]), int(match["month"]), int(match["day"] or 1), tzinfo=timezone.utc)
    except ValueError:  # month 13, 31 February: not one of ours
        return None
    if match["day"]:
        return start + timedelta(days=1)
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=timezone.utc)


def indices_to_drop(names: Iterable[str], families: Sequence[str], now: datetime, retention_days: int) -> list[str]:
    """The indices among ``names`` to delete: dated members (``<family>-<date>``) of one of
    ``families`` whose period ended at or before ``now - retention_days``. Sorted; undated
    indices and other families are never returned."""
    if retention_days < 1:
        raise ValueError("retention_days must be >= 1")
    cutoff = now - timedelta(days=retention_days)
    drop = []
    for name in names:
        for family in families:
            if not name.startswith(family + "-"):
                continue
            end = partition_end(name[len(family) + 1:])
            if end is not None and end <= cutoff:
                drop.append(name)
                break
    return sorted(drop)


def retention_families(settings: Settings) -> list[str]:
    """Index families retention applies to: the mention indices and a dated audit log, if any."""
    return [f"{settings.index_prefix}-mentions", settings.audit_index]


@dataclass
class RetentionReport:
    cutoff: datetime
    dropped: list[str] = field(default_factory=list)
    alerts_stripped: int = 0  # alerts whose example posts older than the cutoff were removed


async def apply_retention(es: AsyncElasticsearch, settings: Settings, now: datetime, *,
                          retention_days: int | None = None, dry_run: bool = False) -> RetentionReport:
    """List the dated indices of ``retention_families``, delete those past retention (unless
    ``dry_run``), and strip alert examples older than the cutoff. ``retention_days`` defaults to
    ``settings.retention_days``; with neither set nothing is dropped."""
    from pipeline.store.erasure import strip_old_alert_examples

    days = retention_days if retention_days is not None else settings.retention_days
    if days is None:
        return RetentionReport(cutoff=datetime.min.replace(tzinfo=timezone.utc))
    families = retention_families(settings)
    found = await es.indices.get(index=",".join(f"{family}-*" for family in families),
                                 allow_no_indices=True, ignore_unavailable=True, expand_wildcards="open,closed")
    report = RetentionReport(cutoff=now - timedelta(days=days), dropped=indices_to_drop(found, families, now, days))
    if dry_run:
        return report
    for index in report.dropped:
        await es.indices.delete(index=index, ignore_unavailable=True)
        log.info("retention: dropped index %s (older than %d days)", index, days)
    report.alerts_stripped = await strip_old_alert_examples(es, settings, report.cutoff)
    return report
