"""Two ways to run the same exported network: ONNX Runtime (int8) or eager PyTorch.

Both take padded ``input_ids`` / ``attention_mask`` (int64, shape batch x tokens) and return
the logits of every head in the bundle's ``outputs`` order, as numpy arrays.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from models.bundle import Bundle

BACKENDS = ("onnx", "torch")


class Backend(Protocol):
    name: str

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]: ...


class OnnxBackend:
    """ONNX Runtime on the CPU, int8 weights (dynamic quantisation)."""

    name = "onnx-int8"

    def __init__(self, bundle: Bundle, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(bundle.onnx_path), options, providers=["CPUExecutionProvider"])
        self.output_names = list(bundle.outputs)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {"input_ids": input_ids, "attention_mask": attention_mask})


class TorchBackend:
    """Eager PyTorch, fp32 in memory (weights stored as fp16, word embeddings as int8 rows)."""

    name = "torch-fp32"

    def __init__(self, bundle: Bundle, threads: int = 0):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel

        from models.export import expand_state
        from models.network import MultiTaskModel

        if not bundle.torch_path.exists():
            raise FileNotFoundError(f"{bundle.model_version} ships no PyTorch weights (ONNX only, to keep the "
                                    "repository's weights small); use the onnx backend")
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(bundle.path), local_files_only=True))  # nosec B615  # a local folder: never fetched from the Hub
        self.model = MultiTaskModel(encoder, bundle.tasks)
        self.model.load_state_dict(expand_state(load_file(str(bundle.torch_path))))
        self.model.eval()

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            outputs = self.model(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        return [o.numpy() for o in outputs]


def load_backend(bundle: Bundle, name: str = "onnx", threads: int = 0) -> Backend:
    if name == "onnx":
        return OnnxBackend(bundle, threads)
    if name == "torch":
        return TorchBackend(bundle, threads)
    raise ValueError(f"unknown model backend {name!r}; choose one of {', '.join(BACKENDS)}")
