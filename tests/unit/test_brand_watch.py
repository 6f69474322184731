"""A brand's spike watch (pipeline/alerts/incidents.py) and significant terms (pipeline/alerts/explain.py)."""

from __future__ import annotations

import json
import math
import random

from pipeline.alerts.records import Alert, alert_id
from pipeline.alerts.incidents import BrandWatch, brand_mentions, count_into, minute_counts, watch_config
from pipeline.enrich.routing import RoutingRules
from pipeline.alerts.explain import Background, g2, significant_terms, terms_of

START = 1_772_409_600.0  # 2026-03-02 00:00 UTC, a Monday
CHATTER = ["flight was fine", "boarding now", "lounge coffee good", "landed on time", "crew friendly today",
           "seat upgrade nice", "wifi works", "gate changed again"]


def record(ts: float, text: str, negative=False, complaint=False, engagement=0, n=0) -> dict:
    return {"id": f"t:{ts}:{n}", "brand": "acme", "ts": ts, "negative": negative, "complaint": complaint,
            "risk": False, "spam": False, "text": text, "author": f"user{n}", "url": None,
            "engagement": engagement, "sentiment": "negative" if negative else "neutral"}


def stream(hours: float, burst_at_h: float | None = None, seed: int = 5):
    """About 3 mentions a minute with a daily rhythm; from ``burst_at_h``, 40 angry ones a minute
    about an engine fire, for 10 minutes."""
    rng = random.Random(seed)
    for minute in range(int(hours * 60)):
        ts = START + minute * 60
        hour = (minute / 60) % 24
        rate = 3 * (1 + 0.7 * math.cos((hour - 15) / 24 * 2 * math.pi))
        for n in range(sum(rng.random() < rate / 10 for _ in range(10))):
            yield record(ts + rng.random() * 59, rng.choice(CHATTER), negative=rng.random() < 0.1, n=n)
        if burst_at_h is not None and 0 <= minute - burst_at_h * 60 < 10:
            for n in range(40):
                yield record(ts + n, f"engine fire on flight 212, passengers evacuated {n}", negative=True,
                             complaint=n % 2 == 0, engagement=n, n=100 + n)


def run(records, watch: BrandWatch | None = None, counts: dict[float, list[int]] | None = None):
    """What the worker does: count each record in its minute, close due minutes, collect alerts.
    ``counts`` is the worker's windowed table (persisted, like the watch's state)."""
    watch = watch or BrandWatch("acme", teams={"volume": ("legal_crisis",)},
                                config=watch_config(60.0, "low", warmup_h=24))
    counts = {} if counts is None else counts
    alerts = []
    for r in records:
        minute = math.floor(r["ts"] / 60) * 60
        counts[minute] = [a + b for a, b in zip(counts.get(minute, [0, 0, 0, 0]), minute_counts(r))]
        for due in watch.note(r):
            alerts += watch.close(due, counts.get(due))
    return watch, alerts


def test_a_burst_that_fires_three_signals_is_one_incident_that_explains_itself():
    # Contract change (issue 14): one incident per brand and crisis, not one alert per signal.
    _, alerts = run(stream(40, burst_at_h=39))
    assert len({a["id"] for a in alerts}) == 1
    assert [a["version"] for a in alerts] == list(range(1, len(alerts) + 1))
    first = alerts[0]
    assert first["last_change"] == "opened" and first["signal"] == "volume"
    assert first["id"] == alert_id("acme", "volume", Alert.model_validate(first).started_at)
    assert first["started_at"] >= "2026-03-03T15:00"  # not before the burst (hour 39)
    latest = Alert.model_validate(alerts[-1])  # the contract holds
    assert {"volume", "negative", "complaint"} <= {s.signal for s in latest.signals}
    assert all(s.fired_at >= latest.started_at for s in latest.signals)
    assert any(a["last_change"] == "escalated" for a in alerts)
    assert latest.observed > latest.expected
    top_terms = [t.term for t in latest.terms[:5]]
    assert {"engine", "fire", "evacuated"} & set(top_terms), latest.terms
    assert "boarding" not in top_terms
    engagements = [m.engagement for m in latest.mentions]
    assert engagements and engagements == sorted(engagements, reverse=True)
    assert all("engine fire" in m.text for m in latest.mentions)  # posts of the burst, not the chatter
    assert latest.teams == ["legal_crisis"]


def test_quiet_history_raises_nothing_and_warm_up_holds_alerts_back():
    _, quiet = run(stream(48))
    assert quiet == []
    _, early = run(stream(12, burst_at_h=11))  # burst inside the 24 h warm-up
    assert early == []


def test_one_incident_gets_new_versions_not_new_ids_and_resolves_when_every_signal_has():
    _, alerts = run(stream(48, burst_at_h=39))
    assert len({a["id"] for a in alerts}) == 1
    assert [a["version"] for a in alerts] == list(range(1, len(alerts) + 1))
    assert alerts[-1]["status"] == "resolved" and alerts[-1]["resolved_at"]
    assert all(s["status"] == "resolved" for s in alerts[-1]["signals"])
    assert all(a["status"] != "resolved" for a in alerts[:-1])


