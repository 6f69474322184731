"""Trim XLM-R's 250k-piece vocabulary to the pieces the served languages use.

96M of multilingual-e5-small's 117.5M parameters are word embeddings. Keeping the pieces that
the unigram tokenizer picks on a corpus of the served languages, plus every single-character
piece of their scripts (so an unseen word still splits into known pieces rather than
``<unk>``), keeps tokenisation of that corpus identical: a Viterbi best path made of kept
pieces stays the best path when other pieces are removed.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Iterable

import numpy as np

# Scripts of en, ar, de, es, fr, hi, it, pt (unicodedata names start with these).
SCRIPTS = ("LATIN", "ARABIC", "DEVANAGARI", "DIGIT", "EMOJI")


def _is_served_char(piece: str) -> bool:
    text = piece.lstrip("\u2581")
    if not text:
        return True  # the bare word-start marker
    if len(text) != 1:
        return False
    ch = text
    if not ch.isalpha() and not ch.isdigit():
        return True  # punctuation, symbols, emoji: keep them all
    name = unicodedata.name(ch, "")
    return name.startswith(SCRIPTS) or "DIGIT" in name


def pieces_used(tokenizer, texts: Iterable[str], batch: int = 2048) -> set[int]:
    """Ids the tokenizer produces on ``texts`` (special tokens included)."""
    used: set[int] = set()
    texts = list(texts)
    for start in range(0, len(texts), batch):
        for enc in tokenizer.encode_batch(texts[start : start + batch]):
            used.update(enc.ids)
    return used


def choose_pieces(tokenizer_json: dict, used: set[int]) -> np.ndarray:
    """Sorted original ids to keep: specials, the used pieces and the served scripts' characters."""
    vocab = tokenizer_json["model"]["vocab"]
    special = {tok["id"] for tok in tokenizer_json["added_tokens"]}
    keep = set(used) | special | {i for i, (piece, _) in enumerate(vocab) if _is_served_char(piece)}
    return np.array(sorted(keep), dtype=np.int64)


def trimmed_tokenizer_json(tokenizer_json: dict, keep_ids: np.ndarray) -> dict:
    """The same tokenizer (normaliser, pre-tokeniser, template) over the kept pieces, renumbered."""
    new_id = {int(old): new for new, old in enumerate(keep_ids)}
    out = copy.deepcopy(tokenizer_json)
    vocab = tokenizer_json["model"]["vocab"]
    out["model"]["vocab"] = [vocab[int(i)] for i in keep_ids]
    out["model"]["unk_id"] = new_id[tokenizer_json["model"]["unk_id"]]
    out["added_tokens"] = [{**tok, "id": new_id[tok["id"]]} for tok in tokenizer_json["added_tokens"]
                           if tok["id"] in new_id]
    specials = (out.get("post_processor") or {}).get("special_tokens", {})
    for entry in specials.values():
        entry["ids"] = [new_id[i] for i in entry["ids"]]
    return out


def load_tokenizer_json(path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
