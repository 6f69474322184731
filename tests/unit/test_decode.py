"""Decoding logits into readings (pure numpy; no model)."""

from pathlib import Path

import numpy as np

from models.bundle import Bundle
from models.enricher import decode
from models.tasks import ALL_TASKS, PURPOSES


def bundle(thresholds=None) -> Bundle:
    return Bundle(path=Path("."), name="test", version="1", layers=6, outputs=tuple(t.name for t in ALL_TASKS),
                  purpose_thresholds=thresholds or {}, max_tokens=128, meta={})


def logits(rows: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {t.name: rng.normal(size=(rows, len(t.labels))).astype(np.float32) for t in ALL_TASKS}


def test_probabilities_are_distributions_and_labels_their_argmax():
    out = logits(5)
    for row, result in enumerate(decode(bundle(), out)):
        assert abs(sum(result.sentiment.scores.values()) - 1) < 1e-3
        assert result.sentiment.label == ("negative", "neutral", "positive")[int(out["sentiment"][row].argmax())]
        assert result.emotion.label == max(result.emotion.scores, key=result.emotion.scores.get)
        assert result.sentiment.score == result.sentiment.scores[result.sentiment.label]
        assert result.model_version == "test@1"


def test_flags_say_yes_at_half_and_report_the_yes_probability():
    out = logits(2)
    out["complaint"] = np.array([[0.0, 2.0], [2.0, 0.0]], dtype=np.float32)
    yes, no = decode(bundle(), out)
    assert yes.complaint.label is True and abs(yes.complaint.score - 0.8808) < 1e-3
    assert no.complaint.label is False and abs(no.complaint.score - 0.1192) < 1e-3


def test_purposes_are_multi_label_with_per_purpose_thresholds():
    out = logits(1)
    out["purpose"] = np.full((1, len(PURPOSES)), -5.0, dtype=np.float32)
    out["purpose"][0, PURPOSES.index("customer_care")] = 3.0  # p = 0.95
    out["purpose"][0, PURPOSES.index("risk")] = 0.0  # p = 0.5
    out["complaint"] = np.array([[2.0, 0.0]], dtype=np.float32)  # not a complaint
    [result] = decode(bundle(), out)
    assert result.purposes == ("customer_care", "risk")
    [strict] = decode(bundle({"risk": 0.6}), out)
    assert strict.purposes == ("customer_care",)
    assert set(result.purpose_scores) == set(PURPOSES)


def test_a_complaint_is_a_customer_care_case():
    out = logits(2)
    out["purpose"] = np.full((2, len(PURPOSES)), -5.0, dtype=np.float32)
    out["complaint"] = np.array([[0.0, 3.0], [3.0, 0.0]], dtype=np.float32)
    complaint, other = decode(bundle(), out)
    assert complaint.purposes == ("customer_care",) and complaint.purpose_scores["customer_care"] == complaint.complaint.score
    assert other.purposes == () and other.purpose_scores["customer_care"] < 0.05
