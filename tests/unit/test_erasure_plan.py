"""Erasure planning (pure): what to look for, what to delete, what to strip from alerts; and the
worker's near-duplicate memory forgetting a deleted post."""

import pytest

from pipeline.store.erasure import (
    AuthorRef,
    ErasureTarget,
    alert_query,
    delete_actions,
    erased_example,
    mention_query,
    strip_examples,
)
from pipeline.enrich.near_dup import NearDuplicateIndex, simhash


def test_author_refs_parse_platform_and_handle_and_know_the_spellings():
    ref = AuthorRef.parse("x:@Alice")
    assert ref == AuthorRef("x", "@Alice")
    assert ref.owns("alice") and ref.owns("@ALICE") and ref.owns("Alice")
    assert not ref.owns("alice2") and not ref.owns(None)
    assert AuthorRef.parse("bluesky:alice.bsky.social").bare_handle == "alice.bsky.social"
    for bad in ("alice", ":alice", "x:", "x: "):
        with pytest.raises(ValueError):
            AuthorRef.parse(bad)


def test_a_target_is_one_mention_or_one_author():
    with pytest.raises(ValueError):
        ErasureTarget()
    with pytest.raises(ValueError):
        ErasureTarget(mention_id="x:1", author=AuthorRef("x", "a"))


def test_queries_match_the_id_or_the_author_on_that_platform_only():
    assert mention_query(ErasureTarget(mention_id="x:1")) == {"term": {"id": "x:1"}}
    query = mention_query(ErasureTarget(author=AuthorRef("x", "bob")))
    assert {"term": {"source": "x"}} in query["bool"]["filter"]
    handle = query["bool"]["filter"][1]["bool"]["should"]
    assert handle == [{"term": {"author.handle": {"value": "bob", "case_insensitive": True}}},
                      {"term": {"author.handle": {"value": "@bob", "case_insensitive": True}}}]


def test_deletions_go_to_the_concrete_index_each_hit_came_from():
    assert delete_actions([("p-mentions-2026.01", "x:1"), ("p-mentions-2026.02", "x:2")]) == [
        {"delete": {"_index": "p-mentions-2026.01", "_id": "x:1"}},
        {"delete": {"_index": "p-mentions-2026.02", "_id": "x:2"}},
    ]


def test_alert_examples_of_the_author_are_stripped_and_the_rest_kept():
    alert = {"id": "a1", "brand": "united", "mentions": [
        {"id": "x:1", "author": "bob", "text": "mine"},
        {"id": "x:2", "author": "carol", "text": "hers"},
        {"id": "x:3", "author": "@bob", "text": "mine, no longer indexed"},
        {"id": "reddit:4", "author": "bob", "text": "another platform's bob"},
    ]}
    target = ErasureTarget(author=AuthorRef("x", "bob"))
    stripped = strip_examples(alert, lambda m: not erased_example(target, {"x:1"})(m))
    assert [m["id"] for m in stripped["mentions"]] == ["x:2", "reddit:4"]
    assert stripped["brand"] == "united" and alert["mentions"][0]["id"] == "x:1"  # input untouched
    assert strip_examples(stripped, lambda m: not erased_example(target, set())(m)) is None  # nothing left to do


def test_alert_query_looks_for_ids_and_handles():
    query = alert_query(ErasureTarget(mention_id="x:9"), set())
    assert query["bool"]["should"] == [{"terms": {"mentions.id": ["x:9"]}}]
    query = alert_query(ErasureTarget(author=AuthorRef("x", "bob")), {"x:1"})
    assert query["bool"]["should"][0] == {"terms": {"mentions.id": ["x:1"]}}
    assert query["bool"]["should"][1]["bool"]["should"][0] == {
        "term": {"mentions.author": {"value": "bob", "case_insensitive": True}}}


def test_a_forgotten_first_post_gets_no_more_copies_linked_to_it():
    index = NearDuplicateIndex()
    text = "Flight 123 delayed again, three hours at the gate with no information at all"
    fp = simhash(text)
    assert index.link("x:first", fp, 1000.0).duplicate_of is None
    assert index.link("x:copy1", fp, 1010.0).duplicate_of == "x:first"
    index.forget("x:first")
    assert index.link("x:copy2", fp, 1020.0).duplicate_of is None  # starts its own thread
    index.forget("x:never-seen")  # harmless


def test_a_forgotten_echo_no_longer_counts_on_its_first_post():
    index = NearDuplicateIndex()
    fp = simhash("The new phone battery lasts two full days, I am very impressed with it")
    index.link("x:first", fp, 1000.0)
    index.link("x:echo1", fp, 1001.0)
    index.forget("x:echo1")
    assert index.link("x:echo2", fp, 1002.0).first_echoes == 1
