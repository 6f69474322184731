"""One incident per brand and crisis: severity 1..10 (pipeline/alerts/severity.py), paging and
the quiet period (pipeline/alerts/incidents.py), and the explanation (pipeline/alerts/explain.py)."""

from __future__ import annotations

import math
import random

from pipeline.alerts import severity
from pipeline.alerts.explain import STOP_WORDS, Background, copy_families, explain, own_terms, phrases_of, post_terms
from pipeline.alerts.incidents import BrandWatch, minute_counts, watch_config
from pipeline.alerts.records import Alert
from tests.unit.test_brand_watch import CHATTER, START, record

URL_BITS = {"http", "https", "t.co", "www", "co", "com", "bit", "ly"}


def crisis(hours: float, burst_at_h: float, per_minute: int, minutes: int = 10, seed: int = 3, base: float = 3.0):
    """Chatter at about ``base`` mentions a minute, then ``per_minute`` angry posts a minute about
    an engine fire (varied wording, links, the brand's own name and a hashtag)."""
    rng = random.Random(seed)
    openings = ["Acme flight 212 had an engine fire", "engine fire on Acme flight 212", "so scared, engine fire"]
    endings = ["passengers evacuated on the runway", "the passengers were evacuated", "and nobody from Acme told us"]
    for minute in range(int(hours * 60)):
        ts = START + minute * 60
        hour = (minute / 60) % 24
        rate = base * (1 + 0.7 * math.cos((hour - 15) / 24 * 2 * math.pi))
        for n in range(sum(rng.random() < rate / 10 for _ in range(10))):
            yield record(ts + rng.random() * 59, rng.choice(CHATTER) + " with Acme", negative=rng.random() < 0.1,
                         complaint=rng.random() < 0.1, n=n)
        if 0 <= minute - burst_at_h * 60 < minutes:
            for n in range(per_minute):
                text = (f"{rng.choice(openings)}, {rng.choice(endings)} #AcmeFail #EngineFire "
                        f"https://t.co/x{n} www.news.com/story")
                yield record(ts + n * 59 / per_minute, text, negative=True, complaint=n % 2 == 0,
                             engagement=rng.randrange(500), n=1000 + n)


def watch(**changes) -> BrandWatch:
    config = watch_config(60.0, "low", warmup_h=24, **changes)
    return BrandWatch("acme", teams={"volume": ("legal_crisis",)}, config=config,
                      own=own_terms("acme", "Acme Corp", "acme", "#acme"))


def run(records, w: BrandWatch):
    counts: dict[float, list[int]] = {}
    alerts = []
    for r in records:
        minute = math.floor(r["ts"] / 60) * 60
        counts[minute] = [a + b for a, b in zip(counts.get(minute, [0, 0, 0, 0]), minute_counts(r))]
        for due in w.note(r):
            alerts += w.close(due, counts.get(due))
    return alerts


# -- severity ----------------------------------------------------------------------------------

def test_the_score_rises_with_ratio_with_excess_and_with_persistence():
    assert severity.score({"volume": (20, 10)}, 0)[0] < severity.score({"volume": (100, 10)}, 0)[0] \
        < severity.score({"volume": (1000, 10)}, 0)[0]
    same_ratio_small, same_ratio_big = severity.score({"volume": (20, 2)}, 0)[0], severity.score({"volume": (2000, 200)}, 0)[0]
    assert same_ratio_big > same_ratio_small  # more mentions in excess: more people see it
    assert severity.score({"volume": (100, 10)}, 60)[0] > severity.score({"volume": (100, 10)}, 0)[0]
    assert severity.score({"volume": (100, 10), "negative": (80, 2)}, 0)[0] >= severity.score({"volume": (100, 10)}, 0)[0]
    huge = {s: (10 ** 6, 0) for s in ("volume", "negative", "complaint")}
    assert severity.score(huge, 10 ** 4)[0] == 10 and severity.score({}, 0)[0] == 1


