"""The batch ``Enricher``: texts in, one ``TextEnrichment`` per text out. No I/O.

    enricher = Enricher.load("minilm-l6", backend="onnx")
    enricher.predict(["@united lost my bag again", "loving the new phone"])

Per batch: normalise each text as in training, look it up in the near-duplicate cache,
tokenise the misses (fast Rust tokenizer, truncated to the bundle's ``max_tokens``), sort
them by length, pad each slice of ``batch_size`` only to its own longest text (dynamic
padding), run one forward pass per slice that yields every head, and decode the logits
(softmax per single-label task, sigmoid + per-purpose threshold for purposes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.backends import Backend, load_backend
from models.batching import padded_batches
from models.bundle import Bundle, variant_dir
from models.result_cache import ResultCache, near_duplicate_key
from models.tasks import PURPOSES
from models.text import normalise_for_model

DEFAULT_PURPOSE_THRESHOLD = 0.5


@dataclass(frozen=True)
class ClassLabel:
    """A single-label prediction: the label and every class probability (0..1, summing to 1)."""

    label: str
    scores: dict[str, float]

    @property
    def score(self) -> float:
        return self.scores[self.label]


@dataclass(frozen=True)
class Flag:
    """A yes/no prediction: ``label`` is ``score >= 0.5``; ``score`` is P(yes), 0..1."""

    label: bool
    score: float


@dataclass(frozen=True)
class TextEnrichment:
    """Everything the models read in one text."""

    sentiment: ClassLabel
    emotion: ClassLabel
    complaint: Flag
    offensive: Flag
    hate: Flag
    irony: Flag
    purposes: tuple[str, ...]  # in PURPOSES order
    purpose_scores: dict[str, float]  # sigmoid probabilities, 0..1
    model_version: str
    # The sentence vector the heads read (mean-pooled encoder output), unit length, 4 decimals;
    # None from a backend that does not expose it.
    embedding: tuple[float, ...] | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def _round(p: float) -> float:
    return round(float(p), 4)


def unit_vectors(pooled: np.ndarray) -> list[tuple[float, ...]]:
    """Rows scaled to length 1 (cosine similarity is then a dot product), rounded to 4 decimals."""
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit = pooled / np.maximum(norms, 1e-12)
    return [tuple(round(float(x), 4) for x in row) for row in unit]


def decode(bundle: Bundle, logits: dict[str, np.ndarray],
           embeddings: np.ndarray | None = None) -> list[TextEnrichment]:
    """Logits of one batch (``{task: (n, classes)}``) -> one ``TextEnrichment`` per row; with
    ``embeddings`` (n x width), each carries its unit-length sentence vector."""
    probs = {task.name: (sigmoid if task.multi_label else softmax)(logits[task.name]) for task in bundle.tasks}
    thresholds = [bundle.purpose_thresholds.get(p, DEFAULT_PURPOSE_THRESHOLD) for p in PURPOSES]
    labels = {task.name: task.labels for task in bundle.tasks}
    vectors = unit_vectors(embeddings) if embeddings is not None else None
    results = []
    for row in range(len(next(iter(probs.values())))):

        def single(task: str) -> ClassLabel:
            p = probs[task][row]
            return ClassLabel(labels[task][int(p.argmax())], {name: _round(v) for name, v in zip(labels[task], p)})

        def flag(task: str) -> Flag:
            yes = float(probs[task][row][1])
            return Flag(yes >= 0.5, _round(yes))

        purpose_p = probs["purpose"][row].copy()
        # A complaint is a customer-care case by definition; the complaint head is trained on
        # human labels, the purpose head on weak ones, so the stronger of the two decides.
        care = PURPOSES.index("customer_care")
        purpose_p[care] = max(purpose_p[care], probs["complaint"][row][1])
        results.append(
            TextEnrichment(
                sentiment=single("sentiment"),
                emotion=single("emotion"),
                complaint=flag("complaint"),
                offensive=flag("offensive"),
                hate=flag("hate"),
                irony=flag("irony"),
                purposes=tuple(p for p, v, t in zip(PURPOSES, purpose_p, thresholds) if v >= t),
                purpose_scores={p: _round(v) for p, v in zip(PURPOSES, purpose_p)},
                model_version=bundle.model_version,
                embedding=vectors[row] if vectors is not None else None,
            )
        )
    return results


class Enricher:
    """Loaded model + tokenizer + cache; ``predict(texts)`` is the only thing callers need."""

    def __init__(self, bundle: Bundle, backend: Backend, batch_size: int = 64, cache_size: int = 50_000):
        from tokenizers import Tokenizer

        self.bundle = bundle
        self.backend = backend
        self.batch_size = batch_size
        self.cache: ResultCache[TextEnrichment] = ResultCache(cache_size)
        self.tokenizer = Tokenizer.from_file(str(bundle.path / "tokenizer.json"))
        self.tokenizer.enable_truncation(bundle.max_tokens)
        self.tokenizer.no_padding()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    @classmethod
    def load(cls, variant: str | Path = "minilm-l6", backend: str = "onnx", threads: int = 0,
             batch_size: int = 64, cache_size: int = 50_000) -> "Enricher":
        bundle = Bundle.load(variant_dir(str(variant)))
        return cls(bundle, load_backend(bundle, backend, threads), batch_size, cache_size)

    @property
    def model_version(self) -> str:
        return self.bundle.model_version

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of already-normalised texts, truncated, unpadded."""
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def run_model(self, texts: list[str]) -> list[TextEnrichment]:
        """The forward passes for normalised ``texts`` (no cache), in input order."""
        results: list[TextEnrichment | None] = [None] * len(texts)
        for rows, input_ids, mask in padded_batches(self.encode(texts), self.batch_size, self.pad_id):
            outputs = self.backend.run(input_ids, mask)
            heads = len(self.bundle.outputs)
            pooled = outputs[heads] if len(outputs) > heads else None
            decoded = decode(self.bundle, dict(zip(self.bundle.outputs, outputs[:heads])), pooled)
            for i, result in zip(rows, decoded):
                results[i] = result
        return results  # type: ignore[return-value]

    def predict(self, texts: list[str]) -> list[TextEnrichment]:
        """One result per text, in input order; copies of a text already seen reuse its result."""
        normalised = [normalise_for_model(t) for t in texts]
        keys = [near_duplicate_key(t) for t in texts]
        results: list[TextEnrichment | None] = [self.cache.get(k) for k in keys]
        todo: dict[bytes, int] = {}  # first occurrence of each uncached key in this batch
        for i, (key, result) in enumerate(zip(keys, results)):
            if result is None and key not in todo:
                todo[key] = i
        if todo:
            fresh = self.run_model([normalised[i] for i in todo.values()])
            for key, result in zip(todo, fresh):
                self.cache.put(key, result)
            by_key = dict(zip(todo, fresh))
            for i, key in enumerate(keys):
                if results[i] is None:
                    results[i] = by_key[key]
                    if i != todo[key]:  # a copy later in the same batch: a reuse, not a model run
                        self.cache.record_reuse()
        return results  # type: ignore[return-value]
