from pathlib import Path

import pytest

from pipeline.enrich.brands import BrandMatcher, BrandSpec
from pipeline.enrich.entities import extract_entities

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def matcher():
    return BrandMatcher(
        [
            BrandSpec(id="united", name="United Airlines", handles=["@United"], hashtags=["#FlyUnited"], cashtags=["ual"]),
            BrandSpec(id="delta", name="Delta Air Lines", aliases=["Delta Airlines"], handles=["delta"], competitor=True),
            BrandSpec(id="apple", name="Apple", aliases=["iPhone"]),
        ]
    )


def match(matcher, text):
    return matcher.match(text, extract_entities(text))


def test_handles_hashtags_cashtags_and_names(matcher):
    assert match(matcher, "@united where is my bag").brands == ["united"]
    assert match(matcher, "so glad I #flyunited").brands == ["united"]
    assert match(matcher, "$UAL down 3% today").brands == ["united"]
    assert match(matcher, "flew united airlines and delta  airlines this week").brands == ["united", "delta"]


def test_names_match_whole_words_only_and_ignore_case(matcher):
    assert match(matcher, "APPLE event today").brands == ["apple"]
    assert match(matcher, "pineapple juice").brands == []
    assert match(matcher, "my iphones are fine").brands == []
    assert match(matcher, "my iPhone's screen").brands == ["apple"]


def test_bare_word_is_not_a_handle_unless_it_is_an_alias(matcher):
    assert match(matcher, "united we stand").brands == []


def test_competitors_are_the_matched_competitor_brands(matcher):
    result = match(matcher, "@delta beat @united on time")
    assert result.brands == ["united", "delta"]
    assert result.competitors == ["delta"]


def test_shipped_brands_file_loads_and_matches_demo_traffic():
    m = BrandMatcher.from_yaml(REPO / "pipeline" / "brands.yaml")
    assert match(m, "@SouthwestAir thanks for the upgrade!").brands == ["southwest"]
    assert match(m, "@AmericanAir @USAirways merger mess").brands == ["american", "usairways"]


def test_duplicate_brand_ids_are_refused():
    with pytest.raises(ValueError):
        BrandMatcher([BrandSpec(id="a", name="A"), BrandSpec(id="a", name="B")])
