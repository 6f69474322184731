"""Webhook signing, payloads, retry schedule and filters (pipeline/alerts/webhooks.py), and the merge
rules between detector writes and people's changes (pipeline/alerts/state.py)."""

import json
import random
from datetime import datetime, timedelta, timezone

from pipeline.alerts.state import acknowledged, merge_detector_write, resolved
from pipeline.alerts.records import Alert, AlertMention, AlertTerm, AlertWindow, alert_id
from pipeline.alerts.webhooks import Webhook, backoff_delays, payload, retry_after_s, sign, verify, wants

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
SECRET = "whsec_test_0123456789"


def alert(**changes) -> dict:
    base = Alert(
        id=alert_id("united", "complaint", T0), brand="united", signal="complaint", severity="high", status="open",
        started_at=T0, updated_at=T0 + timedelta(minutes=5),
        window=AlertWindow(start=T0, end=T0 + timedelta(minutes=5), bucket_s=300),
        observed=42, expected=6.1, score=7.5, peak_score=7.5,
        terms=[AlertTerm(term="lost bag", score=31.0, spike_count=20, baseline_count=1)],
        mentions=[AlertMention(id="t:1", text="Lost my bag <again> & nobody answers", created_at=T0,
                               author="flyer", url="https://x.com/flyer/1", engagement=120)],
        teams=["customer_care"],
    ).to_document()
    return {**base, **changes}


def hook(**changes) -> Webhook:
    return Webhook(**{"id": "h1", "url": "https://example.com/hook", "secret": SECRET, "created_at": T0, **changes})


def test_a_signature_verifies_and_names_its_timestamp():
    body = payload(alert(), "json")
    header = sign(SECRET, 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, header, body, now=1_700_000_010)


def test_a_tampered_body_or_another_secret_fails():
    body = payload(alert(), "json")
    header = sign(SECRET, 1_700_000_000, body)
    assert not verify(SECRET, header, body.replace(b"united", b"delta"), now=1_700_000_000)
    assert not verify("another-secret-entirely", header, body, now=1_700_000_000)
    assert not verify(SECRET, header.replace("t=1700000000", "t=1700000001"), body, now=1_700_000_000)


def test_an_old_or_future_timestamp_fails_even_with_a_valid_mac():
    body = b'{"x":1}'
    header = sign(SECRET, 1_700_000_000, body)
    assert verify(SECRET, header, body, now=1_700_000_300)
    assert not verify(SECRET, header, body, now=1_700_000_301)
    assert not verify(SECRET, header, body, now=1_699_999_000)


def test_malformed_headers_fail_and_any_of_several_v1_values_may_match():
    body = b"{}"
    good = sign(SECRET, 1_700_000_000, body)
    for header in ("", "v1=abc", "t=abc,v1=def", "t=1700000000", good.replace("v1=", "v0=")):
        assert not verify(SECRET, header, body, now=1_700_000_000)
    rotated = f"t=1700000000,v1={'0' * 64},{good.split(',')[1]}"
    assert verify(SECRET, rotated, body, now=1_700_000_000)


def test_json_payload_wraps_the_alert():
    doc = alert()
    assert json.loads(payload(doc, "json")) == {"type": "alert", "alert": doc}


def test_slack_payload_has_text_and_blocks_with_what_happened_escaped():
    message = json.loads(payload(alert(), "slack"))
    assert "united" in message["text"] and "HIGH" in message["text"]
    blocks = message["blocks"]
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    fields = " ".join(f["text"] for f in blocks[1]["fields"])
    for expected in ("united", "complaint", "high", "open", "42 complaints per 5 min vs 6.1 expected", "customer_care"):
        assert expected in fields
    rest = json.dumps(blocks[2:])
    assert "lost bag" in rest
    assert "&lt;again&gt; &amp; nobody" in rest and "<again>" not in rest  # Slack mrkdwn control characters
    assert "@flyer" in rest and "120 engagements" in rest


def test_slack_payload_shows_negative_share_as_percent_and_survives_no_terms_or_mentions():
    quiet = alert(signal="negative", observed=0.38, expected=0.12, terms=[], mentions=[])
    message = json.loads(payload(quiet, "slack"))
    assert "38% negative vs 12% expected" in message["text"]
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context"]


