"""Tweet sentiment (negative / neutral / positive): a linear head on the shared encoder.

The head is a multinomial logistic regression trained on SemEval 2013-2016 tweets
(``models/train_sentiment.py``) and shipped as a few-KiB ``.npz`` in ``models/weights/``.
``SentimentModel.predict`` takes a batch of texts and returns a batch of results; no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class SentimentHead:
    """Weights (dim x 3), bias (3,), and the metadata written at training time."""

    weights: np.ndarray
    bias: np.ndarray
    labels: tuple[str, ...]
    meta: dict

    @property
    def name(self) -> str:
        return f"{self.meta.get('name', 'sentiment-head')}@{self.meta.get('version', '0')}"

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Softmax class probabilities, shape (n, 3), rows sum to 1."""
        logits = embeddings @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            labels=np.array(self.labels),
            meta=np.array(json.dumps(self.meta)),
        )

    @classmethod
    def load(cls, path: Path) -> "SentimentHead":
        with np.load(path, allow_pickle=False) as data:
            labels = tuple(str(x) for x in data["labels"])
            if labels != LABELS:
                raise ValueError(f"{path}: unexpected labels {labels}")
            return cls(data["weights"], data["bias"], labels, json.loads(str(data["meta"])))


@dataclass(frozen=True)
class SentimentResult:
    label: str
    score: float
    negative: float
    neutral: float
    positive: float


def results_from_probabilities(probs: np.ndarray) -> list[SentimentResult]:
    results = []
    for row in probs:
        best = int(row.argmax())
        results.append(
            SentimentResult(
                label=LABELS[best],
                score=float(row[best]),
                negative=float(row[0]),
                neutral=float(row[1]),
                positive=float(row[2]),
            )
        )
    return results


class SentimentModel:
    """Encoder + head. ``predict(texts)`` -> one ``SentimentResult`` per text."""

    def __init__(self, head_path: Path, encoder=None, encoder_dir: Path | None = None, threads: int = 0):
        from models.encoder import SentenceEncoder

        self.head = SentimentHead.load(head_path)
        self.encoder = encoder or SentenceEncoder(encoder_dir, threads=threads)

    @property
    def name(self) -> str:
        return self.head.name

    def predict(self, texts: list[str], batch_size: int = 64) -> list[SentimentResult]:
        if not texts:
            return []
        return results_from_probabilities(self.head.probabilities(self.encoder.embed(texts, batch_size)))
