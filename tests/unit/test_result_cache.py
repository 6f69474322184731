"""The near-duplicate key and the bounded result cache (pure)."""

from models.result_cache import ResultCache, near_duplicate_key


def test_retweets_and_copies_with_other_links_or_handles_share_a_key():
    original = "Flight 1234 delayed 3 hours and no one at the gate can tell us why"
    copies = [
        "RT @someone: Flight 1234 delayed 3 hours and no one at the gate can tell us why",
        "@united Flight 1234 delayed 3 hours and no one at the gate can tell us why!! https://t.co/abc",
        "flight 1234 DELAYED 3 hours, and no one at the gate can tell us why http://bit.ly/x",
    ]
    assert {near_duplicate_key(c) for c in copies} == {near_duplicate_key(original)}


def test_different_posts_have_different_keys():
    assert near_duplicate_key("flight delayed again") != near_duplicate_key("flight not delayed again")
    # Link-only or emoji-only posts do not all collapse into one key.
    assert near_duplicate_key("http://a.co/1") != near_duplicate_key("http://b.co/2")
    assert near_duplicate_key("🔥🔥") != near_duplicate_key("😡😡")


def test_cache_is_bounded_least_recently_used_and_counts_hits():
    cache: ResultCache[int] = ResultCache(2)
    cache.put(b"a", 1)
    cache.put(b"b", 2)
    assert cache.get(b"a") == 1  # a is now the most recent
    cache.put(b"c", 3)  # evicts b, the least recently used
    assert cache.get(b"b") is None and cache.get(b"c") == 3 and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1) and abs(cache.hit_rate - 2 / 3) < 1e-9


def test_zero_capacity_keeps_nothing():
    cache: ResultCache[int] = ResultCache(0)
    cache.put(b"a", 1)
    assert cache.get(b"a") is None and len(cache) == 0