def test_a_sparse_brands_80x_burst_is_not_low_and_a_busy_brands_doubling_is_not_critical():
    sparse, parts = severity.score({"volume": (40, 0.5)}, 0)  # 2 an hour -> 160 an hour, 15 min
    assert severity.band(sparse) != "low" and severity.score({"volume": (40, 0.5)}, 30)[0] >= 6, parts
    busy, _ = severity.score({"volume": (2000, 1000)}, 0)
    assert severity.band(busy) in ("medium", "high")
    assert [severity.band(s) for s in (1, 3, 4, 5, 6, 7, 8, 10)] == \
           ["low", "low", "medium", "medium", "high", "high", "critical", "critical"]
    assert severity.level("high") == 6 and severity.level(9) == 9 and severity.level("7") == 7


def test_a_bigger_burst_gets_a_higher_severity_on_the_alert_with_its_parts():
    peaks = []
    for per_minute in (12, 40, 150):
        alerts = run(crisis(40, 39, per_minute), watch())
        assert alerts, per_minute
        Alert.model_validate(alerts[-1])
        peaks.append(max(a["severity_score"] for a in alerts))
        parts = alerts[-1]["severity_parts"]
        assert {"magnitude", "persistence", "breadth", "ratio", "excess", "minutes_active"} <= parts.keys()
    assert peaks[0] < peaks[1] < peaks[2], peaks


# -- paging: the brand's threshold and the quiet period ------------------------------------------

def test_an_incident_below_the_brands_threshold_does_not_page_and_says_why():
    alerts = run(crisis(40, 39, 40), watch(page_min_score=10))
    pushed = [a for a in alerts if a["last_change"] in ("opened", "escalated")]
    assert pushed and all(not a["paging"]["page"] for a in pushed)
    assert all(a["paging"]["reason"] == "below_threshold" for a in pushed if a["severity_score"] < 10)


def test_the_quiet_period_holds_back_re_pages_unless_the_band_rises():
    alerts = run(crisis(40, 39, 40), watch(quiet_s=3600))
    pages = [a for a in alerts if a["paging"]["page"]]
    assert pages and pages[0]["last_change"] == "opened"
    bands = [severity.SEVERITIES.index(a["severity"]) for a in pages]
    assert bands == sorted(set(bands)), "a re-page inside the quiet period needs a higher band"
    held = [a for a in alerts if a["paging"]["reason"] == "quiet_period"]
    assert held, "escalations within the band were held back"
    loud = run(crisis(40, 39, 40), watch(quiet_s=0))
    assert len([a for a in loud if a["paging"]["page"]]) > len(pages)


def test_the_incident_and_the_last_page_survive_a_restore():
    import json

    records = list(crisis(40, 39, 40))
    expected = run(records, watch())
    cut = next(i for i, r in enumerate(records) if r["ts"] >= START + 39 * 3600 + 240)
    first = watch()
    counts: dict[float, list[int]] = {}
    before = []
    for r in records[:cut]:
        minute = math.floor(r["ts"] / 60) * 60
        counts[minute] = [a + b for a, b in zip(counts.get(minute, [0, 0, 0, 0]), minute_counts(r))]
        for due in first.note(r):
            before += first.close(due, counts.get(due))
    restored = BrandWatch.from_state("acme", json.loads(json.dumps(first.to_state())), teams={"volume": ("legal_crisis",)},
                                     config=watch_config(60.0, "low", warmup_h=24), own=own_terms("acme"))
    after = []
    for r in records[cut:]:
        minute = math.floor(r["ts"] / 60) * 60
        counts[minute] = [a + b for a, b in zip(counts.get(minute, [0, 0, 0, 0]), minute_counts(r))]
        for due in restored.note(r):
            after += restored.close(due, counts.get(due))
    key = lambda a: (a["id"], a["version"], a["status"], a["severity_score"], a["paging"]["reason"],
                     [s["signal"] for s in a["signals"]])
    assert [key(a) for a in before + after] == [key(a) for a in expected]


