"""``earshot classify``'s line handling and output shape, with a stand-in model (pure)."""

import io
import json

from pipeline.enrich.classify import BadLine, classify_stream, output_record, parse_line
from tests.unit.test_enrich import NOW, Model, enricher

MODEL_KEYS = {"sentiment", "emotion", "complaint", "offensive", "hate", "irony"}
OUTPUT_KEYS = {"lang", "purposes", "teams", "priority", "model_version"} | MODEL_KEYS


def test_bad_lines_say_why():
    assert parse_line(3, "{not json", NOW).reason.startswith("not JSON")
    assert parse_line(4, "[1, 2]", NOW) == BadLine(4, "expected a JSON object, got list")
    assert parse_line(5, '{"id": "a"}', NOW) == BadLine(5, "missing or empty 'text'")
    assert parse_line(6, '{"id": "a", "text": "   "}', NOW) == BadLine(6, "missing or empty 'text'")
    assert parse_line(7, '{"id": {"x": 1}, "text": "hi"}', NOW).reason.startswith("'id' must be")


def test_id_defaults_to_the_line_number_and_other_keys_pass_through():
    item, mention = parse_line(9, '{"text": "hello there", "campaign": "x"}', NOW)
    assert mention.id == "9" and item == {"id": 9, "text": "hello there", "campaign": "x"}


def test_output_has_exactly_the_documented_shape():
    [doc] = enricher().enrich([parse_line(1, '{"id": 1, "text": "@united lost my bag"}', NOW)[1]], NOW)
    out = output_record({"id": 1, "text": "@united lost my bag"}, doc)
    assert set(out) == {"id", "text"} | OUTPUT_KEYS
    assert out["sentiment"] == {"label": "negative", "scores": {"negative": 0.9, "neutral": 0.05, "positive": 0.05}}
    assert set(out["emotion"]["scores"]) == {"anger", "joy", "optimism", "sadness"}
    for flag in ("complaint", "offensive", "hate", "irony"):
        assert set(out[flag]) == {"label", "score"} and isinstance(out[flag]["label"], bool)
    assert out["purposes"] == ["customer_care"] and out["teams"] == ["customer_care"]
    assert isinstance(out["priority"], float) and out["model_version"] == "stand-in@1"


def test_stream_skips_bad_lines_with_their_numbers_and_keeps_order():
    source = io.StringIO('{"id": "a", "text": "@united lost my bag"}\nnot json\n\n'
                         '{"id": "b", "text": "Ceci est un message en français, évidemment, et assez long"}\n')
    sink, errors = io.StringIO(), io.StringIO()
    written, bad = classify_stream(enricher(Model()), source, sink, errors)
    assert (written, bad) == (2, 1)
    assert errors.getvalue().startswith("line 2: not JSON")
    first, second = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert first["id"] == "a" and first["sentiment"]["label"] == "negative"
    assert second["id"] == "b" and second["lang"] == "fr"
    assert all(second[k] == "unsupported_language" for k in MODEL_KEYS) and second["purposes"] == []
