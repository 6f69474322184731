"""Serve multilingual sentiment: ``MultilingualSentiment.predict(texts)`` -> one ``ClassLabel`` each.

    model = MultilingualSentiment.load()
    model.predict(["Me encanta este teléfono", "Der Zug ist schon wieder zu spät"])

The shipped folder (``models/weights/multilingual-e5-small/``) holds the int8 ONNX encoder
(input_ids, attention_mask -> mean-pooled 384-d ``embedding``), the trimmed tokenizer, the
sentiment head (``head.json``: a linear layer over the unit-length embedding) and
``model.json``. Texts get E5's ``query: `` prefix, as in training. No I/O beyond loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.batching import padded_batches
from models.bundle import WEIGHTS_DIR
from models.enricher import ClassLabel, softmax
from models.tasks import SENTIMENT
from models.text import normalise_for_model

VARIANT = "multilingual-e5-small"
ONNX_FILE = "encoder.int8.onnx"
HEAD_FILE = "head.json"
MANIFEST = "model.json"
E5_PREFIX = "query: "  # E5's convention for classification inputs (passage: is for retrieval documents)


def model_input(text: str) -> str:
    """What the tokenizer reads: normalised as the English model does, with E5's prefix."""
    return E5_PREFIX + normalise_for_model(text)


class PooledEncoder:
    """The int8 ONNX encoder with its tokenizer: texts -> unit-length (n, 384) float32 vectors."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_tokens: int = 128, threads: int = 0,
                 batch_size: int = 64):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        self.pad_id = self.tokenizer.token_to_id("<pad>")
        self.batch_size = batch_size

    def embed_inputs(self, inputs: list[str]) -> np.ndarray:
        """Vectors of already-prefixed model inputs (see ``model_input``), in input order."""
        ids = [e.ids for e in self.tokenizer.encode_batch(inputs)]
        out = np.zeros((len(inputs), 384), dtype=np.float32)
        for rows, input_ids, mask in padded_batches(ids, self.batch_size, self.pad_id):
            (pooled,) = self.session.run(["embedding"], {"input_ids": input_ids, "attention_mask": mask})
            out[rows] = pooled
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_inputs([model_input(t) for t in texts])


@dataclass(frozen=True)
class LinearHead:
    """logits = x @ weight.T + bias, on unit-length embeddings."""

    weight: np.ndarray  # (classes, 384)
    bias: np.ndarray  # (classes,)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def to_json(self) -> dict:
        return {"weight": np.round(self.weight, 6).tolist(), "bias": np.round(self.bias, 6).tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "LinearHead":
        return cls(np.asarray(data["weight"], dtype=np.float32), np.asarray(data["bias"], dtype=np.float32))


class MultilingualSentiment:
    """Sentiment (negative / neutral / positive) for the languages in ``model.json``'s ``languages``."""

    def __init__(self, path: Path, threads: int = 0, batch_size: int = 64):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no multilingual model at {self.path} (missing {MANIFEST}); see models/README.md")
        self.meta = json.loads(manifest_path.read_text())
        if tuple(self.meta["labels"]) != SENTIMENT.labels:
            raise ValueError(f"{manifest_path}: labels {self.meta['labels']}, this code expects {SENTIMENT.labels}")
        self.languages = frozenset(self.meta["languages"])
        self.encoder = PooledEncoder(self.path / ONNX_FILE, self.path / "tokenizer.json",
                                     int(self.meta.get("max_tokens", 128)), threads, batch_size)
        self.head = LinearHead.from_json(json.loads((self.path / HEAD_FILE).read_text()))

    @classmethod
    def load(cls, path: Path | None = None, threads: int = 0, batch_size: int = 64) -> "MultilingualSentiment":
        return cls(path or WEIGHTS_DIR / VARIANT, threads, batch_size)

    @property
    def model_version(self) -> str:
        return f"{self.meta['name']}@{self.meta['version']}"

    def predict(self, texts: list[str]) -> list[ClassLabel]:
        if not texts:
            return []
        probs = softmax(self.head.logits(self.encoder.embed(texts)))
        labels = SENTIMENT.labels
        return [ClassLabel(labels[int(p.argmax())], {name: round(float(v), 4) for name, v in zip(labels, p)})
                for p in probs]
