"""The connector-side filter: Mention-shaped records against listening queries (entities included)."""

from datetime import datetime, timezone

from connectors.listening_filter import record_matcher, seeded
from pipeline.listening.catalog import ListeningQuery
from pipeline.settings import Settings

NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)


def test_seeded_brand_queries_keep_posts_naming_a_brand_by_handle_tag_or_name():
    keep = record_matcher(seeded(Settings()))
    assert keep({"text": "stuck at the gate again @united"})
    assert keep({"text": "Flying #JetBlue tomorrow"})
    assert keep({"text": "United Airlines lost my bag"})
    assert not keep({"text": "the united states of america"})  # "United" alone is not the airline
    assert not keep({"text": "nothing to see here"})


def test_disabled_queries_do_not_keep_anything():
    query = ListeningQuery(id="q", name="q", query="hinge AND crack*", created_at=NOW, updated_at=NOW)
    assert record_matcher([query])({"text": "the hinge cracked"})
    assert not record_matcher([query.model_copy(update={"enabled": False})])({"text": "the hinge cracked"})
