"""The ES sink against the real local Elasticsearch."""

import asyncio
from datetime import datetime, timezone

import pytest

from pipeline.store.mappings import mention_index_name
from pipeline.schema import EnrichedMention
from pipeline.store.mention_sink import MentionSink, ensure_mentions_layout, make_es_client

pytestmark = pytest.mark.services


def doc(i: int, month: int = 11, **extra):
    created = datetime(2026, month, 20, 10, i % 60, tzinfo=timezone.utc)
    m = EnrichedMention(id=f"sink:{i}", source="sink", text=f"post number {i} about @united",
                        created_at=created, ingested_at=created, brands=["united"])
    d = m.to_document()
    d.update(extra)
    return d, created


def run(coro):
    return asyncio.run(coro)


async def _write_and_count(settings, batches):
    es = make_es_client(settings)
    try:
        await ensure_mentions_layout(es, settings)
        sink = MentionSink(es, settings)
        refused = []
        for batch in batches:
            refused += await sink.write(batch)
        await es.indices.refresh(index=settings.mentions_alias)
        count = (await es.count(index=settings.mentions_alias, query={"prefix": {"id": "sink:"}}))["count"]
        return refused, count
    finally:
        await es.close()


def test_writes_are_idempotent_by_id_across_monthly_indices(settings):
    batch = [doc(i, month=10 + i % 2) for i in range(20)]
    refused, count = run(_write_and_count(settings, [batch, batch, batch[:5]]))
    assert refused == [] and count == 20


def test_monthly_indices_sit_behind_the_read_alias(settings):
    run(_write_and_count(settings, [[doc(100, month=10), doc(101, month=11)]]))

    async def aliases():
        es = make_es_client(settings)
        try:
            return await es.indices.get_alias(name=settings.mentions_alias)
        finally:
            await es.close()

    names = set(run(aliases()))
    created_oct = datetime(2026, 10, 1, tzinfo=timezone.utc)
    assert mention_index_name(settings, created_oct) in names
    assert mention_index_name(settings, datetime(2026, 11, 1, tzinfo=timezone.utc)) in names


def test_a_document_es_refuses_comes_back_with_its_reason_and_the_rest_is_stored(settings):
    good = [doc(200 + i) for i in range(3)]
    bad = doc(299, unexpected_field="strict mapping refuses this")
    refused, _ = run(_write_and_count(settings, [good + [bad]]))
    assert [r.mention_id for r in refused] == ["sink:299"]
    assert "strict_dynamic_mapping_exception" in refused[0].reason
    assert refused[0].document["unexpected_field"]


def test_indices_from_an_older_schema_get_the_new_fields(settings):
    """A monthly index created before schema 2 (no model fields) accepts schema-2 documents after start-up."""
    from pipeline.store.mappings import MENTION_MAPPINGS

    index = f"{settings.index_prefix}-mentions-2025.01"
    old = {k: v for k, v in MENTION_MAPPINGS["properties"].items() if k not in ("emotion", "purposes", "teams", "priority")}

    async def go():
        es = make_es_client(settings)
        try:
            await es.indices.create(index=index, mappings={"dynamic": "strict", "properties": old})
            await ensure_mentions_layout(es, settings)
            created = datetime(2025, 1, 5, tzinfo=timezone.utc)
            document = EnrichedMention(id="sink:old", source="sink", text="hello", created_at=created,
                                       ingested_at=created, purposes=["praise"], teams=["marketing_pr"],
                                       priority=12.5).to_document()
            refused = await MentionSink(es, settings).write([(document, created)])
            mapping = (await es.indices.get_mapping(index=index))[index]["mappings"]["properties"]
            return refused, mapping
        finally:
            await es.close()

    refused, mapping = run(go())
    assert refused == [] and {"emotion", "purposes", "teams", "priority"} <= set(mapping)
