"""Pure helpers of training and evaluation: splits, weights, task sampling, metrics."""

from collections import Counter

import numpy as np

from models.data import ComplaintRow, split_complaints
from models.train import class_weights, macro_scores, task_probabilities


def rows() -> list[ComplaintRow]:
    out = []
    for domain, complaints, others in (("food", 50, 20), ("transport", 80, 60), ("random_tweet", 0, 100)):
        out += [ComplaintRow(f"{domain}-c{i}", "text", 1, domain) for i in range(complaints)]
        out += [ComplaintRow(f"{domain}-n{i}", "text", 0, domain) for i in range(others)]
    return out


def test_complaint_split_holds_out_30_percent_of_every_domain_and_label_and_is_repeatable():
    train, dev = split_complaints(rows())
    assert not {r.id for r in train} & {r.id for r in dev} and len(train) + len(dev) == 310
    cells = Counter((r.domain, r.complaint) for r in dev)
    assert cells == {("food", 1): 15, ("food", 0): 6, ("transport", 1): 24, ("transport", 0): 18, ("random_tweet", 0): 30}
    assert [r.id for r in split_complaints(list(reversed(rows())))[1]] == [r.id for r in dev]


def test_balanced_class_weights_make_every_class_weigh_the_same():
    labels = [0] * 90 + [1] * 10
    weights = class_weights(labels, 2)
    assert abs(weights[0] * 90 - weights[1] * 10) < 1e-9 and weights[1] == 5.0


def test_tasks_are_drawn_by_the_square_root_of_their_size():
    p = task_probabilities({"big": 40_000, "small": 2_500})
    assert abs(p["big"] / p["small"] - 4.0) < 1e-9 and abs(sum(p.values()) - 1) < 1e-9


def test_macro_scores_average_over_classes():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 0, 0, 1])
    scores = macro_scores(y, pred, 2)
    # class 0: P=4/5, R=1 -> F1=8/9; class 1: P=1, R=1/2 -> F1=2/3
    assert abs(scores["macro_f1"] - (8 / 9 + 2 / 3) / 2) < 1e-9
    assert abs(scores["macro_recall"] - 0.75) < 1e-9
    assert macro_scores(np.array([0, 0]), np.array([0, 0]), 3)["macro_f1"] == 1.0  # absent classes are skipped


def test_purpose_thresholds_match_the_weak_labels_prevalence_within_bounds():
    from models.purpose_head import prevalence_thresholds
    from models.tasks import PURPOSES

    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 0.4, size=(1000, len(PURPOSES)))
    targets = np.zeros_like(probs, dtype=np.int8)
    targets[:20, 0] = 1  # customer_care: 20 weak positives
    probs[:20, 0] = 0.3 + np.arange(20) / 1000  # the head ranks them first, below 0.5
    targets[:5, 1] = 1
    probs[:, 1] = 0.9  # a head that is sure of everything is capped at 0.5
    thresholds = prevalence_thresholds(probs, targets)
    assert (probs[:, 0] >= thresholds["customer_care"]).sum() == 20
    assert thresholds["sales_lead"] == 0.5
    assert all(0.1 <= t <= 0.5 for t in thresholds.values())
