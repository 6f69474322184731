"""Counts into what comms teams read: shares, net sentiment, share of voice, period deltas. Pure.

Shares are fractions 0..1. Sentiment shares and net sentiment are over the mentions that have a
sentiment reading (posts in languages the models do not read have none); emotion shares over those
with an emotion reading; purpose shares over all counted mentions (a post can serve several
purposes, so they need not sum to 1). A share with nothing to divide by is 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.analytics.series import Counts, Series, series_totals


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def shares(counts: dict[str, int]) -> dict[str, float]:
    whole = sum(counts.values())
    return {key: ratio(value, whole) for key, value in counts.items()}


def net_sentiment(sentiment: dict[str, int]) -> float:
    """(positive - negative) / mentions with a sentiment reading: -1..1."""
    return ratio(sentiment["positive"] - sentiment["negative"], sum(sentiment.values()))


def mix(counts: Counts, top_purposes: int = 5) -> dict[str, Any]:
    """One brand's period in numbers: volume, sentiment/emotion mixes, top purposes, complaints."""
    purposes = sorted(((p, n) for p, n in counts.purposes.items() if n), key=lambda item: (-item[1], item[0]))
    return {
        "volume": counts.volume,
        "voices": counts.voices,
        "complaints": counts.complaints,
        "complaint_share": ratio(counts.complaints, counts.volume),
        "sentiment": {"counts": dict(counts.sentiment), "shares": shares(counts.sentiment)},
        "net_sentiment": net_sentiment(counts.sentiment),
        "emotion": {"counts": dict(counts.emotion), "shares": shares(counts.emotion)},
        "purposes": [{"purpose": p, "count": n, "share": ratio(n, counts.volume)} for p, n in purposes[:top_purposes]],
    }


def change(now: float, before: float) -> float | None:
    """Relative change, e.g. 0.25 for +25 %; None when there was nothing before."""
    return (now - before) / before if before else None


def deltas(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Current minus previous period: absolute differences (shares in points of 0..1) and the volume's
    relative change."""
    return {
        "volume": current["volume"] - previous["volume"],
        "volume_change": change(current["volume"], previous["volume"]),
        "complaints": current["complaints"] - previous["complaints"],
        "net_sentiment": current["net_sentiment"] - previous["net_sentiment"],
        "sentiment_shares": {k: current["sentiment"]["shares"][k] - previous["sentiment"]["shares"][k]
                             for k in current["sentiment"]["shares"]},
        "emotion_shares": {k: current["emotion"]["shares"][k] - previous["emotion"]["shares"][k]
                           for k in current["emotion"]["shares"]},
    }


def sentiment_series(series: Series, brand: str) -> list[dict[str, Any]]:
    """Per bucket: volume, sentiment counts and net sentiment of one brand."""
    return [{"start": start, "volume": per_brand[brand].volume, "voices": per_brand[brand].voices,
             "complaints": per_brand[brand].complaints, **per_brand[brand].sentiment,
             "net_sentiment": net_sentiment(per_brand[brand].sentiment)}
            for start, per_brand in sorted(series.items(), key=lambda item: item[0] or datetime.min)]


def _voice(per_brand: dict[str, Counts], brands: list[str]) -> dict[str, dict[str, Any]]:
    volume = {b: per_brand[b].volume for b in brands}
    positive = {b: per_brand[b].sentiment["positive"] for b in brands}
    negative = {b: per_brand[b].sentiment["negative"] for b in brands}
    return {"volume": volume, "share": shares(volume), "positive_share": shares(positive),
            "negative_share": shares(negative)}


def share_of_voice(series: Series, brands: list[str]) -> dict[str, Any]:
    """Each brand's part of the listed brands' mentions (and of their positive and negative ones),
    in total and per bucket: ``{"totals": {brand: {...}}, "buckets": [{"start", "volume", ...}]}``."""
    overall = _voice(series_totals(series), brands)
    totals = {b: {"volume": overall["volume"][b], "share": overall["share"][b],
                  "positive_share": overall["positive_share"][b], "negative_share": overall["negative_share"][b]}
              for b in brands}
    buckets = [{"start": start, **_voice(per_brand, brands)}
               for start, per_brand in sorted(series.items(), key=lambda item: item[0] or datetime.min)]
    return {"totals": totals, "buckets": buckets}
