from pathlib import Path

import pytest
import yaml

from pipeline.enrich.routing import (
    PURPOSES,
    TEAMS,
    PriorityParams,
    RoutingInput,
    RoutingRules,
    negativity,
    priority,
    reach,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "pipeline" / "routing.yaml"

DEFAULT_TEAMS = {
    "risk": ("legal_crisis", "marketing_pr"),
    "customer_care": ("customer_care",),
    "press": ("marketing_pr",),
    "sales_lead": ("sales",),
    "investor": ("investor_relations",),
    "employer": ("hr",),
    "product_feedback": ("product",),
    "praise": ("marketing_pr",),
    "spam": (),
}


@pytest.fixture(scope="module")
def rules():
    return RoutingRules.default()


def rules_with(tmp_path: Path, **changes) -> RoutingRules:
    """The shipped rules with top-level keys replaced, loaded from a file like a user's."""
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return RoutingRules.from_yaml(path)


def teams(rules: RoutingRules, **item) -> tuple[str, ...]:
    return rules.route(RoutingInput(**item)).teams


def test_shipped_file_loads_and_routes_only_to_built_in_teams(rules):
    assert RoutingRules.from_yaml(SHIPPED).spec == rules.spec
    assert set(rules.spec.purposes) == set(PURPOSES)
    used = {t for route in rules.spec.purposes.values() for t in route.teams} | set(rules.spec.fallback_teams)
    assert used <= set(TEAMS)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_each_purpose_goes_to_its_team(rules, purpose):
    assert teams(rules, purposes=(purpose,), brands=("united",)) == DEFAULT_TEAMS[purpose]
    assert teams(rules, purposes=(purpose,)) == DEFAULT_TEAMS[purpose]  # no brand named


def test_several_purposes_get_the_union_sorted(rules):
    assert teams(rules, purposes=("praise", "sales_lead", "press"), brands=("united",)) == ("marketing_pr", "sales")


def test_brand_override_beats_language_override_beats_default(tmp_path):
    rules = rules_with(
        tmp_path,
        brand_overrides={"acme": {"customer_care": ["acme_care"]}},
        language_overrides={"es": {"customer_care": ["customer_care_es"]}},
    )
    care = {"purposes": ("customer_care",)}
    assert teams(rules, brands=("acme",), lang="es", **care) == ("acme_care",)
    assert teams(rules, brands=("united",), lang="es", **care) == ("customer_care_es",)
    assert teams(rules, brands=("united",), lang="ES", **care) == ("customer_care_es",)
    assert teams(rules, brands=("united",), lang="en", **care) == ("customer_care",)
    assert teams(rules, brands=("united",), lang=None, **care) == ("customer_care",)
    # Overrides replace only their purpose.
    assert teams(rules, brands=("acme",), lang="es", purposes=("press",)) == ("marketing_pr",)


def test_several_brands_get_the_union_of_each_brands_teams(tmp_path):
    rules = rules_with(
        tmp_path,
        brand_overrides={"acme": {"customer_care": ["acme_care"]}},
        language_overrides={"es": {"customer_care": ["customer_care_es"]}},
    )
    got = teams(rules, purposes=("customer_care",), brands=("acme", "united"), lang="es")
    assert got == ("acme_care", "customer_care_es")


def test_an_empty_override_sends_that_purpose_to_nobody(tmp_path):
    rules = rules_with(tmp_path, brand_overrides={"acme": {"praise": []}})
    assert teams(rules, purposes=("praise",), brands=("acme",)) == ()
    assert teams(rules, purposes=("praise",), brands=("united",)) == ("marketing_pr",)


def test_a_custom_team_id_in_an_override_is_routed_to(tmp_path):
    rules = rules_with(tmp_path, language_overrides={"DE": {"product_feedback": ["produkt-team DE"]}})
    assert teams(rules, purposes=("product_feedback",), lang="de") == ("produkt-team DE",)


def test_a_blank_team_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        rules_with(tmp_path, brand_overrides={"acme": {"praise": [" "]}})
    with pytest.raises(ValueError, match="fallback_teams"):
        rules_with(tmp_path, fallback_teams=[""])


def test_spam_alone_gets_no_team_and_priority_zero(rules):
    route = rules.route(RoutingInput(purposes=("spam",), brands=("united",), negative=1.0, followers=10**6))
    assert route.teams == ()
    assert route.priority == 0.0


def test_spam_alone_is_not_sent_to_reply_teams_even_if_configured_with_urgency(tmp_path):
    purposes = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["purposes"]
    purposes["spam"] = {"teams": ["customer_care", "trust_safety"], "urgency": 0.9}
    rules = rules_with(tmp_path, purposes=purposes)
    route = rules.route(RoutingInput(purposes=("spam",), brands=("united",), negative=1.0, followers=10**6))
    assert route.teams == ("trust_safety",)
    assert route.priority == 0.0
    # Spam alongside a real purpose is not "spam alone": it routes and scores as usual.
    mixed = rules.route(RoutingInput(purposes=("spam", "customer_care"), negative=1.0, followers=10**6))
    assert "customer_care" in mixed.teams and mixed.priority > 0


@pytest.mark.parametrize("flag", ["offensive", "hate"])
def test_toxic_abuse_gets_no_reply_team_but_risk_still_routes(rules, flag):
    abuse = {"brands": ("united",), flag: True}
    assert teams(rules, purposes=("customer_care",), **abuse) == ()
    assert teams(rules, purposes=("sales_lead", "press"), **abuse) == ("marketing_pr",)
    # With the risk purpose the mention is a threat to handle, not a troll: everything routes.
    everyone = ("customer_care", "legal_crisis", "marketing_pr")
    assert teams(rules, purposes=("customer_care", "risk"), **abuse) == everyone
    assert teams(rules, purposes=("risk",), **abuse) == ("legal_crisis", "marketing_pr")
    # The same mention without the flag is answered.
    assert teams(rules, purposes=("customer_care",), brands=("united",)) == ("customer_care",)


def test_an_offensive_complaint_is_an_angry_customer_and_is_answered(rules):
    angry = {"brands": ("united",), "purposes": ("customer_care",), "offensive": True}
    assert teams(rules, complaint=0.9, **angry) == ("customer_care",)
    assert teams(rules, complaint=0.2, **angry) == ()  # offensive and no complaint: a troll
    assert teams(rules, complaint=0.9, hate=True, brands=("united",), purposes=("customer_care",)) == ()


def test_toxic_abuse_skips_overridden_reply_teams_too(tmp_path):
    rules = rules_with(tmp_path, language_overrides={"es": {"customer_care": ["customer_care_es"]}})
    assert teams(rules, purposes=("customer_care", "praise"), lang="es", offensive=True) == ("marketing_pr",)


def test_brand_only_mention_goes_to_fallback_team_with_fallback_urgency(rules):
    route = rules.route(RoutingInput(brands=("united",), negative=1.0, followers=10**7))
    assert route.teams == ("marketing_pr",)
    assert route.priority == pytest.approx(100 * rules.spec.fallback_urgency)


def test_no_brand_and_no_purpose_goes_to_nobody(rules):
    route = rules.route(RoutingInput(lang="en", negative=1.0, followers=10**7))
    assert route.teams == ()
    assert route.priority == 0.0


def test_priority_grows_with_followers(rules):
    scores = [
        rules.route(RoutingInput(purposes=("customer_care",), negative=0.5, followers=f)).priority
        for f in (None, 10, 1_000, 100_000, 10_000_000)
    ]
    assert scores == sorted(scores)
    assert len(set(scores)) == len(scores)


def test_priority_grows_with_negativity_and_complaint(rules):
    def score(negative, complaint):
        return rules.route(
            RoutingInput(purposes=("sales_lead",), negative=negative, complaint=complaint, followers=500)
        ).priority

    by_negative = [score(n, None) for n in (None, 0.0, 0.3, 0.7, 1.0)]
    assert by_negative[0] == by_negative[1] > 0  # unsupported language scores as neutral, not nothing
    assert by_negative[1:] == sorted(by_negative[1:]) and len(set(by_negative[1:])) == 4
    assert score(0.1, 0.9) == score(0.9, 0.1) > score(0.1, 0.1)  # the stronger signal counts


def test_priority_takes_the_most_urgent_purpose(rules):
    def score(*purposes):
        return rules.route(RoutingInput(purposes=purposes, negative=1.0, followers=10**7)).priority

    assert score("praise") == 20.0
    assert score("praise", "risk") == 100.0
    assert score("product_feedback", "customer_care") == 80.0


def test_priority_is_bounded_for_huge_inputs(rules):
    huge = RoutingInput(
        purposes=("risk", "customer_care"), brands=("united",), negative=1.0, complaint=1.0,
        followers=10**15, likes=10**15, shares=10**15, replies=10**15,
    )  # fmt: skip
    assert rules.route(huge).priority == 100.0
    tiny = RoutingInput(purposes=("product_feedback",), followers=0, negative=0.0)
    assert 0.0 < rules.route(tiny).priority < 100.0
    assert priority(5.0, 5.0, 5.0) == 100.0 and priority(-1.0, 1.0, 1.0) == 0.0


def test_reach_is_log_audience_with_weights_and_floor():
    params = PriorityParams()
    assert reach(None, 0, 0, 0, params) == pytest.approx(0.1)
    assert reach(0, 0, 0, 0, params) == pytest.approx(0.1)
    assert reach(999, 0, 0, 0, params) == pytest.approx(0.1 + 0.9 * 3 / 7)
    assert reach(10**7, 0, 0, 0, params) == pytest.approx(1.0, abs=1e-6)
    assert reach(10**12, 0, 0, 0, params) == 1.0
    # One share reaches as many people as 20 followers, a reply 5, a like 1.
    assert reach(0, 0, 1, 0, params) == pytest.approx(reach(20, 0, 0, 0, params))
    assert reach(0, 0, 0, 1, params) == pytest.approx(reach(5, 0, 0, 0, params))
    assert reach(0, 7, 0, 0, params) == pytest.approx(reach(7, 0, 0, 0, params))


def test_negativity_floor_and_none_as_zero():
    params = PriorityParams()
    assert negativity(None, None, params) == 0.25
    assert negativity(1.0, None, params) == 1.0
    assert negativity(None, 0.5, params) == pytest.approx(0.625)


def test_priority_constants_come_from_the_file(tmp_path):
    rules = rules_with(tmp_path, priority={"decades": 3, "audience_weights": {"shares": 1}})
    params = rules.spec.priority
    assert params.decades == 3 and params.audience_weights.shares == 1
    assert reach(999, 0, 0, 0, params) == pytest.approx(1.0)
    assert params.reach_floor == 0.1  # keys left out keep their defaults


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"brand_overrides": {"acme": {"complaints": ["acme_care"]}}}, "complaints"),
        ({"language_overrides": {"es": {"custmer_care": ["care_es"]}}}, "custmer_care"),
    ],
)
def test_unknown_purpose_key_is_refused_naming_file_and_key(tmp_path, changes, key):
    with pytest.raises(ValueError) as err:
        rules_with(tmp_path, **changes)
    assert key in str(err.value)
    assert str(tmp_path / "routing.yaml") in str(err.value)


def test_unknown_or_missing_purpose_in_purposes_is_refused(tmp_path):
    purposes = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["purposes"]
    purposes["leads"] = purposes.pop("sales_lead")
    with pytest.raises(ValueError, match="leads"):
        rules_with(tmp_path, purposes=purposes)
    del purposes["leads"]
    with pytest.raises(ValueError, match="sales_lead"):
        rules_with(tmp_path, purposes=purposes)


@pytest.mark.parametrize(
    "text, key",
    [
        ("purposes: [unclosed", "not valid YAML"),
        ("- a list", "top level"),
        ("purposes: {}\nescalation: true\n", "escalation"),
    ],
)
def test_malformed_file_is_refused_naming_the_file(tmp_path, text, key):
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        RoutingRules.from_yaml(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_urgency_outside_0_to_1_is_refused(tmp_path):
    purposes = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["purposes"]
    purposes["press"]["urgency"] = 1.5
    with pytest.raises(ValueError, match="purposes.press.urgency"):
        rules_with(tmp_path, purposes=purposes)


def test_unknown_purpose_from_the_model_is_refused():
    with pytest.raises(ValueError, match="complaint"):
        RoutingInput(purposes=("complaint",))
