"""The shipped multilingual sentiment model (real weights, int8 ONNX): it loads, its files are
what the model card says, and it reads clear Spanish and German posts the right way round.

No services needed."""

from __future__ import annotations

import json

import pytest

from models.bundle import WEIGHTS_DIR
from models.multilingual.sentiment import VARIANT, MultilingualSentiment

FOLDER = WEIGHTS_DIR / VARIANT
CLEAR = {
    "es": [("Me encanta este teléfono, la batería dura todo el día y la cámara es increíble", "positive"),
           ("@Iberia otra vez perdieron mi maleta, servicio pésimo, nunca más vuelo con ustedes", "negative")],
    "de": [("Vielen Dank an das ganze Team, der Service war großartig und super freundlich!", "positive"),
           ("@DB_Bahn schon wieder 40 Minuten Verspätung und kein Wort der Entschuldigung, einfach furchtbar", "negative")],
}


@pytest.fixture(scope="module")
def model():
    return MultilingualSentiment.load(threads=1)


def test_the_shipped_folder_is_small_and_complete():
    names = {p.name for p in FOLDER.iterdir()}
    assert {"encoder.int8.onnx", "tokenizer.json", "head.json", "model.json"} <= names
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 45e6
    meta = json.loads((FOLDER / "model.json").read_text())
    assert set(meta["languages"]) == {"ar", "de", "es", "fr", "hi", "it", "pt"}
    assert meta["labels"] == ["negative", "neutral", "positive"]


@pytest.mark.parametrize("lang", sorted(CLEAR))
def test_clear_posts_get_the_right_sentiment(model, lang):
    texts, expected = zip(*CLEAR[lang])
    readings = model.predict(list(texts))
    assert [r.label for r in readings] == list(expected), [r.scores for r in readings]
    for r in readings:
        assert abs(sum(r.scores.values()) - 1) < 0.01 and r.score == r.scores[r.label]


def test_batches_do_not_change_labels(model):
    texts = [t for pairs in CLEAR.values() for t, _ in pairs]
    together = model.predict(texts)
    alone = [model.predict([t])[0] for t in texts]
    for a, b in zip(together, alone):
        # Dynamic int8 quantises activations with one scale per batch, so probabilities move a
        # little with the batch's company (measured up to 0.067 here); the label must not.
        assert a.label == b.label and max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 0.1
    assert model.predict([]) == []
    assert model.model_version.startswith("earshot-e5-small-multilingual@")