def test_backoff_delays_grow_with_full_jitter_within_the_cap():
    rng = random.Random(7)
    runs = [backoff_delays(6, base_s=0.5, cap_s=3.0, rng=rng) for _ in range(400)]
    assert all(len(r) == 5 for r in runs)
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]
    for n, ceiling in enumerate(ceilings):
        column = [r[n] for r in runs]
        assert min(column) >= 0 and max(column) <= ceiling
        assert max(column) > 0.8 * ceiling and min(column) < 0.2 * ceiling  # full jitter: spread over [0, ceiling]
    assert backoff_delays(1, 0.5, 3.0) == []


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s("Tue, 24 Nov 2026 08:00:30 GMT", now) == 30.0
    assert retry_after_s("Tue, 24 Nov 2026 07:00:00 GMT", now) == 0.0
    assert retry_after_s(None, now) is None and retry_after_s("soon", now) is None


def test_hooks_filter_by_brand_and_minimum_severity():
    assert wants(hook(), alert(severity="low"))
    assert wants(hook(brands=["united", "delta"], min_severity="high"), alert(severity="critical"))
    assert not wants(hook(brands=["delta"]), alert())
    assert not wants(hook(min_severity="critical"), alert(severity="high"))
    assert wants(hook(min_severity="high"), alert(severity="high"))


def test_a_hook_never_shows_its_secret_in_a_repr():
    assert SECRET not in repr(hook()) and SECRET not in str(hook())


def test_detector_writes_keep_a_persons_resolution_and_acknowledgement():
    stored = resolved(acknowledged(alert(version=3), "ana", T0), "bob", T0 + timedelta(hours=1))
    assert stored["version"] == 5 and stored["resolved_by"] == "bob"
    merged = merge_detector_write(stored, alert(version=6, status="escalated", severity="critical", observed=80))
    assert merged["status"] == "resolved" and merged["resolved_at"] == stored["resolved_at"]
    assert merged["acknowledged_by"] == "ana" and merged["resolved_by"] == "bob"
    assert merged["severity"] == "critical" and merged["observed"] == 80 and merged["version"] == 6


def test_an_older_or_repeated_detector_change_is_ignored():
    stored = alert(version=4, observed=50)
    assert merge_detector_write(stored, alert(version=3)) is None
    assert merge_detector_write(stored, alert(version=4, observed=51)) is None  # a replay of the stored change
    assert merge_detector_write(stored, alert(version=5, observed=51))["observed"] == 51
    assert merge_detector_write(None, alert(version=2))["version"] == 2


def test_a_later_bucket_wins_even_when_people_bumped_the_version():
    stored = acknowledged(alert(version=3), "ana", T0)  # version 4 after the ack
    later = {**alert(version=4, observed=70), "updated_at": (T0 + timedelta(hours=2)).isoformat()}
    merged = merge_detector_write(stored, later)
    assert merged["observed"] == 70 and merged["version"] == 5 and merged["acknowledged_by"] == "ana"
    earlier = {**alert(version=4), "updated_at": (T0 - timedelta(hours=2)).isoformat()}
    assert merge_detector_write(stored, earlier) is None


def test_acknowledging_or_resolving_twice_changes_nothing():
    once = acknowledged(alert(), "ana", T0)
    assert once["version"] == 2 and once["last_change"] == "acknowledged" and acknowledged(once, "bob", T0) is None
    done = resolved(alert(), "ana", T0)
    assert done["status"] == done["last_change"] == "resolved" and done["resolved_at"] == T0.isoformat()
    assert resolved(done, "bob", T0 + timedelta(hours=1)) is None


def test_resolving_what_the_detector_closed_keeps_its_resolved_at():
    closed_at = (T0 + timedelta(minutes=30)).isoformat()
    done = resolved(alert(status="resolved", resolved_at=closed_at), "ana", T0 + timedelta(hours=2))
    assert done["resolved_at"] == closed_at and done["resolved_by"] == "ana"


# -- who is paged, and the digest (issue 14) ---------------------------------------------------

def incident(score: int, change: str = "opened", page: bool = True, reason: str = "threshold",
             paged_score: int | None = None, **changes) -> dict:
    from pipeline.alerts.severity import band

    return alert(severity=band(score), severity_score=score, last_change=change,
                 paging={"page": page, "reason": reason, "paged_score": paged_score if paged_score is not None
                         else (score if page else None)},
                 explanation={"summary": "united: severity 3/10 (low). Rising: \"lost bag\".",
                              "phrases": [{"term": "lost bag", "score": 31.0, "spike_count": 20, "baseline_count": 1}],
                              "hashtags": [{"term": "#fail", "score": 9.0, "spike_count": 5, "baseline_count": 0}]},
                 **changes)


