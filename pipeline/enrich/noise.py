"""Noise control for one worker: links near-duplicates and scores spam on enriched mentions.

Holds the worker's ``NearDuplicateIndex`` and ``AuthorActivity`` (memory, bounded) and fills
``simhash``, ``duplicate_of`` and ``spam`` on each mention, in stream order. It returns the new
echo counts of first posts, which the indexer writes onto those posts (``EchoCount``). No I/O.

Scope: one worker sees the partitions it owns (mentions are keyed by id), so with several
workers a copy is linked when it lands on the worker that saw the first post, or when that
first post was indexed before the worker (re)started (it warms up from the index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pipeline.enrich.near_dup import NearDuplicateIndex, simhash
from pipeline.schema import EnrichedMention, Spam
from pipeline.enrich.spam import AuthorActivity, SpamFeatures, account_age_days, spam_score


@dataclass(frozen=True)
class EchoCount:
    """A first post's echo count, to be written onto its document."""

    id: str
    created_at: datetime
    echoes: int


def features(m: EnrichedMention, posts_last_hour: int, now: datetime) -> SpamFeatures:
    return SpamFeatures(
        model_spam=m.purpose_scores.spam if m.purpose_scores else 0.0,
        author_posts_last_hour=posts_last_hour,
        account_age_days=account_age_days(m.raw, now),
        followers=m.author.followers,
        words=max(1, len(m.text.split())),
        links=len(m.entities.urls),
        hashtags=len(m.entities.hashtags),
        handles=len(m.entities.handles),
        is_echo=m.duplicate_of is not None,
    )


class NoiseControl:
    def __init__(self, near_dups: NearDuplicateIndex | None = None, activity: AuthorActivity | None = None):
        self.near_dups = near_dups or NearDuplicateIndex()
        self.activity = activity or AuthorActivity()

    def mark(self, mentions: list[EnrichedMention], now: datetime) -> list[EchoCount]:
        """Fill the noise fields of ``mentions`` (in place); the echo counts that changed.

        "First" means first seen by this worker; within a batch, earliest published (records of
        different partitions arrive in no particular order)."""
        counts: dict[str, EchoCount] = {}
        # Partitions interleave in a batch: in publication order, the original precedes its copies.
        for m in sorted(mentions, key=lambda m: m.created_at):
            at = m.created_at.timestamp()
            fingerprint = simhash(m.text)
            m.simhash = f"{fingerprint:016x}" if fingerprint is not None else None
            link = self.near_dups.link(m.id, fingerprint, at)
            # A repost the platform declares (an X retweet: raw.echo_of, set by the connector) is
            # an echo of that post even when this worker never saw the original's text.
            declared = m.raw.get("echo_of") if isinstance(m.raw, dict) else None
            m.duplicate_of = declared if isinstance(declared, str) and declared != m.id else link.duplicate_of
            if (link.first_echoes is not None and link.duplicate_of and link.duplicate_of == m.duplicate_of
                    and link.first_created_at is not None):
                first_at = datetime.fromtimestamp(link.first_created_at, tz=timezone.utc)
                counts[link.duplicate_of] = EchoCount(link.duplicate_of, first_at, link.first_echoes)
            posts = self.activity.observe(m.author.handle and f"{m.source}:{m.author.handle}", at)
            score, signals = spam_score(features(m, posts, now))
            m.spam = Spam(score=score, signals=signals)
        return list(counts.values())
