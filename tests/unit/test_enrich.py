"""The Enricher with a stand-in sentiment predictor (pure logic; the real model is tested elsewhere)."""

from datetime import datetime, timezone

from models.sentiment import SentimentResult
from pipeline.brands import BrandMatcher, BrandSpec
from pipeline.enrich import Enricher
from pipeline.schema import Mention

NOW = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


class Predictor:
    name = "stand-in@1"

    def predict(self, texts, batch_size=64):
        if any("EXPLODE" in t for t in texts):
            raise RuntimeError("model failure")
        return [SentimentResult("neutral", 0.5, 0.25, 0.5, 0.25) for _ in texts]


def mention(i, text, lang=None):
    return Mention(id=f"t:{i}", source="t", text=text, lang=lang, created_at=NOW, ingested_at=NOW)


def enricher():
    return Enricher(BrandMatcher([BrandSpec(id="united", name="United Airlines", handles=["united"]),
                                  BrandSpec(id="delta", name="Delta", competitor=True)]), Predictor())


def test_enrich_fills_every_field_in_input_order():
    out = enricher().enrich([mention(1, "@united and Delta both late #travel http://x.co/a"),
                             mention(2, "Ceci est un message en français, évidemment", lang=None)], NOW)
    assert [m.id for m in out] == ["t:1", "t:2"]
    first = out[0]
    assert first.brands == ["united", "delta"] and first.competitors == ["delta"]
    assert first.entities.handles == ["united"] and first.entities.hashtags == ["travel"]
    assert first.sentiment.label == "neutral" and first.sentiment.model == "stand-in@1"
    assert first.enriched_at == NOW and first.lang == "en"
    assert out[1].lang == "fr" and 0 < out[1].lang_confidence <= 1


def test_platform_language_wins_over_the_guess():
    [out] = enricher().enrich([mention(1, "this is english text", lang="de")], NOW)
    assert out.lang == "de" and out.lang_confidence is None


def test_a_failing_post_is_isolated_and_the_rest_of_the_batch_enriched():
    batch = [mention(1, "fine"), mention(2, "EXPLODE"), mention(3, "also fine")]
    enriched, failed = enricher().enrich_isolating(batch, NOW)
    assert [m.id for m in enriched] == ["t:1", "t:3"]
    assert [(m.id, str(e)) for m, e in failed] == [("t:2", "model failure")]
