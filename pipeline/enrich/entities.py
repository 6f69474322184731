"""Extract @handles, #hashtags, $cashtags and URLs from a post's text.

Elasticsearch's standard analyzer strips the sigils, so ``@Delta``, ``#delta`` and ``delta``
would all become the token ``delta``; keeping them as separate keyword fields lets a user ask
for the handle, the hashtag or the cashtag on its own.
"""

from __future__ import annotations

import re

from pipeline.schema import Entities

# A URL runs to the next whitespace; trailing punctuation is not part of it.
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
# A sigil counts only at the start of a token: "me@example.com" holds no handle.
_HANDLE = re.compile(r"(?<![\w@#$&])@(\w{1,50})")
_HASHTAG = re.compile(r"(?<![\w@#$&])#(\w*[^\W\d]\w*)")  # "#1" is a number, not a hashtag
_CASHTAG = re.compile(r"(?<![\w@#$&])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?!\w)")


def _unique(items: list[str]) -> list[str]:
    """De-duplicate, keeping first-seen order."""
    return list(dict.fromkeys(items))


def extract_urls(text: str) -> list[str]:
    return _unique([m.group(0).rstrip(_URL_TRAILING) for m in _URL.finditer(text)])


def extract_entities(text: str) -> Entities:
    """All sigil entities of ``text``; handles and hashtags lower-cased, cashtags upper-cased."""
    urls = extract_urls(text)
    # Remove URLs first so fragments like "page#section" are not read as hashtags.
    without_urls = _URL.sub(" ", text)
    return Entities(
        handles=_unique([h.lower() for h in _HANDLE.findall(without_urls)]),
        hashtags=_unique([h.lower() for h in _HASHTAG.findall(without_urls)]),
        cashtags=_unique([c.upper() for c in _CASHTAG.findall(without_urls)]),
        urls=urls,
    )