# -- the explanation ---------------------------------------------------------------------------

def test_the_explanation_has_every_field_and_no_stop_words_url_bits_or_brand_name():
    alerts = run(crisis(40, 39, 40), watch())
    latest = alerts[-1]
    explanation = latest["explanation"]
    assert {"summary", "phrases", "hashtags", "sentiment", "emotion", "sources", "authors", "near_duplicates",
            "representatives", "mentions"} <= explanation.keys()
    terms = [t["term"] for t in explanation["phrases"] + explanation["hashtags"] + latest["terms"]]
    words = {w for t in terms for w in t.lstrip("#$").split()}
    # No term is a stop word, and no phrase starts or ends with one ("passengers were evacuated" reads well).
    assert terms and not {t.lstrip("#$") for t in terms} & STOP_WORDS and not words & URL_BITS, terms
    assert not any(t.split()[0] in STOP_WORDS or t.split()[-1] in STOP_WORDS for t in terms), terms
    assert "acme" not in words and "#acmefail" in [t["term"] for t in explanation["hashtags"]] + terms
    assert any(" " in t["term"] for t in explanation["phrases"]), "two- or three-word phrases"
    assert "engine fire" in [t["term"] for t in explanation["phrases"]]
    sentiment = explanation["sentiment"]
    assert sentiment["incident"]["negative"] > sentiment["baseline"]["negative"] and sentiment["shift"]["negative"] > 0.3
    assert explanation["sources"][0]["source"] == "t" and explanation["authors"][0]["engagement"] > 0
    assert 0 <= explanation["near_duplicates"]["share"] <= 1
    reps = explanation["representatives"]
    assert 1 <= len(reps) <= 5 and len({r["id"] for r in reps}) == len(reps)
    assert [m["id"] for m in latest["mentions"]] == [r["id"] for r in reps]
    assert "severity" in explanation["summary"] and "engine fire" in explanation["summary"]


def test_phrases_and_terms_leave_out_links_stop_words_numbers_and_the_brand():
    own = own_terms("united", "United Airlines", "#unitedairlines")
    got = post_terms("RT @united: the ENGINE fire on United flight 212!! https://t.co/x bit.ly/y www.x.com "
                     "#UnitedAirlines #EngineFire cancelled without notice", own)
    assert {"engine", "fire", "engine fire", "#enginefire", "cancelled without notice", "flight"} <= got
    assert not {"united", "#unitedairlines", "http", "https", "t.co", "www", "the", "212", "ly"} & got
    assert not any("united" in t for t in got), got
    assert phrases_of("the delayed flight. Lost luggage again") == {"delayed flight", "lost luggage"}


def test_copies_form_one_family_and_representatives_come_from_distinct_families():
    campaign = "Boycott Acme now, they poisoned the river and lied about it to everyone"
    records = [record(START + i, f"{campaign} https://t.co/{i}", engagement=i, n=i) for i in range(30)]
    records += [record(START + 100 + i, f"my own words about the river poisoning number {w}", engagement=1, n=100 + i)
                for i, w in enumerate(["one", "two", "three", "four", "five", "six", "seven"])]
    family = copy_families(records)
    assert len({family[i] for i in range(30)}) == 1
    terms = [post_terms(r["text"]) for r in records]
    background = Background()
    for i in range(300):
        background.add({"flight", "boarding"}, START - 3600 + i, ["source:t", "sentiment:neutral"])
    explanation = explain(records, terms, background, {"brand": "acme", "severity_score": 5, "severity": "medium"})
    assert explanation["near_duplicates"]["share"] > 0.7 and explanation["near_duplicates"]["largest"] == 30
    assert "copy-paste" in explanation["summary"]
    reps = explanation["representatives"]
    assert len({r["copies"] for r in reps if r["copies"] == 30}) == 1
    assert sum(1 for r in reps if r["copies"] == 30) == 1  # one post of the campaign, not five copies
