"""Deterministic stand-ins for the author and engagement fields a text-only corpus lacks.

Every generated value derives from the mention id alone, so a replay produces the same
author and metrics each time. ``raw["synthetic"] = True`` and ``raw["synthetic_fields"]``
say which fields were made up, so no one mistakes them for data.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

_FIRST = ["alex", "sam", "jo", "chris", "pat", "kim", "lee", "max", "ria", "noor", "tom", "ana", "li", "dev", "eve"]
_SECOND = ["flyer", "travels", "tech", "daily", "fan", "writes", "nyc", "la", "codes", "reads", "says", "jr", "hq"]

SYNTHETIC_FIELDS = ["author", "metrics"]


def _rng(mention_id: str) -> random.Random:
    seed = int.from_bytes(hashlib.sha256(mention_id.encode("utf-8")).digest()[:8], "big")
    return random.Random(seed)


def synthetic_author_and_metrics(mention_id: str) -> dict[str, Any]:
    """``author`` and ``metrics`` dicts for a mention id; heavy-tailed like real accounts."""
    rng = _rng(mention_id)
    first, second = rng.choice(_FIRST), rng.choice(_SECOND)
    handle = f"{first}_{second}{rng.randrange(1, 10_000)}"
    # Follower counts are roughly log-normal on real platforms: median ~300, long tail.
    followers = int(math.exp(rng.gauss(5.7, 1.8)))
    verified = followers > 50_000 and rng.random() < 0.3
    reach = max(1.0, math.log10(followers + 1))
    likes = int(rng.expovariate(1.0) * reach * 2)
    return {
        "author": {
            "handle": handle,
            "display_name": f"{first.title()} {second.title()}",
            "followers": followers,
            "verified": verified,
        },
        "metrics": {
            "likes": likes,
            "shares": int(likes * rng.random() * 0.4),
            "replies": int(rng.expovariate(2.0) * reach),
        },
    }
