"""The multi-task network: one transformer encoder, mean pooling, one linear head per task.

One forward pass yields every task's logits. The same module is trained
(``models/train.py``), run eagerly by the PyTorch backend and exported to ONNX
(``models/export.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.tasks import Task


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding, shape (batch, width)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class MultiTaskModel(nn.Module):
    """Encoder + pooled features + ``{task: logits}``."""

    def __init__(self, encoder: nn.Module, tasks: tuple[Task, ...], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.task_names = [t.name for t in tasks]
        width = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({t.name: nn.Linear(width, len(t.labels)) for t in tasks})

    def add_head(self, task: Task, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Attach a head trained outside the fine-tune (the purpose head) to the same pass."""
        head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        self.heads[task.name] = head
        if task.name not in self.task_names:
            self.task_names.append(task.name)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits of every head, in ``task_names`` order (a tuple, so ONNX export names them)."""
        pooled = self.dropout(self.features(input_ids, attention_mask))
        return tuple(self.heads[name](pooled) for name in self.task_names)


def build_encoder(source_dir: Path, layers: int | None = None) -> nn.Module:
    """Load the packaged encoder, keeping only its first ``layers`` transformer layers if given."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(source_dir), local_files_only=True)  # nosec B615  # a local folder: never fetched from the Hub
    if layers is not None and layers < encoder.config.num_hidden_layers:
        encoder.encoder.layer = encoder.encoder.layer[:layers]
        encoder.config.num_hidden_layers = layers
    return encoder
