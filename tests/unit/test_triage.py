"""Triage's pure core (``pipeline/store/triage_state.py``): state transitions, the KPI arithmetic, query shapes."""

from datetime import datetime, timedelta, timezone

import pytest

from api.triage_store import decode_queue_cursor, encode_queue_cursor
from api.cursor import BadCursor
from pipeline.store.triage_state import (Action, InvalidAction, KpiCounts, KpiWindows, StaleVersion, TriageRefused, apply,
                             awaiting, kpis, percentile, team_mentions_query, untouched)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
MENTION = {"id": "x:1", "teams": ["customer_care"], "created_at": T0.isoformat(), "spam": {"score": 0.2},
           "duplicate_of": None, "text": "where is my bag"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_mention_nobody_touched_is_new_and_awaiting():
    state = untouched(MENTION)
    assert state["status"] == "new" and state["version"] == 0 and state["history"] == []
    assert awaiting(None) and awaiting(state)
    assert state["teams"] == ["customer_care"] and state["spam_score"] == 0.2


def test_assign_respond_resolve_walk_the_statuses_and_record_who_when_and_times():
    s1 = apply(None, MENTION, Action("assign", "care-bot", at(5), "mine", assignee="ana"))
    assert (s1["status"], s1["assignee"], s1["version"]) == ("assigned", "ana", 1)
    assert s1["history"] == [{"action": "assign", "by": "care-bot", "at": at(5).isoformat(), "assignee": "ana",
                              "note": "mine"}]
    s2 = apply(s1, MENTION, Action("respond", "care-bot", at(30), responded_at=at(20)))
    assert s2["status"] == "responded" and not awaiting(s2)
    assert s2["first_response_at"] == at(20).isoformat() and s2["first_response_s"] == 1200.0
    assert s2["handled_s"] == 1200.0 and s2["version"] == 2
    s3 = apply(s2, MENTION, Action("resolve", "lead", at(90)))
    assert s3["status"] == "resolved" and s3["resolved_at"] == at(90).isoformat()
    assert s3["handled_s"] == 1200.0  # handled at the first response, not at resolution
    assert [h["action"] for h in s3["history"]] == ["assign", "respond", "resolve"]


def test_the_first_response_is_recorded_once_and_repeats_change_nothing():
    s1 = apply(None, MENTION, Action("respond", "a", at(10)))
    assert s1["first_response_s"] == 600.0
    assert apply(s1, MENTION, Action("respond", "a", at(50))) is None  # a retried request
    s2 = apply(s1, MENTION, Action("respond", "b", at(60), "follow-up sent"))
    assert s2["first_response_s"] == 600.0 and s2["history"][-1]["note"] == "follow-up sent"
    assigned = apply(None, MENTION, Action("assign", "a", at(1), assignee="ana"))
    assert apply(assigned, MENTION, Action("assign", "a", at(2), assignee="ana")) is None
    resolved = apply(None, MENTION, Action("resolve", "a", at(3)))
    assert apply(resolved, MENTION, Action("resolve", "a", at(4))) is None
    assert resolved["handled_s"] == 180.0 and resolved["first_response_s"] is None


def test_a_responded_mention_keeps_its_status_when_reassigned():
    responded = apply(None, MENTION, Action("respond", "a", at(10)))
    again = apply(responded, MENTION, Action("assign", "a", at(11), assignee="bo"))
    assert again["status"] == "responded" and again["assignee"] == "bo"


def test_refused_actions_stale_versions_and_bad_times():
    resolved = apply(None, MENTION, Action("resolve", "a", at(3)))
    with pytest.raises(TriageRefused):
        apply(resolved, MENTION, Action("assign", "a", at(4), assignee="ana"))
    with pytest.raises(TriageRefused):
        apply(resolved, MENTION, Action("respond", "a", at(4)))
    assigned = apply(None, MENTION, Action("assign", "a", at(1), assignee="ana"))
    with pytest.raises(StaleVersion):
        apply(assigned, MENTION, Action("assign", "b", at(2), assignee="bo", expected_version=0))
    assert apply(assigned, MENTION, Action("assign", "b", at(2), assignee="bo", expected_version=1))["version"] == 2
    with pytest.raises(InvalidAction, match="before"):
        apply(None, MENTION, Action("respond", "a", at(10), responded_at=at(-1)))
    with pytest.raises(InvalidAction, match="future"):
        apply(None, MENTION, Action("respond", "a", at(10), responded_at=at(30)))


def test_an_action_refreshes_the_copied_mention_facts():
    s1 = apply(None, MENTION, Action("assign", "a", at(1), assignee="ana"))
    rerouted = {**MENTION, "teams": ["customer_care", "legal_crisis"], "duplicate_of": "x:0"}
    s2 = apply(s1, rerouted, Action("assign", "a", at(2), assignee="bo"))
    assert s2["teams"] == ["customer_care", "legal_crisis"] and s2["duplicate_of"] == "x:0"


def test_percentile_interpolates_between_ranks_like_es_small_samples():
    values = [60, 120, 300, 600, 1200, 1800, 7200]
    assert percentile(values, 50) == 600
    assert percentile(values, 90) == pytest.approx(3960)  # rank 5.4: 1800 + 0.4 * 5400
    assert percentile([], 50) is None and percentile([5], 90) == 5


def test_kpi_windows_only_judge_mentions_old_enough():
    now = T0 + timedelta(days=10)
    w = KpiWindows.at(T0, now, now, sla_s=3600)
    assert w.sla_due_until == now - timedelta(hours=1) and w.answer_due_until == now - timedelta(hours=72)
    recent = KpiWindows.at(now - timedelta(hours=2), now, now, sla_s=3600)
    assert recent.answer_due_until == recent.since  # nothing in range is 72 h old: an empty window


def test_kpis_combine_the_counts_and_never_go_negative():
    counts = KpiCounts(routed=10, sla_due=8, answer_due=5, handled=6, responded=5, handled_in_sla=3,
                       answered_in_72h=2, median_s=600.0, p90_s=3960.0)
    figures = kpis(counts, 3600)
    assert figures["backlog"] == 4 and figures["sla_breaches"] == 5
    assert figures["unanswered_72h"] == 3 and figures["unanswered_72h_share"] == 0.6
    assert figures["first_response_median_s"] == 600.0 and figures["sla_s"] == 3600
    orphaned = kpis(KpiCounts(0, 0, 0, 2, 2, 2, 2, None, None), 3600)  # mentions dropped by retention
    assert orphaned["backlog"] == 0 and orphaned["sla_breaches"] == 0 and orphaned["unanswered_72h_share"] is None


def test_team_query_leaves_spam_and_copies_out_unless_asked():
    strict = team_mentions_query("sales", 0.7)
    assert {"term": {"teams": "sales"}} in strict["bool"]["filter"]
    assert "duplicate_of" in str(strict) and "spam.score" in str(strict)
    loose = team_mentions_query("sales", None, duplicates=True)
    assert "duplicate_of" not in str(loose) and "spam" not in str(loose)


def test_queue_cursor_round_trips_and_rejects_garbage():
    values = [12.34000015258789, 1772366400000, "x:1"]
    assert decode_queue_cursor(encode_queue_cursor(values)) == values
    for bad in ("garbage!", encode_queue_cursor([1, 2]), encode_queue_cursor(["a", 1, "x"])):
        with pytest.raises(BadCursor):
            decode_queue_cursor(bad)
