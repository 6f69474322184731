"""End to end, by language: a Spanish and a German post get sentiment from the multilingual model,
an English post from the English one (connector ``earshot replay`` -> Kafka -> real worker ->
Elasticsearch). Uses the session's worker and isolated namespace (tests/conftest.py)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.e2e.test_pipeline_e2e import all_docs, replay, wait_for_count

pytestmark = [pytest.mark.services, pytest.mark.e2e]

POSTS = [
    # guessed language (no platform tag): fastText is sure of these
    {"id": "es", "text": "@Iberia me encanta volar con ustedes, la tripulación fue increíble y muy amable",
     "expect": ("es", "positive")},
    # a platform-declared language
    {"id": "de", "lang": "de", "text": "@DB_Bahn schon wieder 40 Minuten Verspätung, einfach furchtbar und ärgerlich",
     "expect": ("de", "negative")},
    {"id": "en", "text": "@united the crew on UA12 was wonderful, thank you so much", "expect": ("en", "positive")},
    {"id": "nl", "text": "@KLM dit is een bericht in het Nederlands en het is ook nog vrij lang",
     "expect": ("nl", None)},
]


def test_posts_are_read_by_the_model_of_their_language(tmp_path, test_env, settings, worker):
    now = datetime.now(timezone.utc).isoformat()
    path = tmp_path / "languages.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in p.items() if k != "expect"} | {"created_at": now}) + "\n"
                            for p in POSTS))
    replay(test_env, "--file", str(path), "--source", "langs")
    query = {"prefix": {"id": "langs:"}}
    wait_for_count(settings.mentions_alias, query, len(POSTS), worker, timeout_s=240)
    docs = {d["id"].removeprefix("langs:"): d for d in all_docs(settings.mentions_alias, query)}
    assert sorted(docs) == sorted(p["id"] for p in POSTS)

    for post in POSTS:
        doc, (lang, label) = docs[post["id"]], post["expect"]
        assert doc["lang"] == lang, doc
        if lang == "en":
            assert doc["model_status"] == "ok" and doc["model_version"].startswith("earshot-minilm-l6@")
            assert doc["sentiment"]["label"] == label and doc["emotion"] is not None
        elif label:
            assert doc["model_status"] == "sentiment_only", doc
            assert doc["model_version"].startswith("earshot-e5-small-multilingual@")
            assert doc["sentiment"]["label"] == label, doc["sentiment"]
            assert doc["emotion"] is None and doc["complaint"] is None and doc["purposes"] == []
        else:
            assert doc["model_status"] == "unsupported_language" and doc["sentiment"] is None
