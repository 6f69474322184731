"""The ES compiler and the stream matcher give the same answer on the same real posts.

About 500 EmpythyCorpus posts go into an index with earshot's real mapping (entities extracted by
``pipeline/enrich/entities.py``); for every query in the shared list, the ids ES returns for the compiled
query must equal the ids the matcher tags.
"""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch, helpers

from pipeline.store.mappings import MENTION_MAPPINGS
from pipeline.listening import QueryMatcher, analyze, to_es_query
from tests.unit.test_listening_matcher import corpus_documents, queries_for

pytestmark = pytest.mark.services

SAMPLE_STEP = 80  # every 80th post: ~480 of the corpus's 38k
EXTRA_PER_QUERY = 3  # plus a few posts per query from a wider pool, so rare constructs are hit


def _sample() -> tuple[list[dict], dict[str, str]]:
    documents = {d["id"]: d for d in corpus_documents(SAMPLE_STEP)}
    queries = queries_for(corpus_documents(SAMPLE_STEP))
    matcher = QueryMatcher(queries)
    extra: dict[str, int] = dict.fromkeys(queries, 0)
    for document in corpus_documents(10):
        for query_id in matcher.match(document):
            if extra[query_id] < EXTRA_PER_QUERY:
                extra[query_id] += 1
                documents[document["id"]] = document
    return list(documents.values()), queries


@pytest.fixture(scope="module")
def indexed(settings):
    documents, queries = _sample()
    es = Elasticsearch(settings.es_url, request_timeout=30)
    index = f"{settings.index_prefix}-listening-equivalence"
    es.indices.create(index=index, mappings=MENTION_MAPPINGS, settings={"number_of_shards": 1, "number_of_replicas": 0})
    try:
        actions = ({"_index": index, "_id": d["id"], "_source": d} for d in documents)
        helpers.bulk(es, actions, refresh="wait_for")
        yield es, index, documents, queries
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.close()


def _es_ids(es: Elasticsearch, index: str, query: dict) -> list[str]:
    response = es.search(index=index, query=query, size=10_000, source=False, track_total_hits=True)
    return sorted(hit["_id"] for hit in response["hits"]["hits"])


def test_the_analyzer_cuts_the_posts_as_es_does(indexed):
    es, _, documents, _ = indexed
    for document in documents[:200]:
        tokens = es.indices.analyze(analyzer="standard", text=document["text"])["tokens"]
        assert [t["token"] for t in tokens] == analyze(document["text"]), document["text"]


def test_compiled_queries_return_what_the_matcher_tags(indexed):
    es, index, documents, queries = indexed
    assert 300 <= len(documents) <= 600 and len(queries) >= 30
    matcher = QueryMatcher(queries)
    tagged: dict[str, list[str]] = {q: [] for q in queries}
    for document in documents:
        for query_id in matcher.match(document):
            tagged[query_id].append(document["id"])
    disagreements = {}
    for query_id, text in queries.items():
        expected = sorted(tagged[query_id])
        got = _es_ids(es, index, to_es_query(text))
        if got != expected:
            disagreements[query_id] = (text, sorted(set(got) - set(expected)), sorted(set(expected) - set(got)))
    assert not disagreements, disagreements
    # Non-trivial: nearly every query matches some posts but not all of them.
    informative = [q for q, ids in tagged.items() if 0 < len(ids) < len(documents)]
    assert len(informative) >= len(queries) - 1, {q: len(ids) for q, ids in tagged.items()}
