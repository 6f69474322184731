"""``make eval-models``: dev scores of the shipped model next to the baselines it has to beat.

    python -m models.evaluate [--variant minilm-l6] [--backend onnx] [--out bench/results/models-eval.json]

Per task (macro-F1; macro-recall too for sentiment), on the dev split of each task:
TweetEval val for sentiment, emotion, offensive, hate and irony; the held-out 30% per domain
of ``complaints-dev.csv`` for complaint (also per industry domain, and on the nine industries
alone, since the random-traffic rows make the task look easier). Baselines, each trained on
the same training split as the model: TF-IDF + logistic regression (``tfidf_lr``), the frozen
packaged encoder + logistic regression (``frozen_lr``) and, for sentiment, VADER.
``customer_care`` (a purpose) is scored against the held-out complaint labels.

Multilingual sentiment (``multilingual_sentiment``): the shipped multilingual model's macro-F1 on
each XLM-T language's val split (ar, de, es, fr, hi, it, pt), English through the model that
routes it (the English model, TweetEval sentiment val), and the 8-language mean (UMSAB's metric,
here on val; the test splits stay held out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from models.data import (DEFAULT_DATA, REPO_ROOT, MissingData, Split, complaints_path, load_complaints,
                         split_complaints, supervised_splits)
from models.tasks import SUPERVISED_TASKS, TASKS_BY_NAME
from models.text import normalise_for_model
from models.train import macro_scores

CACHE = REPO_ROOT / ".earshot" / "cache" / "eval"


def task_predictions(enricher, texts: list[str]) -> dict[str, np.ndarray]:
    """Predicted class index per supervised task, plus the customer_care purpose flag."""
    readings = enricher.predict(texts)
    out: dict[str, np.ndarray] = {}
    for task in SUPERVISED_TASKS:
        if task.binary:
            out[task.name] = np.array([int(getattr(r, task.name).label) for r in readings])
        else:
            out[task.name] = np.array([task.labels.index(getattr(r, task.name).label) for r in readings])
    out["customer_care"] = np.array([int("customer_care" in r.purposes) for r in readings])
    return out


def score_model(enricher, splits: dict[str, tuple[Split, Split]]) -> dict[str, dict[str, float]]:
    """Macro-F1 and macro-recall of every supervised head on its dev split."""
    scores = {}
    for task in SUPERVISED_TASKS:
        dev = splits[task.name][1]
        pred = task_predictions(enricher, dev.texts)[task.name]
        scores[task.name] = macro_scores(np.asarray(dev.labels), pred, len(task.labels))
    return scores


def _embed_cached(texts: list[str], tag: str) -> np.ndarray:
    """Frozen packaged-encoder embeddings, cached on disk (the baseline re-embeds 76k tweets)."""
    from models.encoder import SentenceEncoder

    digest = hashlib.sha1("\n".join(texts).encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()[:16]
    path = CACHE / f"frozen-{tag}-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = SentenceEncoder().embed([normalise_for_model(t) for t in texts])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def baseline_scores(task: str, train: Split, dev: Split) -> dict[str, float]:
    """macro-F1 (macro-recall for sentiment) of TF-IDF+LR and frozen-encoder+LR on ``dev``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    n_classes = len(TASKS_BY_NAME[task].labels)
    metric = "macro_recall" if task == "sentiment" else "macro_f1"
    y_train, y_dev = np.asarray(train.labels), np.asarray(dev.labels)
    out = {}
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    x_train = tfidf.fit_transform([normalise_for_model(t) for t in train.texts])
    clf = LogisticRegression(C=2.0, max_iter=3000, class_weight="balanced").fit(x_train, y_train)
    pred = clf.predict(tfidf.transform([normalise_for_model(t) for t in dev.texts]))
    out["tfidf_lr"] = round(macro_scores(y_dev, pred, n_classes)[metric], 4)
    e_train, e_dev = _embed_cached(train.texts, f"{task}-train"), _embed_cached(dev.texts, f"{task}-dev")
    clf = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(e_train, y_train)
    out["frozen_lr"] = round(macro_scores(y_dev, clf.predict(e_dev), n_classes)[metric], 4)
    if task == "sentiment":
        out["vader"] = round(macro_scores(y_dev, vader_predictions(dev.texts), 3)[metric], 4)
    return out


