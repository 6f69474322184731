"""The E5S1 / Q4_0 reader (models/multilingual/convert.py) and the vocabulary trim, on tiny
synthetic inputs whose values are worked out by hand."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from models.multilingual import convert, vocab


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then byte j = nibble j (low) | nibble j+16 (high) << 4."""
    assert len(nibbles) == 32
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def test_one_block_by_hand():
    # nibble q means weight (q - 8) * scale; scale 0.5
    nibbles = [8, 9, 7, 0, 15] + [8] * 11 + [10, 6, 12, 1] + [8] * 12
    weights = convert.dequantise_q4_0(q4_block(0.5, nibbles), 32)
    assert weights[:5].tolist() == [0.0, 0.5, -0.5, -4.0, 3.5]
    assert weights[5:16].tolist() == [0.0] * 11
    # high nibbles are the block's last 16 weights
    assert weights[16:20].tolist() == [1.0, -1.0, 2.0, -3.5]
    assert weights[20:].tolist() == [0.0] * 12


def test_blocks_follow_each_other_and_scales_are_fp16():
    raw = q4_block(0.25, [9] * 32) + q4_block(-2.0, [6] * 32)
    weights = convert.dequantise_q4_0(raw, 64)
    assert weights[:32].tolist() == [0.25] * 32
    assert weights[32:].tolist() == [4.0] * 32  # (6 - 8) * -2


def test_count_must_be_whole_blocks():
    with pytest.raises(ValueError):
        convert.dequantise_q4_0(q4_block(1.0, [8] * 32), 31)


H, FF, VOCAB, POS, TYPES = 32, 64, 6, 8, 2


def tiny_file(path, rng) -> dict[str, np.ndarray]:
    """A one-layer E5S1 file; matrices stored Q4_0 with scale 1, so weights are whole numbers."""
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "b"]
    shapes = {"emb.word": (VOCAB, H), "emb.pos": (POS, H), "emb.type": (TYPES, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
    for short, shape in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}.items():
        shapes[f"l0.{short}.w"], shapes[f"l0.{short}.b"] = shape, (shape[0],)
    for short in ("aln", "oln"):
        shapes[f"l0.{short}.w"], shapes[f"l0.{short}.b"] = (H,), (H,)
    quantised = {"emb.word"} | {f"l0.{s}.w" for s in ("q", "k", "v", "ao", "fi", "fo")}
    values, payloads = {}, {}
    for name, shape in shapes.items():
        if name in quantised:
            q = rng.integers(0, 16, size=int(np.prod(shape)))
            values[name] = (q - 8).astype(np.float32).reshape(shape)
            payloads[name] = (1, b"".join(q4_block(1.0, q[i : i + 32].tolist()) for i in range(0, q.size, 32)))
        else:
            values[name] = rng.standard_normal(shape).astype(np.float32)
            payloads[name] = (0, values[name].tobytes())
    blob = "".join(pieces).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, 1, 2, FF, VOCAB, POS, TYPES, 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.arange(len(pieces), dtype="<f4").tobytes() + blob + struct.pack("<iI", 0, 0)
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in shapes)
    offset, directory, body = len(head) + directory_size, struct.pack("<i", len(shapes)), b""
    for name, (dtype, data) in payloads.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, values[name].size,
                                                                               offset + len(body), len(data))
        body += data
    path.write_bytes(head + directory + body)
    return values


def test_file_to_bert_model(tmp_path):
    values = tiny_file(tmp_path / "tiny.bin", np.random.default_rng(0))
    model = convert.read_q4_file(tmp_path / "tiny.bin")
    assert (model.hidden, model.layers, model.ff, model.vocab_rows) == (H, 1, FF, VOCAB)
    assert model.pieces == ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "b"]
    assert model.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    bert = convert.build_bert(model, keep_ids=np.array([0, 1, 2, 3, 5]))
    state = bert.state_dict()
    # word rows follow keep_ids: row 4 of the trimmed table is piece 5 of the file
    assert np.array_equal(state["embeddings.word_embeddings.weight"][4].numpy(), values["emb.word"][5])
    assert np.array_equal(state["encoder.layer.0.intermediate.dense.weight"].numpy(), values["l0.fi.w"])
    assert np.array_equal(state["encoder.layer.0.output.dense.weight"].numpy(), values["l0.fo.w"])
    assert np.array_equal(state["encoder.layer.0.attention.output.LayerNorm.bias"].numpy(), values["l0.aln.b"])
    assert bert.config.vocab_size == 5 and bert.config.layer_norm_eps == pytest.approx(1e-12)


def test_bad_magic(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ValueError, match="E5S1"):
        convert.read_q4_file(tmp_path / "x.bin")


def unigram_json() -> dict:
    pieces = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["\u2581hola", -2.0], ["\u2581ho", -3.0],
              ["la", -3.0], ["\u2581", -4.0], ["h", -5.0], ["o", -5.0], ["l", -5.0], ["a", -5.0], ["\u2581猫", -2.0]]
    specials = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True} for i, (p, _) in enumerate(pieces[:4])]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}},
                                          {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                               "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                                              "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
            "decoder": None, "model": {"type": "Unigram", "unk_id": 3, "vocab": pieces, "byte_fallback": False}}


def test_trimmed_tokenizer_keeps_the_corpus_segmentation():
    from tokenizers import Tokenizer

    full = unigram_json()
    tok = Tokenizer.from_str(json.dumps(full))
    used = vocab.pieces_used(tok, ["hola"])
    assert used == {0, 2, 4}
    keep = vocab.choose_pieces(full, used)
    # specials, "▁hola", and the single Latin letters / bare "▁"; not "▁ho", "la" or the CJK piece
    assert keep.tolist() == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    trimmed = Tokenizer.from_str(json.dumps(vocab.trimmed_tokenizer_json(full, keep)))
    assert trimmed.encode("hola").tokens == ["<s>", "\u2581hola", "</s>"]
    assert trimmed.encode("hola").ids == [0, 4, 2]
    # an unseen word falls back to kept characters, not <unk>
    assert trimmed.encode("loa").tokens == ["<s>", "\u2581", "l", "o", "a", "</s>"]
