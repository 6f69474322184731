"""Do not run the model twice on the same text: a bounded cache keyed by a near-duplicate key.

Retweets ("RT @someone: ..."), copy-paste campaigns and the same post with another link or
handle all reduce to one key, so they reuse the first copy's result. The key is the text
lower-cased, without a leading RT marker, URLs, handles and punctuation: exactly the parts
that make copies differ and that carry no sentiment for the model (it sees handles as
``@user`` and URLs as ``http`` anyway).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Generic, TypeVar

_RT = re.compile(r"^\s*(?:rt|mt)\s+@\w+:?\s*", re.IGNORECASE)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

V = TypeVar("V")


def near_duplicate_key(text: str) -> bytes:
    """16-byte key shared by a post and its retweets / re-linked / re-addressed copies."""
    stripped = _HANDLE.sub(" ", _URL.sub(" ", _RT.sub("", text)))
    canonical = _NON_WORD.sub(" ", stripped.lower()).strip()
    if not canonical:  # emoji-only or link-only posts: fall back to the exact text
        canonical = "\x00" + text
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ResultCache(Generic[V]):
    """Least-recently-used map with a fixed capacity and hit/miss counters."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[bytes, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> V | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: bytes, value: V) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def record_reuse(self) -> None:
        """A lookup that missed was then served by a copy computed in the same batch."""
        self.misses -= 1
        self.hits += 1

    def __len__(self) -> int:
        return len(self._items)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
