"""Small pieces several platform connectors share: platform timestamps, recently seen ids."""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from datetime import datetime, timezone
from typing import Any


def parse_utc(value: Any) -> datetime | None:
    """A platform's ISO time (``2024-09-09T19:46:02.102Z``; naive = UTC) as aware UTC, or None
    if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def utc_iso(value: Any) -> str | None:
    """``parse_utc`` as an ISO string (what a Mention's ``created_at`` carries), or None."""
    when = parse_utc(value)
    return when.isoformat() if when else None


class RecentIds:
    """The last ``size`` ids handed out: drops items seen twice (backfill and stream, two queries)."""

    def __init__(self, size: int = 50_000):
        self._order: deque[str] = deque()
        self._keys: set[str] = set()
        self._size = size

    def add(self, key: str) -> bool:
        """True if ``key`` is new (and remember it)."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._size:
            self._keys.discard(self._order.popleft())
        return True


# --- languages -----------------------------------------------------------------------------

# Retired ISO 639 codes some platforms still send (X sends ``in`` for Indonesian).
LEGACY_LANGUAGE_CODES = {"in": "id", "iw": "he", "ji": "yi", "jw": "jv", "mo": "ro", "sh": "sr"}
# Codes that name no language: undefined, X's codes for posts of only media, hashtags,
# mentions, cashtags, links or emoji, "no linguistic content", and similar.
NOT_A_LANGUAGE = frozenset({"und", "qam", "qct", "qht", "qme", "qst", "zxx", "art", "mul", "xx"})
# Languages the detector cannot tell apart reliably: a disagreement inside a group is no
# reason to overrule the author.
_SAME_LANGUAGE = ({"no", "nb", "nn", "da"}, {"ms", "id"}, {"hr", "sr", "bs", "sh"}, {"gl", "pt"},
                  {"ca", "es"}, {"uk", "ru", "be"}, {"cs", "sk"}, {"fil", "tl"})
# Overrule a declared language only when the detector is this sure (0..1) ...
OVERRULE_CONFIDENCE = 0.9
# ... and the text has at least this many letters (short posts fool character n-grams).
OVERRULE_MIN_LETTERS = 25


def declared_language(value: Any) -> str | None:
    """A platform's language tag with a legacy primary code mapped (``in`` -> ``id``,
    ``iw-IL`` -> ``he-IL``; a region is kept), or None if it names no language."""
    if not isinstance(value, str) or not value.strip():
        return None
    primary, sep, region = value.strip().replace("_", "-").partition("-")
    primary = primary.lower()
    if not primary.isalpha() or primary in NOT_A_LANGUAGE or len(primary) > 3:
        return None
    return LEGACY_LANGUAGE_CODES.get(primary, primary) + sep + region


def _primary(tag: str) -> str:
    return tag.split("-")[0].lower()


def _same_language(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in _SAME_LANGUAGE)


# Languages written in a script of their own (Unicode character-name prefixes): a post declared
# in one of them without a single letter of that script is not in it, however short.
_SCRIPTS: dict[str, tuple[str, ...]] = {
    "ja": ("HIRAGANA", "KATAKANA", "CJK"), "zh": ("CJK",), "ko": ("HANGUL", "CJK"),
    "ru": ("CYRILLIC",), "uk": ("CYRILLIC",), "bg": ("CYRILLIC",), "be": ("CYRILLIC",), "mk": ("CYRILLIC",),
    "kk": ("CYRILLIC",), "mn": ("CYRILLIC",), "ar": ("ARABIC",), "fa": ("ARABIC",), "ur": ("ARABIC",),
    "ps": ("ARABIC",), "he": ("HEBREW",), "yi": ("HEBREW",), "el": ("GREEK",), "th": ("THAI",),
    "hi": ("DEVANAGARI",), "mr": ("DEVANAGARI",), "ne": ("DEVANAGARI",), "bn": ("BENGALI",), "ta": ("TAMIL",),
    "te": ("TELUGU",), "kn": ("KANNADA",), "ml": ("MALAYALAM",), "gu": ("GUJARATI",), "pa": ("GURMUKHI",),
    "ka": ("GEORGIAN",), "hy": ("ARMENIAN",), "am": ("ETHIOPIC",), "km": ("KHMER",), "lo": ("LAO",),
    "my": ("MYANMAR",), "si": ("SINHALA",),
}
# Below this, a detector's guess is no better than "unknown" (short posts: "oh no!" reads as Italian).
GUESS_CONFIDENCE = 0.7
GUESS_MIN_LETTERS = 10  # ... and so is a guess from fewer letters ("pssssst" reads as German)


def _lacks_script(lang: str, letters: str) -> bool:
    """Whether ``letters`` (at least a few) hold none of the script ``lang`` is written in."""
    prefixes = _SCRIPTS.get(lang)
    if not prefixes or len(letters) < 3:
        return False
    return not any(unicodedata.name(ch, "").startswith(prefixes) for ch in letters)


# The labels connectors put around matchable text that is not the post's body (content warning,
# poll, media descriptions, link cards): English words, left out of language detection.
_MARKERS = re.compile(r"\[(?:CW|poll|image|video|gifv|audio|link): ")


def settle_language(declared: Any, text: str, raw: dict[str, Any]) -> str | None:
    """The language a record should carry: the declared one, unless the pipeline's detector is
    confident the text is in another language; then the detected one, with the declared value
    kept under ``raw["declared_lang"]`` (authors' and instances' defaults are often wrong: an
    English post declared ``tr``, a feed declaring ``kn``).

    Without a declared language it stays None: the pipeline guesses then, and records how sure.
    """
    lang = declared_language(declared)
    if declared is not None and (lang is None or lang != declared):
        raw.setdefault("declared_lang", declared)
    if lang is None or not text:
        return lang
    from pipeline.enrich.language import detect_language, strip_for_language  # loads the model on first use

    text = _MARKERS.sub(" ", text)  # our own "[image: ...]" labels are not the author's language
    letters = "".join(ch for ch in strip_for_language(text) if ch.isalpha())
    if _lacks_script(_primary(lang), letters):
        # Declared Japanese (an instance's default, say) for a post in Latin letters: wrong
        # whatever the length; the detector's guess if it has one, else unknown.
        guess = detect_language(text)
        raw["declared_lang"] = declared
        if guess.lang is None or guess.confidence < GUESS_CONFIDENCE or len(letters) < GUESS_MIN_LETTERS:
            return None
        raw["lang_detected_confidence"] = guess.confidence
        return LEGACY_LANGUAGE_CODES.get(guess.lang, guess.lang)
    if len(letters) < OVERRULE_MIN_LETTERS:
        return lang
    guess = detect_language(text)
    if guess.lang is None or guess.confidence < OVERRULE_CONFIDENCE:
        return lang
    detected = LEGACY_LANGUAGE_CODES.get(guess.lang, guess.lang)
    if _same_language(_primary(lang), detected):
        return lang
    raw["declared_lang"] = declared
    raw["lang_detected_confidence"] = guess.confidence
    return detected
