"""Candidate keyphrases of a post: the words and short phrases that themes and topics count.

The minimal Elasticsearch has no shingle filter and no stop-word lists, so phrases are computed
here, once per mention, and stored as the keyword field ``phrases``; the API then counts them
with ``terms`` / ``significant_terms`` (cheap) instead of re-analysing text.

A phrase is 1 to ``MAX_WORDS`` consecutive words of one clause (punctuation, a URL, an @handle, a
#hashtag, a number or a brand's name end a clause, so a phrase never spans them), lower-cased,
with no stop word at either edge ("lost my luggage" yes, "my luggage" no), no URL fragment, and
no word of the brands the post names ("united" never becomes a theme of United). Stop words are
scikit-learn's ``ENGLISH_STOP_WORDS`` (the Glasgow list) plus the chat fillers below. Pure.

``prefer_phrases`` is the read side: given counted phrases, it drops a shorter phrase when a
longer one containing it accounts for most of its mentions ("lost luggage" over "luggage").
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

MAX_WORDS = 3
MAX_PHRASES = 40  # per post: a long post's tail adds little to a theme and much to the index
MIN_WORD_CHARS = 2

# What links and markup leave behind once split into words.
URL_FRAGMENTS = frozenset({"http", "https", "www", "t.co", "tco", "co", "com", "amp", "quot", "gt", "lt", "nbsp",
                           "html", "htm", "php", "bit.ly", "utm"})
# Chat fillers and contractions the Glasgow list does not hold (it has no apostrophes).
CHAT_STOP_WORDS = frozenset({
    "im", "i'm", "ive", "i've", "id", "i'd", "ill", "i'll", "dont", "don't", "didnt", "didn't", "doesnt", "doesn't",
    "cant", "can't", "wont", "won't", "isnt", "isn't", "arent", "aren't", "wasnt", "wasn't", "havent", "haven't",
    "youre", "you're", "youve", "you've", "theyre", "they're", "thats", "that's", "theres", "there's", "its", "it's",
    "whats", "what's", "lets", "let's", "u", "ur", "r", "ya", "yall", "y'all", "pls", "plz", "please", "thx",
    "thanks", "thank", "lol", "lmao", "omg", "rt", "via", "just", "got", "gonna", "wanna", "gotta", "oh", "ok",
    "okay", "yes", "yeah", "hey", "hi", "hello", "really", "today", "tomorrow", "yesterday", "day", "time",
    "going", "know", "like", "make", "need", "new", "say", "said", "way", "want", "think", "good", "great", "guys",
    "did", "does", "doing", "let", "use", "used",
})
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | CHAT_STOP_WORDS

# Removed before splitting; each leaves a clause break behind.
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+\.(?:com|co|ly|net|org|io)(?:/\S*)?", re.IGNORECASE)
_SIGIL_TOKEN = re.compile(r"(?<![\w@#$&])[@#$][\w.]+")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)
# A word: letters (any script), with inner apostrophes or hyphens ("don't", "wi-fi"); digits end it.
_TOKEN = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*|\S")


def brand_words(names: Iterable[str]) -> frozenset[str]:
    """Lower-case words of brand names, aliases, handles, hashtags and cashtags."""
    words: set[str] = set()
    for name in names:
        for token in _TOKEN.findall(name.lower().replace("’", "'")):
            if token[0].isalpha():
                words.add(token)
    return frozenset(words)


def _clauses(text: str, excluded: frozenset[str]) -> list[list[str]]:
    """Runs of usable words; anything else (punctuation, numbers, brand words) breaks a run."""
    text = _ENTITY.sub(" | ", text)
    text = _URL.sub(" | ", text)
    text = _SIGIL_TOKEN.sub(" | ", text)
    clauses: list[list[str]] = [[]]
    for token in _TOKEN.findall(text.lower().replace("’", "'")):
        word = token.strip("'-")
        usable = (token[0].isalpha() and len(word) >= MIN_WORD_CHARS and word not in URL_FRAGMENTS
                  and word not in excluded and word.split("'")[0] not in excluded)
        if usable:
            clauses[-1].append(word)
        elif clauses[-1]:
            clauses.append([])
    return [c for c in clauses if c]


def extract_phrases(text: str, excluded: frozenset[str] = frozenset(), max_words: int = MAX_WORDS,
                    limit: int = MAX_PHRASES) -> list[str]:
    """Distinct candidate phrases of ``text`` in order of first appearance, at most ``limit``.

    ``excluded``: words that may not appear in any phrase (the named brands' words).
    """
    found: dict[str, None] = {}
    for clause in _clauses(text, excluded):
        for start, first in enumerate(clause):
            if first in STOP_WORDS:
                continue
            for end in range(start, min(start + max_words, len(clause))):
                if clause[end] in STOP_WORDS:
                    continue
                found.setdefault(" ".join(clause[start:end + 1]), None)
                if len(found) >= limit:
                    return list(found)
    return list(found)


PREFER_SHARE = 0.6  # a longer phrase holding this share of a shorter one's mentions replaces it


def _contains(longer: str, shorter: str) -> bool:
    return f" {shorter} " in f" {longer} "


def prefer_phrases(items: list[dict[str, Any]], size: int, count_key: str = "count",
                   prefer_share: float = PREFER_SHARE) -> list[dict[str, Any]]:
    """The first ``size`` of ``items`` (each with ``term`` and a count, best first) after dropping
    every phrase that a longer listed phrase containing it covers: one with at least
    ``prefer_share`` of its count. Order is kept."""
    kept = []
    for item in items:
        term, count = item["term"], item[count_key]
        covered = any(len(other["term"]) > len(term) and _contains(other["term"], term)
                      and other[count_key] >= prefer_share * count for other in items)
        if not covered:
            kept.append(item)
    return kept[:size]
