"""Evaluate the shipped sentiment model on TweetEval sentiment val (needs ../shared/data).

    make eval-sentiment   ->  bench/results/sentiment.json

Reports macro-recall (TweetEval's metric for this task), accuracy and per-class recall, and
the inference speed of the full model (encoder + head) on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from models.sentiment import LABELS, SentimentModel
from models.text import normalise_for_model
from models.train_sentiment import DEFAULT_DATA, load_tweeteval, macro_recall

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--head", type=Path, default=REPO_ROOT / "models" / "weights" / "sentiment_head.npz")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "sentiment.json")
    args = parser.parse_args(argv)
    if not (args.data / "tweeteval" / "sentiment").is_dir():
        print(f"evaluation data not found under {args.data}: it lives in ../shared/data on development "
              "machines only; nothing was evaluated", file=sys.stderr)
        return 2
    texts, y = load_tweeteval(args.data, "sentiment", "val")
    model = SentimentModel(args.head)
    started = time.perf_counter()
    results = model.predict([normalise_for_model(t) for t in texts])
    seconds = time.perf_counter() - started
    pred = np.array([LABELS.index(r.label) for r in results])
    report = {
        "model": model.name,
        "dataset": "tweeteval/sentiment/val",
        "n": len(texts),
        "macro_recall": round(macro_recall(y, pred), 4),
        "accuracy": round(float((pred == y).mean()), 4),
        "recall_per_class": {LABELS[c]: round(float((pred[y == c] == c).mean()), 4) for c in range(3)},
        "texts_per_s": round(len(texts) / seconds, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