def test_a_hook_is_paged_at_or_above_its_threshold_and_digests_what_opened_below():
    from pipeline.alerts.webhooks import route

    assert route(hook(min_severity=5), incident(5)) == "page"
    assert route(hook(min_severity="high"), incident(5)) == "digest"  # high = 6
    assert route(hook(min_severity="high", digest=False), incident(5)) is None
    assert route(hook(), incident(3, page=False, reason="below_threshold")) == "digest"  # the brand's threshold
    assert route(hook(), incident(7, page=False, reason="quiet_period")) is None  # held back, not digested
    assert route(hook(), incident(7, change="updated", page=False, reason="update")) is None
    assert route(hook(min_severity=8), incident(8, change="escalated", reason="escalated")) == "page"
    assert route(hook(min_severity=8), incident(7, change="escalated", reason="escalated")) is None
    assert route(hook(brands=["delta"]), incident(9)) is None
    assert route(hook(), incident(9), floor="critical") == "page" and route(hook(), incident(7), floor="critical") is None


def test_a_resolution_reaches_only_the_hooks_that_were_paged():
    from pipeline.alerts.webhooks import route

    done = incident(7, change="resolved", page=True, reason="resolved", paged_score=6, status="resolved")
    assert route(hook(min_severity=6), done) == "page"
    assert route(hook(min_severity=7), done) is None  # was never paged about it
    never = incident(4, change="resolved", page=False, reason="resolved", status="resolved")
    assert route(hook(), {**never, "paging": {**never["paging"], "paged_score": None}}) is None


def test_alerts_without_paging_route_as_before():
    from pipeline.alerts.webhooks import route

    old = alert(severity="high")  # written before scores and paging existed
    assert route(hook(min_severity="high"), old) == "page" and route(hook(min_severity="critical"), old) is None
    assert route(hook(min_severity=6), old) == "page" and route(hook(min_severity=7), old) is None


def test_the_digest_lists_each_incident_once_with_its_newest_state_and_drops_those_paged_later():
    from pipeline.alerts.webhooks import DigestBook

    book, quiet, loud = DigestBook(), hook(id="quiet", min_severity=8), hook(id="loud", min_severity=1)
    first = incident(3)
    assert book.note(quiet, first) == "digest" and book.note(loud, first) == "page"
    book.note(quiet, incident(4, change="updated", page=False, reason="update", version=2))
    other = {**incident(5, started_at=(T0 + timedelta(hours=1)).isoformat()), "id": "other"}
    book.note(quiet, other)
    later_paged = {**incident(2), "id": "paged-later"}
    book.note(quiet, later_paged)
    book.note(quiet, {**incident(9, change="escalated", reason="escalated"), "id": "paged-later"})
    due = book.take()
    assert list(due) == ["quiet"]
    assert [(e["id"], e["severity_score"]) for e in due["quiet"]] == [(first["id"], 4), ("other", 5)]
    assert due["quiet"][0]["summary"].startswith("united") and due["quiet"][0]["phrases"] == ["lost bag"]
    assert book.take() == {}


def test_digest_bodies_in_json_and_slack():
    from pipeline.alerts.webhooks import digest_entry, digest_payload

    entries = [digest_entry(incident(3)), digest_entry({**incident(5), "id": "x", "brand": "delta"})]
    body = json.loads(digest_payload(entries, T0, T0 + timedelta(hours=1), "json"))
    assert body["type"] == "digest" and len(body["incidents"]) == 2 and body["period"]["start"] == T0.isoformat()
    slack = json.loads(digest_payload(entries, T0, T0 + timedelta(hours=1), "slack"))
    assert "2 incident(s)" in slack["text"] and slack["blocks"][0]["type"] == "header"
    assert "delta" in json.dumps(slack["blocks"]) and "5/10" in json.dumps(slack["blocks"])


def test_slack_message_carries_the_explanation_and_severity_score():
    message = json.loads(payload(incident(7), "slack"))
    text = json.dumps(message)
    assert "7/10" in message["text"] and "Rising: \\\"lost bag\\\"" in text and "#fail" in text
