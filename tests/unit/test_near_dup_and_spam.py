"""Near-duplicate linking (SimHash + bands) and the spam score: pure logic."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings as hsettings, strategies as st

from pipeline.enrich.near_dup import NearDuplicateIndex, distance, normalise, simhash
from pipeline.enrich.spam import AuthorActivity, SpamFeatures, account_age_days, spam_score

POST = "United lost my bag for the third time this month and nobody at the desk can tell me where it is"


def test_copies_retweets_and_reshortened_links_are_near_duplicates_unrelated_posts_are_not():
    original = simhash(POST + " https://t.co/abc")
    assert distance(original, simhash(f"RT @angryflyer: {POST} https://t.co/xyz")) <= 3
    assert distance(original, simhash(POST.upper() + "!!!")) <= 3
    assert distance(original, simhash("Delta upgraded me to first class and the crew was lovely, best flight in years")) > 3
    assert simhash("thanks @united!") is None  # too short to tell copying from chance
    assert normalise("RT @a: Hello @b, see http://x.y/z NOW") == ["hello", "see", "now"]


def test_the_first_post_collects_echoes_and_replays_count_once():
    index = NearDuplicateIndex()
    fp = simhash(POST)
    assert index.link("x:1", fp, 100.0).duplicate_of is None
    second = index.link("x:2", simhash("RT @jo: " + POST), 110.0)
    assert (second.duplicate_of, second.first_echoes) == ("x:1", 1)
    assert index.link("x:3", simhash(POST + " #fail"), 120.0).first_echoes == 2
    # At-least-once delivery replays records: same answer, no double count, first stays first.
    assert index.link("x:2", simhash("RT @jo: " + POST), 110.0) == type(second)("x:1")
    assert index.link("x:1", fp, 100.0).duplicate_of is None
    assert index.link("x:4", fp, 130.0).first_echoes == 3


def test_old_posts_start_a_new_thread_and_the_index_is_bounded():
    index = NearDuplicateIndex(max_items=2, max_age_s=3600)
    fp = simhash(POST)
    index.link("a", fp, 0.0)
    assert index.link("b", fp, 7200.0).duplicate_of is None  # two hours later: a new first post
    other = simhash("Completely different words about a new phone launch event happening tomorrow in Paris")
    index.link("c", other, 7300.0)
    assert len(index) == 2  # "a" was forgotten first
    assert index.link("d", fp, 7400.0).duplicate_of == "b"


def test_warm_start_keeps_the_echo_count_of_the_index():
    index = NearDuplicateIndex()
    index.remember("x:1", simhash(POST), 100.0, echoes=41)
    assert index.link("x:99", simhash(POST), 200.0).first_echoes == 42


@hsettings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.sets(st.integers(0, 63), max_size=3))
def test_any_fingerprint_within_three_bits_is_found(fingerprint, flipped):
    index = NearDuplicateIndex(max_distance=3)
    index.remember("first", fingerprint, 0.0)
    near = fingerprint
    for bit in flipped:
        near ^= 1 << bit
    assert index.link("copy", near, 1.0).duplicate_of == "first"


def test_four_bits_apart_is_not_a_duplicate():
    rng = random.Random(7)
    fp = rng.getrandbits(64)
    index = NearDuplicateIndex(max_distance=3)
    index.remember("first", fp, 0.0)
    assert index.link("copy", fp ^ 0b1111, 1.0).duplicate_of is None


def test_spam_score_rises_with_each_signal_and_names_them():
    person, _ = spam_score(SpamFeatures(model_spam=0.05, words=20, followers=300, account_age_days=900))
    bot, signals = spam_score(SpamFeatures(model_spam=0.05, words=12, author_posts_last_hour=40, followers=0,
                                           account_age_days=1, links=3, hashtags=6))
    assert person < 0.1 and bot > 0.9
    assert signals[0] == "burst" and {"new_account", "no_audience", "links", "hashtags"} <= set(signals)
    model_only, signals = spam_score(SpamFeatures(model_spam=0.95, words=20))
    assert model_only > 0.8 and signals == ["model"]
    unknown_account, _ = spam_score(SpamFeatures(model_spam=0.05, words=20))
    assert unknown_account < 0.1  # missing platform data is not suspicious


def test_author_activity_is_a_sliding_hour_and_age_comes_from_raw():
    activity = AuthorActivity(window_s=3600)
    assert [activity.observe("bot", t) for t in (0, 10, 20)] == [1, 2, 3]
    assert activity.observe("bot", 3615) == 2  # the posts at 0 and 10 s left the window
    assert activity.observe(None, 0) == 1
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert account_age_days({"account_created_at": (now - timedelta(days=2)).isoformat()}, now) == 2
    assert account_age_days({"author_created_at": "2026-11-14T00:00:00Z"}, now) == 10
    assert account_age_days({"account_created_at": "yesterday"}, now) is None


def test_a_declared_repost_is_an_echo_of_its_original_even_unseen():
    from pipeline.enrich.noise import NoiseControl
    from pipeline.schema import Author, EnrichedMention

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)

    def post(mid: str, text: str, raw: dict, minutes: int) -> EnrichedMention:
        return EnrichedMention(id=mid, source="x", text=text, created_at=now + timedelta(minutes=minutes),
                               ingested_at=now, author=Author(handle=mid), raw=raw)

    original = post("x:1", POST, {}, 0)
    retweet = post("x:2", POST, {"echo_of": "x:1"}, 1)  # the connector took the original's text
    unseen = post("x:3", "a post whose original this worker never saw", {"echo_of": "x:99"}, 2)
    counts = NoiseControl().mark([original, retweet, unseen], now)
    assert original.duplicate_of is None and retweet.duplicate_of == "x:1" and unseen.duplicate_of == "x:99"
    assert [(c.id, c.echoes) for c in counts] == [("x:1", 1)]
