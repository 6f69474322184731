"""Handover in the pure triage core, the team check of a bound key, and each role's workspaces."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api.auth.guard import Principal
from api.auth.keys import checked_teams
from api.routes.dashboard import workspaces
from pipeline.store.triage_state import Action, InvalidAction, TriageRefused, apply

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
MENTION = {"id": "x:1", "teams": ["customer_care"], "created_at": (NOW - timedelta(hours=1)).isoformat()}


def act(stored, kind, **kw):
    return apply(stored, MENTION, Action(kind, "jo", NOW, **kw))


def test_a_handover_moves_the_mention_and_later_actions_keep_its_team():
    assigned = act(None, "assign", assignee="ana")
    moved = act(assigned, "handover", team="marketing_pr", reason="press")
    assert moved["teams"] == ["marketing_pr"] and moved["routed_teams"] == ["customer_care"] and moved["handed_over"]
    assert moved["status"] == "new" and moved["assignee"] is None
    assert moved["history"][-1] == {"action": "handover", "by": "jo", "at": NOW.isoformat(), "team": "marketing_pr",
                                    "from_teams": ["customer_care"], "reason": "press"}
    assert act(moved, "handover", team="marketing_pr", reason="again") is None  # already there
    responded = act(moved, "respond", reply_url="https://example.org/r")
    assert responded["teams"] == ["marketing_pr"] and responded["history"][-1]["reply_url"] == "https://example.org/r"
    with pytest.raises(InvalidAction):
        act(moved, "handover", team="sales", reason=" ")
    with pytest.raises(TriageRefused):
        act(act(moved, "resolve"), "handover", team="sales", reason="late")


def test_a_bound_key_serves_its_teams_admin_and_unbound_keys_all():
    bound = Principal("k", "jo", "care", None, "key", ("customer_care",))
    assert bound.serves("customer_care") and not bound.serves("investor_relations")
    assert bound.serves_any(["sales", "customer_care"]) and not bound.serves_any(["sales"])
    assert Principal("k", "jo", "care", None, "key").serves("investor_relations")
    assert Principal("k", "root", "admin", None, "key", ("customer_care",)).serves("sales")
    assert checked_teams([" sales", "sales", "hr"]) == ["sales", "hr"]
    with pytest.raises(ValueError):
        checked_teams(["no spaces"])


def test_each_role_gets_its_workspaces_its_own_first():
    assert workspaces("care") == ["care"] and workspaces("ir") == ["ir"] and workspaces("comms") == ["comms"]
    assert workspaces("crisis") == ["crisis", "comms"] and workspaces("data") == ["data", "comms"]
    assert workspaces("admin") == ["comms", "crisis", "care", "ir", "data", "admin"]
    assert workspaces(None) == [] and workspaces("unknown") == []
