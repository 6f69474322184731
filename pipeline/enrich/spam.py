"""Spam and bot signals, combined into one score (0..1) per mention.

Signals, each a strength in 0..1 (why each: see ``SIGNALS``):
- ``model``: the purpose model's spam probability (trained on labelled spam posts);
- ``burst``: the author posts at a machine's rate (posts this worker saw in the last hour);
- ``new_account``: the account is days old (where the platform says when it was created);
- ``no_audience``: zero or a handful of followers (where the platform says);
- ``links`` / ``hashtags`` / ``handles``: link-, tag- or mention-stuffed text;
- ``echo``: a near-copy of an earlier post (copy-paste campaigns).
They are combined as a noisy-OR, ``1 - prod(1 - weight * strength)``: any strong signal raises
the score, weak ones add up without reaching certainty. Trends leave out mentions scoring
``>= EARSHOT_SPAM_THRESHOLD`` by default; the index keeps everything.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime

WEIGHTS = {
    "model": 0.9,
    "burst": 0.6,
    "new_account": 0.35,
    "no_audience": 0.25,
    "links": 0.35,
    "hashtags": 0.35,
    "handles": 0.3,
    "echo": 0.25,
}
BURST_PER_HOUR = 30  # posts/h at which "burst" is full strength (a person rarely sustains it)
NEW_ACCOUNT_DAYS = 30


@dataclass(frozen=True)
class SpamFeatures:
    model_spam: float = 0.0  # purpose model's spam probability, 0..1
    author_posts_last_hour: int = 1
    account_age_days: float | None = None
    followers: int | None = None
    words: int = 1
    links: int = 0
    hashtags: int = 0
    handles: int = 0
    is_echo: bool = False


def _clip(x: float) -> float:
    return max(0.0, min(1.0, x))


def signal_strengths(f: SpamFeatures) -> dict[str, float]:
    words = max(f.words, 1)
    strengths = {
        "model": _clip((f.model_spam - 0.3) / 0.6),  # the head's probabilities under 0.3 are noise
        "burst": _clip((f.author_posts_last_hour - 5) / (BURST_PER_HOUR - 5)),
        "links": _clip((f.links - 1) / 2) if f.links > 1 else 0.0,
        "hashtags": _clip((f.hashtags / words - 0.25) / 0.35) if f.hashtags >= 3 else 0.0,
        "handles": _clip((f.handles - 3) / 5),
        "echo": 1.0 if f.is_echo else 0.0,
    }
    if f.account_age_days is not None:
        strengths["new_account"] = _clip(1 - f.account_age_days / NEW_ACCOUNT_DAYS)
    if f.followers is not None:
        strengths["no_audience"] = _clip(1 - math.log10(f.followers + 1) / 1.5)  # 0 -> 1, >= ~30 -> 0
    return strengths


def spam_score(f: SpamFeatures) -> tuple[float, list[str]]:
    """(score 0..1, the signals that fired at half strength or more, strongest first)."""
    strengths = signal_strengths(f)
    keep = 1.0
    for name, strength in strengths.items():
        keep *= 1 - WEIGHTS[name] * strength
    fired = sorted((n for n, s in strengths.items() if s >= 0.5), key=lambda n: -strengths[n] * WEIGHTS[n])
    return round(1 - keep, 4), fired


class AuthorActivity:
    """Posts per author in a sliding hour, by the posts' own times (bounded: least recently
    active authors are forgotten first)."""

    def __init__(self, window_s: float = 3600, max_authors: int = 100_000):
        self.window_s = window_s
        self.max_authors = max_authors
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def observe(self, author: str | None, at: float) -> int:
        """Record a post by ``author`` at ``at`` (unix s); returns their posts in the window."""
        if not author:
            return 1
        times = self._times.pop(author, None) or deque()
        times.append(at)
        while times and times[0] < at - self.window_s:
            times.popleft()
        self._times[author] = times
        if len(self._times) > self.max_authors:
            self._times.popitem(last=False)
        return len(times)


def account_age_days(raw: dict, now: datetime) -> float | None:
    """Account age from what connectors put under ``raw`` (``account_created_at`` on Mastodon,
    ``author_created_at`` on X), in days; None when the platform does not say."""
    for key in ("account_created_at", "author_created_at"):
        value = raw.get(key)
        if isinstance(value, str):
            try:
                created = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if created.tzinfo is None:
                continue
            return max(0.0, (now - created).total_seconds() / 86400)
    return None
