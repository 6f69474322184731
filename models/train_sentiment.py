"""Train the sentiment head on SemEval 2013-2016 tweets; evaluate on TweetEval sentiment val.

    python -m models.train_sentiment [--data ../shared/data] [--out models/weights/sentiment_head.npz]

Embeds every training tweet once with the frozen packaged encoder, fits a multinomial
logistic regression with balanced class weights (the metric is macro-recall and the data is
45% neutral), picks the regularisation strength on a held-out 10% of SemEval, and reports
macro-recall on TweetEval's val split (a clean dev set: its tweets were removed from the
SemEval file). Writes the head (.npz) and a JSON report next to it.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from models.sentiment import LABELS, SentimentHead
from models.text import normalise_for_model

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"


_ESCAPES = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")


def _unescape(text: str) -> str:
    """The file keeps JSON-style escapes (\\u2019, surrogate pairs for emoji); decode them."""

    def decode(match: re.Match[str]) -> str:
        units = match.group(0).encode("ascii").decode("unicode_escape")
        return units.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    return _ESCAPES.sub(decode, text)


def load_semeval(data: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    path = data / "semeval-sentiment" / "semeval2013-2016.tsv"
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["label"] in LABELS and row["text"]:
                texts.append(_unescape(row["text"]))
                labels.append(LABELS.index(row["label"]))
    return texts, np.array(labels)


def load_tweeteval(data: Path, task: str, split: str) -> tuple[list[str], np.ndarray]:
    folder = data / "tweeteval" / task
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (folder / f"{split}_labels.txt").read_text().split()]
    return texts, np.array(labels)


def macro_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 3) -> float:
    recalls = [float((y_pred[y_true == c] == c).mean()) for c in range(n_classes) if (y_true == c).any()]
    return float(np.mean(recalls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "weights" / "sentiment_head.npz")
    parser.add_argument("--limit", type=int, default=0, help="Train on the first N tweets only (smoke runs).")
    args = parser.parse_args(argv)
    if not (args.data / "semeval-sentiment").is_dir():
        print(f"training data not found under {args.data}: this needs the development data in ../shared/data", file=sys.stderr)
        return 2

    from sklearn.linear_model import LogisticRegression

    from models.encoder import ENCODER_NAME, SentenceEncoder

    texts, y = load_semeval(args.data)
    if args.limit:
        texts, y = texts[: args.limit], y[: args.limit]
    val_texts, val_y = load_tweeteval(args.data, "sentiment", "val")
    encoder = SentenceEncoder()
    started = time.perf_counter()
    x = encoder.embed([normalise_for_model(t) for t in texts])
    embed_s = time.perf_counter() - started
    x_val = encoder.embed([normalise_for_model(t) for t in val_texts])
    print(f"embedded {len(texts)} tweets in {embed_s:.0f} s ({len(texts) / embed_s:.0f}/s)")

    rng = np.random.default_rng(13)
    order = rng.permutation(len(texts))
    cut = int(len(order) * 0.9)
    fit_idx, hold_idx = order[:cut], order[cut:]
    best = None
    for c in (0.3, 1.0, 3.0, 10.0):
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        clf.fit(x[fit_idx], y[fit_idx])
        score = macro_recall(y[hold_idx], clf.predict(x[hold_idx]))
        print(f"C={c}: held-out SemEval macro-recall {score:.4f}")
        if best is None or score > best[0]:
            best = (score, c)
    assert best is not None
    clf = LogisticRegression(C=best[1], max_iter=2000, class_weight="balanced").fit(x, y)
    val_pred = clf.predict(x_val)
    val_recall = macro_recall(val_y, val_pred)
    per_class = {LABELS[c]: float((val_pred[val_y == c] == c).mean()) for c in range(3)}
    accuracy = float((val_pred == val_y).mean())
    print(f"TweetEval sentiment val: macro-recall {val_recall:.4f}, accuracy {accuracy:.4f}, per class {per_class}")

    meta = {
        "name": "minilm-l6-logreg-sentiment",
        "version": "1",
        "encoder": ENCODER_NAME,
        "trained_on": f"semeval2013-2016 ({len(texts)} tweets)",
        "C": best[1],
        "tweeteval_val_macro_recall": round(val_recall, 4),
        "tweeteval_val_accuracy": round(accuracy, 4),
        "tweeteval_val_recall_per_class": {k: round(v, 4) for k, v in per_class.items()},
    }
    head = SentimentHead(clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32), LABELS, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
