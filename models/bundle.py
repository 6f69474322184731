"""A shipped model variant on disk: ``models/weights/<variant>/``.

    model.json              name, version, layers, task order and labels, purpose thresholds, dev scores
    model.int8.onnx         encoder + every head, int8 weights (ONNX Runtime backend)
    model.fp16.safetensors  the same network for eager PyTorch (fp16 on disk, word embeddings int8; fp32 in memory)
    config.json             the encoder's transformers config (layer count, widths)
    tokenizer.json          the encoder's WordPiece tokenizer (fast ``tokenizers`` format)

``models/export.py`` writes it; ``models/backends.py`` and ``models/enricher.py`` read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from models.tasks import TASKS_BY_NAME, Task

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "model.json"
ONNX_FILE = "model.int8.onnx"
TORCH_FILE = "model.fp16.safetensors"


@dataclass(frozen=True)
class Bundle:
    """The manifest of one variant, and where its files are."""

    path: Path
    name: str
    version: str
    layers: int
    outputs: tuple[str, ...]  # task names, in the network's output order
    purpose_thresholds: dict[str, float]
    max_tokens: int
    meta: dict

    @property
    def model_version(self) -> str:
        """What every enriched document records: ``<name>@<version>``."""
        return f"{self.name}@{self.version}"

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(TASKS_BY_NAME[name] for name in self.outputs)

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def torch_path(self) -> Path:
        return self.path / TORCH_FILE

    @classmethod
    def load(cls, path: Path) -> "Bundle":
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"no model at {path} (missing {MANIFEST}); see models/README.md")
        meta = json.loads(manifest.read_text())
        for name, labels in meta["labels"].items():
            if name not in TASKS_BY_NAME or tuple(labels) != TASKS_BY_NAME[name].labels:
                raise ValueError(f"{manifest}: task {name!r} has labels {labels}, this code expects "
                                 f"{TASKS_BY_NAME.get(name) and TASKS_BY_NAME[name].labels}")
        return cls(
            path=path,
            name=meta["name"],
            version=str(meta["version"]),
            layers=int(meta["layers"]),
            outputs=tuple(meta["outputs"]),
            purpose_thresholds={k: float(v) for k, v in meta.get("purpose_thresholds", {}).items()},
            max_tokens=int(meta.get("max_tokens", 128)),
            meta=meta,
        )


def variant_dir(variant: str) -> Path:
    """Folder of a shipped variant by name (``minilm-l6``, ``minilm-l3``) or an explicit path."""
    candidate = Path(variant)
    if candidate.is_dir():
        return candidate
    return WEIGHTS_DIR / variant
