"""Routing by language in the MentionEnricher: English model, multilingual sentiment model, or none
(stand-in models; the real ones are tested in integration and e2e)."""

from __future__ import annotations

from models.enricher import ClassLabel
from pipeline.enrich.brands import BrandMatcher, BrandSpec
from pipeline.enrich.enricher import ENGLISH_MODEL, MentionEnricher, reading_language
from pipeline.enrich.language import LanguageGuess
from pipeline.enrich.routing import RoutingRules
from tests.unit.test_enrich import NOW, Model, mention

EN = frozenset({"en"})
MULTI = frozenset({"ar", "de", "es", "fr", "hi", "it", "pt"})


class Multilingual:
    model_version = "multi-stand-in@1"
    languages = MULTI | {"en"}  # it could read English too; English must still go to the English model

    def __init__(self):
        self.seen: list[str] = []

    def predict(self, texts):
        self.seen.extend(texts)
        return [ClassLabel("positive", {"negative": 0.1, "neutral": 0.2, "positive": 0.7}) for _ in texts]


def enricher(model, multilingual):
    brands = BrandMatcher([BrandSpec(id="united", name="United Airlines", handles=["united"])])
    return MentionEnricher(brands, model, RoutingRules.default(), multilingual=multilingual)


def test_reading_language():
    assert reading_language("es", LanguageGuess("en", 0.99), EN, MULTI) == "es"  # the platform wins
    assert reading_language("pt-BR", LanguageGuess(None, 0.0), EN, MULTI) == "pt"
    assert reading_language("en-GB", LanguageGuess("de", 0.99), EN, MULTI) == ENGLISH_MODEL
    assert reading_language(None, LanguageGuess("de", 0.95), EN, MULTI) == "de"
    assert reading_language(None, LanguageGuess("de", 0.3), EN, MULTI) == ENGLISH_MODEL  # unsure: as before
    # "@united hey! DM not working. UA 307!" is guessed Italian at 0.58: not sure enough
    assert reading_language(None, LanguageGuess("it", 0.58), EN, MULTI) is None
    assert reading_language(None, LanguageGuess("it", 0.6), EN, MULTI) == "it"
    assert reading_language(None, LanguageGuess(None, 0.0), EN, MULTI) == ENGLISH_MODEL  # too short to tell
    assert reading_language(None, LanguageGuess("nl", 0.95), EN, MULTI) is None
    assert reading_language("ja", LanguageGuess(None, 0.0), EN, MULTI) is None
    assert reading_language(None, LanguageGuess("de", 0.95), EN, frozenset()) is None  # no multilingual model


def test_each_post_goes_to_the_model_of_its_language():
    english, multi = Model(), Multilingual()
    posts = [mention(1, "@united lost my bag again, worst airline"),
             mention(2, "@united me encanta volar con ustedes, el servicio es excelente", lang="es"),
             mention(3, "@united der Flug war wunderbar und pünktlich, vielen Dank an die Crew"),
             mention(4, "@united dit is een bericht in het Nederlands, en vrij lang ook nog")]
    out = enricher(english, multi).enrich(posts, NOW)
    assert [m.id for m in out] == ["t:1", "t:2", "t:3", "t:4"]
    en, es, de, nl = out
    assert english.seen == [posts[0].text]
    assert multi.seen == [posts[1].text, posts[2].text]
    assert en.model_status == "ok" and en.model_version == "stand-in@1" and en.emotion is not None
    for post, lang in ((es, "es"), (de, "de")):
        assert post.lang == lang and post.model_status == "sentiment_only"
        assert post.model_version == "multi-stand-in@1"
        assert post.sentiment.label == "positive" and post.sentiment.positive == 0.7 and not post.sentiment.uncertain
        # heads without training data in these languages stay empty, not guessed
        assert post.emotion is None and post.complaint is None and post.hate is None and post.purposes == []
        assert post.embedding is None and post.phrases == []
        assert post.brands == ["united"]
    assert nl.model_status == "unsupported_language" and nl.sentiment is None


def test_no_multilingual_model_keeps_the_old_behaviour():
    [out] = enricher(Model(), None).enrich([mention(2, "me encanta volar con ustedes", lang="es")], NOW)
    assert out.model_status == "unsupported_language" and out.sentiment is None
