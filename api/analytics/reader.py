"""The shell around ``series``: run the count searches a ``ReadPlan`` asks for (one ``msearch``)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from api.analytics.series import (
    Series, Source, merge_series, parse_counts, parse_volume_check, plan_reads, raw_counts_body,
    raw_volume_check_body, rollup_counts_body, series_totals,
)
from api.queries import BadQuery
from pipeline.settings import Settings

log = logging.getLogger("earshot.api.analytics")


def _header(index: str) -> dict[str, Any]:
    # Before the first mention (or rollup) is indexed the index does not exist: that is zero.
    return {"index": index, "ignore_unavailable": True, "allow_no_indices": True}


def checked(item: dict[str, Any]) -> dict[str, Any]:
    """One msearch answer, or the error it holds as an exception (4xx: BadQuery)."""
    if "error" in item:
        if 400 <= int(item.get("status", 500)) < 500:
            raise BadQuery("the search backend rejected the query; check its parameters")
        raise RuntimeError(f"count search failed: {item['error']}")
    return item


async def read_counts(es, settings: Settings, brands: list[str], since: datetime, until: datetime,
                      interval: str | None, include_spam: bool, source: Source,
                      now: datetime | None = None) -> tuple[Series, str]:
    """Counts per brand (per interval) over [since, until), and which source answered:
    ``rollup``, ``raw`` or ``rollup+raw``."""
    plan = plan_reads(since, until, interval, include_spam, source, now or datetime.now(timezone.utc))
    max_spam = None if include_spam else settings.spam_threshold
    searches: list[dict[str, Any]] = []
    if plan.rollup:
        searches += [_header(settings.rollup_index), rollup_counts_body(brands, *plan.rollup, interval)]
        if plan.check:
            searches += [_header(settings.mentions_alias),
                         raw_volume_check_body(brands, *plan.rollup, settings.spam_threshold)]
    if plan.raw:
        searches += [_header(settings.mentions_alias), raw_counts_body(brands, *plan.raw, interval, max_spam)]
    answers = [checked(item) for item in (await es.msearch(searches=searches))["responses"]]
    series = parse_counts(answers[-1], "raw", brands, since, until, interval) if plan.raw else None
    label = plan.label
    if plan.rollup:
        rolled = parse_counts(answers[0], "rollup", brands, since, until, interval)
        if plan.check:
            expected = parse_volume_check(answers[1], brands)
            found = {brand: counts.volume for brand, counts in series_totals(rolled).items()}
            if found != expected:  # late mentions, or hours not rolled up yet: the raw mentions are the truth
                log.info("rollup behind the mentions for %s (%s vs %s): reading raw", brands, found, expected)
                body = raw_counts_body(brands, *plan.rollup, interval, max_spam)
                response = await es.search(index=settings.mentions_alias, ignore_unavailable=True,
                                           allow_no_indices=True, **body)
                rolled = parse_counts(response, "raw", brands, since, until, interval)
                label = "raw"
        series = merge_series(rolled, series) if series is not None else rolled
    assert series is not None
    return series, label
