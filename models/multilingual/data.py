"""XLM-T / UMSAB sentiment in seven languages (``../shared/data/xlm-t-sentiment``), train and val.

Labels are TweetEval's: 0 negative, 1 neutral, 2 positive. English is not in that folder (its
XLM-T train split overlaps TweetEval's sentiment val); English comes from SemEval
(``models.data.load_semeval``) and is served by the English model.
"""

from __future__ import annotations

from pathlib import Path

from models.data import DEFAULT_DATA

# ISO 639-1 code -> folder; the languages the multilingual model serves.
XLMT_LANGUAGES = {"ar": "arabic", "de": "german", "es": "spanish", "fr": "french", "hi": "hindi",
                  "it": "italian", "pt": "portuguese"}


def load_xlmt(language: str, split: str, data: Path = DEFAULT_DATA) -> tuple[list[str], list[int]]:
    """``(texts, labels)`` of one language's ``train`` or ``val`` split (never the test split)."""
    if split not in ("train", "val"):
        raise ValueError(f"split {split!r}: only train and val are read (test stays held out)")
    folder = data / "xlm-t-sentiment" / XLMT_LANGUAGES[language]
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (folder / f"{split}_labels.txt").read_text().split()]
    if len(texts) != len(labels):
        raise ValueError(f"{folder}: {len(texts)} texts but {len(labels)} labels in {split}")
    return texts, labels