def test_restored_watch_gives_the_same_alert_ids_and_versions():
    records = list(stream(42, burst_at_h=39))
    _, expected = run(records)
    cut = next(i for i, r in enumerate(records) if r["ts"] >= START + 39 * 3600 + 300)  # mid-burst
    # The minute counts live in the worker's own changelogged table: they survive the restart too
    # (minutes counted before the cut close after it).
    counts: dict[float, list[int]] = {}
    first, before = run(records[:cut], counts=counts)
    restored = BrandWatch.from_state("acme", json.loads(json.dumps(first.to_state())),
                                     teams={"volume": ("legal_crisis",)}, config=watch_config(60.0, "low", 24))
    _, after = run(records[cut:], watch=restored, counts=counts)
    assert [(a["id"], a["version"], a["status"]) for a in before + after] == \
           [(a["id"], a["version"], a["status"]) for a in expected]


def test_min_severity_keeps_low_alerts_quiet():
    watch = BrandWatch("acme", config=watch_config(60.0, "critical", warmup_h=24))
    _, alerts = run(stream(40, burst_at_h=39), watch=watch)
    assert alerts and all(a["severity"] == "critical" for a in alerts)


def test_quiet_minutes_close_on_a_tick():
    watch, _ = run(stream(2))
    before = watch.next_minute
    assert watch.advance(before + 10 * 60) == [before + i * 60 for i in range(9)]


def test_brand_mentions_one_record_per_brand_with_flags():
    document = {"id": "x:1", "created_at": "2026-03-02T10:00:00+00:00", "text": "hi", "brands": ["a", "b", "a"],
                "sentiment": {"label": "negative"}, "complaint": {"label": True, "score": 0.9},
                "purposes": ["risk"], "metrics": {"likes": 2, "shares": 3, "replies": 1}, "author": {"handle": "z"}}
    records = brand_mentions(document)
    assert [r["brand"] for r in records] == ["a", "b"]
    assert records[0]["ts"] == START + 10 * 3600 and records[0]["engagement"] == 6
    assert minute_counts(records[0]) == [1, 1, 1, 1]
    assert brand_mentions({**document, "brands": []}) == []


def test_guessed_times_and_a_first_polls_backlog_are_never_counted():
    document = {"id": "rss:1", "created_at": "2026-03-02T10:00:00+00:00", "text": "hi", "brands": ["a"]}
    assert len(brand_mentions(document)) == 1
    assert brand_mentions({**document, "created_at_estimated": True}) == []  # an undated feed entry
    assert brand_mentions({**document, "raw": {"backlog": True}}) == []  # a first poll's old entries


def test_alert_teams_follow_routing_with_brand_overrides():
    rules = RoutingRules.default()
    assert "customer_care" in rules.alert_teams("acme", "complaint")
    spec = rules.spec.model_copy(update={"alert_brand_overrides": {"acme": {"complaint": ["acme_care"]}}})
    assert RoutingRules(spec).alert_teams("acme", "complaint") == ("acme_care",)
    assert RoutingRules(spec).alert_teams("other", "complaint") == rules.alert_teams("other", "complaint")


def test_terms_drop_links_handles_and_stop_words():
    assert terms_of("RT @united: The ENGINE fire!! https://t.co/x #Fail $UAL") == {"engine", "fire", "#fail", "$ual"}


def test_g2_ranks_over_represented_terms_only():
    assert g2(30, 100, 10, 1000) > g2(10, 100, 10, 1000) > 0
    assert g2(1, 100, 100, 1000) == 0.0  # under-represented in the spike


def test_significant_terms_against_a_background():
    background = Background()
    for i in range(500):
        background.add({"flight", "boarding"}, START + i)
    spike = [{"flight", "recall", "brakes"} for _ in range(20)]
    for doc in spike:
        background.add(doc, START + 600)
    found = [t for t, *_ in significant_terms(spike, background)]
    assert found[:2] == ["brakes", "recall"] and "flight" not in found[:2]


def test_a_replayed_record_is_not_counted_twice_in_its_minute():
    angry = record(START, "engine fire", negative=True, complaint=True)
    calm = record(START + 5, "boarding now")
    minute = count_into(None, angry, offset=10)
    minute = count_into(minute, calm, offset=11)
    assert minute == [2, 1, 1, 0, 11]
    assert count_into(minute, angry, offset=10) is None  # replayed after a crash
    assert count_into(minute, calm, offset=11) is None
    assert count_into(minute, calm, offset=12) == [3, 1, 1, 0, 12]  # a later record counts
    assert count_into([4, 1, 0, 0], calm, offset=0) == [5, 1, 0, 0, 0]  # a value without an offset yet
