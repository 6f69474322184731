"""Draw the posts a person checks by hand to measure the purpose head's precision.

    python -m models.purpose_sample [--per-purpose 30] [--out .earshot/purpose-sample.jsonl]

The posts are ones the purpose head never trained on: TweetEval val texts, the held-out 30% of
the complaint set, and the 15% of the weak-label pool held out for this check
(``models.purpose_head.held_out_for_check``). For each purpose, a seeded random sample of
the posts the shipped model assigns it. A reviewer reads each one and records a verdict; the tallies go
into ``models/purpose_precision.json`` and the model card.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from models.data import (DEFAULT_DATA, REPO_ROOT, MissingData, complaints_path, load_complaints,
                         load_tweeteval, require_data, split_complaints)
from models.tasks import PURPOSES


def unseen_posts(data: Path) -> list[str]:
    from models.purpose_head import held_out_for_check, real_post_pool

    texts: list[str] = []
    for task in ("sentiment", "emotion", "offensive", "hate", "irony"):
        texts += load_tweeteval(data, task, "val")[0]
    texts += [r.text for r in split_complaints(load_complaints(complaints_path(data)))[1]]
    texts += [t for t in real_post_pool(data)[0] if held_out_for_check(t)]
    return list(dict.fromkeys(texts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-purpose", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".earshot" / "purpose-sample.jsonl")
    args = parser.parse_args(argv)
    try:
        require_data(args.data)
    except MissingData as exc:
        print(exc, file=sys.stderr)
        return 2

    from models.enricher import Enricher

    model = Enricher.load("minilm-l6", cache_size=0)
    posts = unseen_posts(args.data)
    readings = model.predict(posts)
    rng = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts = {}
    with args.out.open("w", encoding="utf-8") as fh:
        for purpose in PURPOSES:
            assigned = [i for i, r in enumerate(readings) if purpose in r.purposes]
            counts[purpose] = len(assigned)
            for i in sorted(rng.sample(assigned, min(args.per_purpose, len(assigned)))):
                fh.write(json.dumps({"purpose": purpose, "score": readings[i].purpose_scores[purpose],
                                     "text": posts[i]}, ensure_ascii=False) + "\n")
    print(json.dumps({"posts": len(posts), "assigned": counts, "model": model.model_version}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
