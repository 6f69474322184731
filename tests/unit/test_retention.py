"""Retention decisions: which dated indices are past retention (pure, no services)."""

from datetime import datetime, timezone

import pytest

from pipeline.store.retention import indices_to_drop, partition_end, retention_families
from pipeline.settings import Settings

FAMILIES = ["earshot-mentions", "earshot-audit"]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_a_month_ends_at_the_first_instant_of_the_next_one_including_december():
    assert partition_end("2026.01") == utc(2026, 2, 1)
    assert partition_end("2026.02") == utc(2026, 3, 1)
    assert partition_end("2026.12") == utc(2027, 1, 1)
    assert partition_end("2026.03.31") == utc(2026, 4, 1)


@pytest.mark.parametrize("suffix", ["2026.13", "2026.00", "2026.02.30", "2026-01", "2026.1", "latest", "2026.01.x"])
def test_suffixes_that_are_not_our_dates_are_not_partitions(suffix):
    assert partition_end(suffix) is None


def test_a_month_is_dropped_only_once_its_last_instant_is_past_the_cutoff():
    names = ["earshot-mentions-2026.01", "earshot-mentions-2026.02", "earshot-mentions-2026.03"]
    # 30 days before 2026-03-03T00:00 is 2026-02-01T00:00: January has just ended, February not.
    assert indices_to_drop(names, FAMILIES, utc(2026, 3, 3), 30) == ["earshot-mentions-2026.01"]
    # One second earlier, January's last second is still inside the retention period.
    assert indices_to_drop(names, FAMILIES, utc(2026, 3, 2, 23, 59, 59), 30) == []
    # The cutoff on 2026-03-31 is 2026-03-01: February (28 days) is gone too.
    assert indices_to_drop(names, FAMILIES, utc(2026, 3, 31), 30) == ["earshot-mentions-2026.01",
                                                                       "earshot-mentions-2026.02"]


def test_the_current_month_is_never_dropped_even_with_one_day_of_retention():
    names = ["earshot-mentions-2026.05", "earshot-mentions-2026.04"]
    assert indices_to_drop(names, FAMILIES, utc(2026, 5, 1, 12), 1) == []
    assert indices_to_drop(names, FAMILIES, utc(2026, 5, 2), 1) == ["earshot-mentions-2026.04"]


def test_across_a_year_boundary():
    names = ["earshot-mentions-2025.11", "earshot-mentions-2025.12", "earshot-mentions-2026.01"]
    assert indices_to_drop(names, FAMILIES, utc(2026, 1, 31), 30) == ["earshot-mentions-2025.11",
                                                                       "earshot-mentions-2025.12"]


def test_dated_audit_indices_by_month_or_day_follow_the_same_rule():
    names = ["earshot-audit-2026.01", "earshot-audit-2026.02.27", "earshot-audit-2026.02.28", "earshot-audit"]
    assert indices_to_drop(names, FAMILIES, utc(2026, 3, 30), 30) == ["earshot-audit-2026.01",
                                                                       "earshot-audit-2026.02.27"]


def test_other_families_and_undated_indices_are_never_dropped():
    names = ["earshot-alerts", "earshot-webhooks", "earshot-queries", "other-mentions-2020.01",
             "earshot-mentions", "earshot-mentions-template", "earshot-mentions-archive-2020.01",
             "earshot-mentions-2020.01"]
    assert indices_to_drop(names, FAMILIES, utc(2026, 6, 1), 30) == ["earshot-mentions-2020.01"]


def test_retention_must_be_at_least_a_day():
    with pytest.raises(ValueError):
        indices_to_drop(["earshot-mentions-2020.01"], FAMILIES, utc(2026, 1, 1), 0)


def test_families_follow_the_index_prefix():
    assert retention_families(Settings(index_prefix="acme")) == ["acme-mentions", "acme-audit"]


def test_retention_is_off_by_default_and_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("EARSHOT_RETENTION_DAYS", raising=False)
    assert Settings(_env_file=None).retention_days is None
    monkeypatch.setenv("EARSHOT_RETENTION_DAYS", "400")
    assert Settings().retention_days == 400
