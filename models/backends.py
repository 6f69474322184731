"""Two ways to run the same exported network: ONNX Runtime (int8) or eager PyTorch.

Both take padded ``input_ids`` / ``attention_mask`` (int64, shape batch x tokens) and return
the logits of every head in the bundle's ``outputs`` order, as numpy arrays, followed by the
sentence embedding the heads read (the mean-pooled encoder output, shape batch x width): the
network computes it anyway, so keeping it costs nothing.
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


EMBEDDING_OUTPUT = "embedding"


def with_embedding_output(onnx_path) -> bytes:
    """The exported graph with the pooled sentence vector (the tensor every head reads) added as
    the output ``embedding``; the shipped file stays as exported.

    The heads are quantised, so they read the pooled vector through ``DynamicQuantizeLinear`` (or
    directly, in an unquantised export); the pooled vector is the one input they share.
    """
    import onnx

    model = onnx.load(str(onnx_path))
    graph = model.graph
    if any(o.name == EMBEDDING_OUTPUT for o in graph.output):
        return model.SerializeToString()
    producers = {out: node for node in graph.node for out in node.output}
    head_inputs = []
    for output in graph.output:
        node = producers[output.name]
        while node.op_type not in ("MatMulInteger", "MatMul", "Gemm"):
            node = producers[node.input[0]]
        head_inputs.append(node.input[0])
    pooled = head_inputs[0]
    if len(set(head_inputs)) != 1:
        raise ValueError(f"{onnx_path}: the heads read different tensors; no single embedding to expose")
    if producers[pooled].op_type == "DynamicQuantizeLinear":
        pooled = producers[pooled].input[0]
    graph.node.append(onnx.helper.make_node("Identity", [pooled], [EMBEDDING_OUTPUT]))
    graph.output.append(onnx.helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


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
        self.session = ort.InferenceSession(with_embedding_output(bundle.onnx_path), options,
                                            providers=["CPUExecutionProvider"])
        self.output_names = [*bundle.outputs, EMBEDDING_OUTPUT]

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
            ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
            pooled = self.model.features(ids, mask)
            outputs = [self.model.heads[name](pooled) for name in self.model.task_names]
        return [o.numpy() for o in outputs] + [pooled.numpy()]


def load_backend(bundle: Bundle, name: str = "onnx", threads: int = 0) -> Backend:
    if name == "onnx":
        return OnnxBackend(bundle, threads)
    if name == "torch":
        return TorchBackend(bundle, threads)
    raise ValueError(f"unknown model backend {name!r}; choose one of {', '.join(BACKENDS)}")
