"""The MentionEnricher with a stand-in text model (pure logic; the real model is tested in integration)."""

from datetime import datetime, timezone

from models.enricher import ClassLabel, Flag, TextEnrichment
from models.tasks import PURPOSES
from pipeline.enrich.brands import BrandMatcher, BrandSpec
from pipeline.enrich.enricher import MentionEnricher, models_can_read
from pipeline.enrich.language import LanguageGuess
from pipeline.enrich.routing import RoutingRules
from pipeline.schema import Author, Mention, Metrics

NOW = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


def reading(purposes=("customer_care",), negative=0.9, irony=False) -> TextEnrichment:
    rest = round((1 - negative) / 2, 4)
    return TextEnrichment(
        sentiment=ClassLabel("negative" if negative > 0.5 else "neutral",
                             {"negative": negative, "neutral": rest, "positive": rest}),
        emotion=ClassLabel("anger", {"anger": 0.7, "joy": 0.1, "optimism": 0.1, "sadness": 0.1}),
        complaint=Flag(True, 0.8), offensive=Flag(False, 0.1), hate=Flag(False, 0.05), irony=Flag(irony, 0.9 if irony else 0.1),
        purposes=tuple(purposes), purpose_scores={p: (0.9 if p in purposes else 0.1) for p in PURPOSES},
        model_version="stand-in@1",
    )


class Model:
    model_version = "stand-in@1"

    def __init__(self):
        self.seen: list[str] = []

    def predict(self, texts):
        self.seen.extend(texts)
        if any("EXPLODE" in t for t in texts):
            raise RuntimeError("model failure")
        return [reading(irony="yeah right" in t) for t in texts]


def mention(i, text, lang=None, followers=None):
    return Mention(id=f"t:{i}", source="t", text=text, lang=lang, created_at=NOW, ingested_at=NOW,
                   author=Author(followers=followers), metrics=Metrics())


def enricher(model=None):
    brands = BrandMatcher([BrandSpec(id="united", name="United Airlines", handles=["united"]),
                           BrandSpec(id="delta", name="Delta", competitor=True)])
    return MentionEnricher(brands, model or Model(), RoutingRules.default())


def test_enrich_fills_every_field_in_input_order():
    out = enricher().enrich([mention(1, "@united and Delta both late again, lost my bag #travel http://x.co/a"),
                             mention(2, "Ceci est un message en français, évidemment, et assez long")], NOW)
    assert [m.id for m in out] == ["t:1", "t:2"]
    first = out[0]
    assert first.brands == ["united", "delta"] and first.competitors == ["delta"]
    assert first.entities.handles == ["united"] and first.entities.hashtags == ["travel"]
    assert first.sentiment.label == "negative" and first.sentiment.negative == 0.9 and not first.sentiment.uncertain
    assert first.emotion.label == "anger" and first.complaint.label is True and first.complaint.score == 0.8
    assert first.purposes == ["customer_care"] and first.purpose_scores.customer_care == 0.9
    assert first.teams == ["customer_care"] and first.priority > 0
    assert first.model_version == "stand-in@1" and first.model_status == "ok"
    assert first.enriched_at == NOW and first.lang == "en"


def test_other_languages_keep_language_brands_and_entities_but_get_no_model_guess():
    model = Model()
    [french] = enricher(model).enrich([mention(2, "@united Ceci est un message en français, évidemment, et assez long")], NOW)
    assert french.lang == "fr" and 0.5 <= french.lang_confidence <= 1
    assert french.model_status == "unsupported_language" and french.model_version == "stand-in@1"
    assert french.sentiment is None and french.emotion is None and french.complaint is None and french.purposes == []
    assert french.brands == ["united"] and french.entities.handles == ["united"]
    assert french.teams == ["marketing_pr"]  # brand named, no purpose: the fallback team
    assert model.seen == []  # the model never read it


def test_platform_language_wins_over_the_guess():
    model = Model()
    [out] = enricher(model).enrich([mention(1, "this is english text", lang="de")], NOW)
    assert out.lang == "de" and out.lang_confidence is None and out.model_status == "unsupported_language"
    [out] = enricher(model).enrich([mention(1, "das ist deutsch, aber die Plattform sagt en", lang="en-GB")], NOW)
    assert out.model_status == "ok"


def test_unsure_language_guesses_still_get_the_models():
    assert models_can_read(None, LanguageGuess(None, 0.0), frozenset({"en"}))
    assert models_can_read(None, LanguageGuess("nl", 0.3), frozenset({"en"}))
    assert not models_can_read(None, LanguageGuess("nl", 0.9), frozenset({"en"}))
    assert models_can_read(None, LanguageGuess("en", 0.9), frozenset({"en"}))


def test_irony_marks_sentiment_uncertain():
    [out] = enricher().enrich([mention(1, "oh great, another delay, yeah right, love it")], NOW)
    assert out.irony.label is True and out.sentiment.uncertain is True


def test_priority_grows_with_the_authors_reach():
    small, big = enricher().enrich([mention(1, "@united lost my bag again", followers=10),
                                    mention(2, "@united lost my bag again", followers=2_000_000)], NOW)
    assert 0 < small.priority < big.priority <= 100


def test_a_failing_post_is_isolated_and_the_rest_of_the_batch_enriched():
    batch = [mention(1, "fine words here"), mention(2, "EXPLODE now please"), mention(3, "also fine words")]
    enriched, failed = enricher().enrich_isolating(batch, NOW)
    assert [m.id for m in enriched] == ["t:1", "t:3"]
    assert [(m.id, str(e)) for m, e in failed] == [("t:2", "model failure")]
