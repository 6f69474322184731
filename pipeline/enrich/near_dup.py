"""Near-duplicate detection: copies, retweets and copy-paste campaigns link to the first post.

Each text is normalised (case folded; URLs, @handles, a leading ``RT @x:`` and punctuation
removed, whitespace collapsed), cut into word 3-shingles, and hashed into a 64-bit SimHash
(Charikar 2002): texts that share most shingles get fingerprints a few bits apart. Two posts
are near-duplicates when their fingerprints differ in at most ``max_distance`` bits (3 by
default, as Manku et al. 2007 use for web pages). Candidates are found without comparing
against every post: the 64 bits are cut into ``max_distance + 1`` bands, and by the pigeonhole
principle two fingerprints within ``max_distance`` bits agree exactly on at least one band, so
a dict per band finds them.

``NearDuplicateIndex`` remembers recent first posts (bounded in count and age) and links each
new post to the earliest near-duplicate it knows, counting the echoes of each first post.
Replaying a post (at-least-once delivery) gives the same answer and does not count it twice.
Pure: no I/O; the worker warms it from the index at start-up.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_RETWEET = re.compile(r"^\s*rt\s+@\w+:?\s*", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_NON_WORD = re.compile(r"[^\w#$]+", re.UNICODE)
MIN_TOKENS = 5  # shorter texts ("thanks @united!") are alike by chance, not by copying
BITS = 64


def normalise(text: str) -> list[str]:
    """The words a copy keeps: no URLs (shorteners differ per copy), no @handles, no RT prefix."""
    text = _RETWEET.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    return _NON_WORD.sub(" ", text.casefold()).split()


def _hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


def simhash(text: str, shingle: int = 3) -> int | None:
    """64-bit SimHash of the text's word shingles, or None when it is too short to tell."""
    words = normalise(text)
    if len(words) < MIN_TOKENS:
        return None
    grams = {" ".join(words[i:i + shingle]) for i in range(max(1, len(words) - shingle + 1))}
    weights = [0] * BITS
    for gram in grams:
        h = _hash64(gram)
        for bit in range(BITS):
            weights[bit] += 1 if (h >> bit) & 1 else -1
    return sum(1 << bit for bit in range(BITS) if weights[bit] > 0)


def distance(a: int, b: int) -> int:
    """Hamming distance between two fingerprints, bits."""
    return (a ^ b).bit_count()


@dataclass
class _First:
    fingerprint: int
    created_at: float  # unix seconds, of the first post
    echoes: set[str] = field(default_factory=set)
    base_echoes: int = 0  # echoes counted before a restart (read back from the index)

    @property
    def count(self) -> int:
        return self.base_echoes + len(self.echoes)


@dataclass(frozen=True)
class Link:
    """A post's place among near-duplicates: ``duplicate_of`` the first post (None if it is one),
    and the first post's new echo count when this post added an echo."""

    duplicate_of: str | None
    first_echoes: int | None = None
    first_created_at: float | None = None


class NearDuplicateIndex:
    def __init__(self, max_distance: int = 3, max_items: int = 200_000, max_age_s: float = 7 * 86400):
        """``max_items`` first posts kept (oldest forgotten first); ``max_age_s``: a copy of a post
        older than this (s, by the posts' own times) starts a new thread of echoes."""
        self.max_distance = max_distance
        self.bands = max_distance + 1
        self.band_bits = BITS // self.bands
        self.max_items = max_items
        self.max_age_s = max_age_s
        self._firsts: OrderedDict[str, _First] = OrderedDict()
        self._buckets: list[dict[int, list[str]]] = [{} for _ in range(self.bands)]
        self._echo_of: OrderedDict[str, str] = OrderedDict()  # echo id -> first id (replays)

    def __len__(self) -> int:
        return len(self._firsts)

    def _band_keys(self, fingerprint: int) -> list[int]:
        mask = (1 << self.band_bits) - 1
        return [(fingerprint >> (i * self.band_bits)) & mask for i in range(self.bands)]

    def remember(self, mention_id: str, fingerprint: int, created_at: float, echoes: int = 0) -> None:
        """Know ``mention_id`` as a first post (at start-up, from the index)."""
        if mention_id in self._firsts:
            return
        self._firsts[mention_id] = _First(fingerprint, created_at, base_echoes=echoes)
        for band, key in enumerate(self._band_keys(fingerprint)):
            self._buckets[band].setdefault(key, []).append(mention_id)
        while len(self._firsts) > self.max_items:
            self._forget(next(iter(self._firsts)))

    def forget(self, mention_id: str) -> None:
        """The post was deleted (by its platform, or erased): later copies no longer link to it,
        and if it was an echo it no longer counts on its first post."""
        if mention_id in self._firsts:
            self._forget(mention_id)
        first_id = self._echo_of.pop(mention_id, None)
        if first_id in self._firsts:
            self._firsts[first_id].echoes.discard(mention_id)

    def _forget(self, mention_id: str) -> None:
        first = self._firsts.pop(mention_id)
        for band, key in enumerate(self._band_keys(first.fingerprint)):
            ids = self._buckets[band].get(key)
            if ids:
                ids.remove(mention_id)
                if not ids:
                    del self._buckets[band][key]

    def _nearest_first(self, fingerprint: int, created_at: float) -> str | None:
        best: tuple[float, str] | None = None
        for band, key in enumerate(self._band_keys(fingerprint)):
            for candidate in self._buckets[band].get(key, ()):
                first = self._firsts[candidate]
                if distance(first.fingerprint, fingerprint) > self.max_distance:
                    continue
                if created_at - first.created_at > self.max_age_s:
                    continue
                if best is None or (first.created_at, candidate) < best:
                    best = (first.created_at, candidate)
        return best[1] if best else None

    def link(self, mention_id: str, fingerprint: int | None, created_at: float) -> Link:
        """Where ``mention_id`` belongs; remembers it as a first post or counts it as an echo."""
        if mention_id in self._firsts:
            return Link(None)  # a replay of a first post
        if mention_id in self._echo_of:
            return Link(self._echo_of[mention_id])  # a replay of an echo: counted already
        if fingerprint is None:
            return Link(None)
        first_id = self._nearest_first(fingerprint, created_at)
        if first_id is None:
            self.remember(mention_id, fingerprint, created_at)
            return Link(None)
        first = self._firsts[first_id]
        first.echoes.add(mention_id)
        self._echo_of[mention_id] = first_id
        while len(self._echo_of) > self.max_items:
            self._echo_of.popitem(last=False)
        return Link(first_id, first.count, first.created_at)
