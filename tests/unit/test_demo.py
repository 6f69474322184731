"""The demo scenario's timeline (pure): a daily and weekly rhythm, and its three acts."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from connectors.demo import DemoScenario, rhythm, rhythmic_times
from pipeline.enrich.brands import BrandMatcher
from pipeline.settings import REPO_ROOT

MONDAY = datetime(2026, 11, 30, tzinfo=timezone.utc)


def test_the_rhythm_peaks_in_the_afternoon_and_dips_at_weekends():
    assert rhythm(MONDAY.replace(hour=17)) == 1.0
    assert abs(rhythm(MONDAY.replace(hour=5)) - 0.25) < 1e-9
    saturday = MONDAY + timedelta(days=5, hours=17)
    assert abs(rhythm(saturday) - 0.75) < 1e-9


def test_times_follow_the_rhythm():
    times = rhythmic_times(7000, MONDAY, MONDAY + timedelta(days=7))
    assert times == sorted(times) and MONDAY <= times[0] and times[-1] < MONDAY + timedelta(days=7)
    by_hour = Counter(t.hour for t in times)
    assert by_hour[17] > 3 * by_hour[5]  # 1.0 vs 0.25
    weekday, weekend = Counter(t.weekday() for t in times)[2], Counter(t.weekday() for t in times)[6]
    assert 0.7 < weekend / weekday < 0.8


class Corpus:
    def __init__(self, rows):
        self._rows = rows

    def rows(self):
        return iter(self._rows)


def test_three_acts_with_the_crisis_last_and_made_of_the_brands_negative_posts():
    rows = [{"id": str(i), "text": f"@united flight {i} was awful" if i % 3 == 0 else f"@delta flight {i}",
             "label_sentiment": "negative" if i % 3 == 0 else "positive"} for i in range(300)]
    now = MONDAY + timedelta(days=8)
    scenario = DemoScenario(now=now, history_rows=100, crisis_posts=20, crisis_minutes=10, corpus=Corpus(rows),
                            matcher=BrandMatcher.from_yaml(REPO_ROOT / "pipeline" / "brands.yaml"))
    history, crisis, live = scenario.acts()
    live = list(live)
    assert len(history) == 100 and len(crisis) == 20 and len(history) + len(crisis) + len(live) == 300
    assert all("united" in o.record["text"] for o in crisis)
    assert len({o.key for o in history + crisis + live}) == 300  # each post in one act, once
    history_times = [datetime.fromisoformat(o.record["created_at"]) for o in history]
    crisis_times = [datetime.fromisoformat(o.record["created_at"]) for o in crisis]
    assert max(history_times) < min(crisis_times) and now - timedelta(days=7, minutes=16) < min(history_times)
    assert now - timedelta(minutes=10) <= min(crisis_times) and max(crisis_times) < now
    assert all("created_at" not in o.record for o in live)  # live rows get the wall clock
    assert history[0].key.startswith("demo-history:") and crisis[0].key.startswith("demo-crisis:")


def test_each_brand_is_spread_over_the_whole_week_even_from_a_corpus_grouped_by_topic():
    # Rows grouped as the real corpus is: all of one brand, then all of the next.
    rows = [{"id": str(i), "text": "@united late again" if i < 150 else "@delta on time", "label_sentiment": "neutral"}
            for i in range(300)]
    now = MONDAY + timedelta(days=8)
    history, _, _ = DemoScenario(now=now, history_rows=300, crisis_posts=0, corpus=Corpus(rows),
                                 matcher=BrandMatcher.from_yaml(REPO_ROOT / "pipeline" / "brands.yaml")).acts()
    for brand in ("united", "delta"):
        days = Counter(datetime.fromisoformat(o.record["created_at"]).date() for o in history
                       if brand in o.record["text"])
        assert len(days) >= 7 and max(days.values()) < 3 * min(days.values()), (brand, days)