def vader_predictions(texts: list[str]) -> np.ndarray:
    """VADER's usual rule: compound >= 0.05 positive, <= -0.05 negative, else neutral."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    compound = np.array([analyzer.polarity_scores(t)["compound"] for t in texts])
    return np.where(compound >= 0.05, 2, np.where(compound <= -0.05, 0, 1))


def binary_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    tp = int(((y_pred == 1) & (y_true == 1)).sum())
    precision = tp / max(int((y_pred == 1).sum()), 1)
    recall = tp / max(int((y_true == 1).sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": int(len(y_true)), "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "macro_f1": round(macro_scores(y_true, y_pred, 2)["macro_f1"], 4)}


def complaint_details(enricher, data: Path) -> dict:
    """Complaint head per domain and on the nine industries; customer_care against the labels."""
    _, dev = split_complaints(load_complaints(complaints_path(data)))
    pred = task_predictions(enricher, [r.text for r in dev])
    y = np.array([r.complaint for r in dev])
    industry = np.array([r.industry for r in dev])
    domains = {}
    for domain in sorted({r.domain for r in dev}):
        mask = np.array([r.domain == domain for r in dev])
        domains[domain] = {"n": int(mask.sum()),
                           "accuracy": round(float((pred["complaint"][mask] == y[mask]).mean()), 4)}
        if domain != "random_reply" and domain != "random_tweet":
            domains[domain]["macro_f1"] = round(macro_scores(y[mask], pred["complaint"][mask], 2)["macro_f1"], 4)
    return {
        "complaint_industries_only": binary_report(y[industry], pred["complaint"][industry]),
        "complaint_by_domain": domains,
        "customer_care_vs_complaint_labels": {
            "all": binary_report(y, pred["customer_care"]),
            "industries_only": binary_report(y[industry], pred["customer_care"][industry]),
        },
    }


def multilingual_scores(data: Path, english_macro_f1: float) -> dict:
    """Per-language val macro-F1 of the shipped multilingual sentiment model, English through
    the English model, and the mean over the eight languages."""
    from models.multilingual.data import XLMT_LANGUAGES, load_xlmt
    from models.multilingual.sentiment import MultilingualSentiment
    from models.tasks import SENTIMENT

    model = MultilingualSentiment.load()
    per_language = {}
    for lang in XLMT_LANGUAGES:
        texts, labels = load_xlmt(lang, "val", data)
        pred = np.array([SENTIMENT.labels.index(r.label) for r in model.predict(texts)])
        per_language[lang] = {"n": len(texts), "macro_f1": round(macro_scores(np.asarray(labels), pred, 3)["macro_f1"], 4),
                              "model": model.model_version}
    seven = [v["macro_f1"] for v in per_language.values()]
    return {"split": "xlm-t-sentiment/<language>/val; English: tweeteval/sentiment/val",
            "per_language": per_language,
            "en": {"macro_f1": round(english_macro_f1, 4), "model": "the English model (routed there)"},
            "mean_7": round(float(np.mean(seven)), 4),
            "mean_8": round(float(np.mean(seven + [english_macro_f1])), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--variant", default="minilm-l6")
    parser.add_argument("--backend", default="onnx", choices=("onnx", "torch"))
    parser.add_argument("--no-baselines", action="store_true", help="skip the baselines (minutes of embedding)")
    parser.add_argument("--no-multilingual", action="store_true", help="skip the multilingual sentiment model")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "models-eval.json")
    args = parser.parse_args(argv)
    try:
        splits = supervised_splits(args.data)
    except MissingData as exc:
        print(f"{exc}; nothing was evaluated", file=sys.stderr)
        return 2

    from models.enricher import Enricher

    enricher = Enricher.load(args.variant, backend=args.backend, cache_size=0)
    started = time.perf_counter()
    scores = score_model(enricher, splits)
    tasks = {}
    for task in SUPERVISED_TASKS:
        train, dev = splits[task.name]
        entry = {"split": dev.name, "n": len(dev), "macro_f1": round(scores[task.name]["macro_f1"], 4)}
        if task.name == "sentiment":
            entry["macro_recall"] = round(scores[task.name]["macro_recall"], 4)
        if not args.no_baselines:
            entry["baselines"] = baseline_scores(task.name, train, dev)
            entry["baseline_metric"] = "macro_recall" if task.name == "sentiment" else "macro_f1"
        tasks[task.name] = entry
        print(f"{task.name:10s} {json.dumps(entry)}", flush=True)
    report = {
        "model_version": enricher.model_version,
        "backend": enricher.backend.name,
        "tasks": tasks,
        **complaint_details(enricher, args.data),
        **({} if args.no_multilingual else
           {"multilingual_sentiment": multilingual_scores(args.data, scores["sentiment"]["macro_f1"])}),
        "seconds": round(time.perf_counter() - started, 1),
    }
    # Written here, not through bench/: models/ knows nothing above it.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "tasks"}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
