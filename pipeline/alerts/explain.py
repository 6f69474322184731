"""Significant terms: the words that explain a spike, found by comparing the spike's mentions
with the brand's recent background. Pure.

The background is a decayed document frequency per term (half-life ``half_life_s`` of event
time, so it follows what the brand is usually talked about this week, not this year), bounded in
size. A term's score is Dunning's log-likelihood ratio G2 of its document frequency in the
spike against the background, kept only when it is over-represented in the spike: it ranks
"recall", "outage" above "the", "flight" and needs no tuning per brand.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# A compact English stop list (scikit-learn's is larger but costs a heavy import in the worker).
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further get got had has
have having he her here hers herself him himself his how i if in into is it its itself just let me more
most my myself no nor not now of off on once only or other our ours ourselves out over own rt same she
should so some such than that the their theirs them themselves then there these they this those through
to too under until up very via was we were what when where which while who whom why will with would you
your yours yourself yourselves im dont cant its thats amp http https co www com today one new like
""".split())
_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"@\w+")
_TOKEN = re.compile(r"[#$]?[^\W\d_][\w'-]{2,}", re.UNICODE)


def terms_of(text: str) -> set[str]:
    """The distinct terms of a post: lower-case words of 3+ letters, hashtags and cashtags kept,
    links, @handles and stop words dropped."""
    text = _HANDLE.sub(" ", _URL.sub(" ", text.lower()))
    return {t.strip("'-") for t in _TOKEN.findall(text) if t.strip("'-") not in STOP_WORDS}


def g2(a: float, n1: float, b: float, n2: float) -> float:
    """Dunning's log-likelihood ratio for a term in ``a`` of ``n1`` spike documents and ``b``
    of ``n2`` background documents (0 when it is not over-represented in the spike)."""
    if n1 <= 0 or n2 <= 0 or a / n1 <= b / n2:
        return 0.0
    total = a + b
    e1, e2 = n1 * total / (n1 + n2), n2 * total / (n1 + n2)
    c, d = n1 - a, n2 - b
    f1, f2 = (n1 * (c + d)) / (n1 + n2), (n2 * (c + d)) / (n1 + n2)

    def part(observed: float, expected: float) -> float:
        return observed * math.log(observed / expected) if observed > 0 and expected > 0 else 0.0

    return 2.0 * (part(a, e1) + part(b, e2) + part(c, f1) + part(d, f2))


@dataclass
class Background:
    """Decayed document frequencies of a brand's terms (event time)."""

    half_life_s: float = 6 * 3600
    max_terms: int = 20_000
    documents: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    at: float | None = None  # event time (epoch s) the counts are decayed to

    def _decay_to(self, ts: float) -> None:
        if self.at is None:
            self.at = ts
        elif ts > self.at:
            factor = 0.5 ** ((ts - self.at) / self.half_life_s)
            self.documents *= factor
            for term in self.counts:
                self.counts[term] *= factor
            self.at = ts

    def add(self, terms: set[str], ts: float) -> None:
        # Decay in steps of a minute at most: a per-mention pass over every term would cost more
        # than the model does on a busy brand.
        if self.at is None or ts - self.at >= 60:
            self._decay_to(ts)
        self.documents += 1
        for term in terms:
            self.counts[term] = self.counts.get(term, 0.0) + 1.0
        if len(self.counts) > self.max_terms:
            keep = sorted(self.counts.items(), key=lambda kv: kv[1], reverse=True)[: self.max_terms // 2]
            self.counts = dict(keep)


def significant_terms(spike: list[set[str]], background: Background, top: int = 10,
                      min_count: int = 3) -> list[tuple[str, float, int, int]]:
    """(term, G2, spike count, background count rounded) of the terms that explain ``spike``.

    The spike's own documents are taken out of the background first if they were added to it.
    """
    counts: dict[str, int] = {}
    for doc in spike:
        for term in doc:
            counts[term] = counts.get(term, 0) + 1
    n1 = len(spike)
    n2 = max(background.documents - n1, 1.0)
    scored = []
    for term, a in counts.items():
        if a < min_count:
            continue
        b = max(background.counts.get(term, 0.0) - a, 0.0)
        score = g2(a, n1, b, n2)
        if score > 0:
            scored.append((term, round(score, 2), a, int(round(b))))
    scored.sort(key=lambda t: (-t[1], t[0]))
    return scored[:top]
