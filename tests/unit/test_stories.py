"""Stories' clustering and labels, and the kNN body of "more like this" (pure)."""

from datetime import datetime, timezone

import numpy as np

from api.analytics.stories import similar_body, similar_hits, stories, story_sample_body

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def posts(prefix: str, centre: np.ndarray, n: int, phrases: list[str], label: str, rng) -> list[dict]:
    out = []
    for i in range(n):
        v = centre + 0.15 * rng.standard_normal(centre.shape)
        out.append({"id": f"{prefix}{i}", "text": f"{prefix} {i}", "created_at": T0.isoformat(),
                    "author": {"handle": f"{prefix}-a{i % 3}"}, "sentiment": {"label": label},
                    "phrases": phrases + [f"noise{i}"], "embedding": list(v / np.linalg.norm(v))})
    return out


def test_stories_recover_planted_clusters_deterministically():
    rng = np.random.default_rng(1)
    a, b = np.eye(16)[0], np.eye(16)[5]
    docs = posts("bag", a, 10, ["lost luggage", "luggage", "lost"], "negative", rng) + \
        posts("wifi", b, 6, ["wifi", "slow wifi"], "neutral", rng)
    earlier = posts("old", a, 2, ["luggage"], "negative", rng)
    found = stories(docs, 32, earlier, 4, k=2)
    assert [s["size"] for s in found] == [10, 6]
    bags, wifi = found
    assert set(bags["ids"]) == {f"bag{i}" for i in range(10)} and bags["label"] == "lost luggage"
    assert wifi["label"] == "slow wifi"  # a phrase covering the word replaces it
    assert bags["sentiment"] == {"negative": 10, "neutral": 0, "positive": 0}
    assert bags["volume"] == 20 and bags["previous_volume"] <= 4  # 32 posts stand behind the 16 sampled
    reps = bags["representatives"]
    assert len(reps) == 2 and reps[0]["author"]["handle"] != reps[1]["author"]["handle"]
    assert "embedding" not in reps[0]
    assert stories(list(reversed(docs)), 32, earlier, 4, k=2) == found  # order of the hits does not matter
    assert stories([], 0, [], 0, 3) == []


def test_story_sample_leaves_out_spam_and_copies_and_asks_for_vectors():
    body = story_sample_body("acme", T0, T0.replace(day=2), 0.7, 300)
    assert body["size"] == 300 and "embedding" in body["_source"]
    assert {"exists": {"field": "embedding"}} in body["query"]["bool"]["filter"]
    assert {"bool": {"must_not": {"exists": {"field": "duplicate_of"}}}} in body["query"]["bool"]["filter"]


def test_similar_filters_inside_the_knn_search_and_leaves_out_the_copy_family():
    body = similar_body([0.1] * 384, "x:2", "x:1", "acme", T0, None, 0.7, 5)
    knn = body["knn"]
    assert knn["field"] == "embedding" and knn["k"] == 5 and knn["num_candidates"] >= 100
    assert {"term": {"brands": "acme"}} in knn["filter"]
    assert {"bool": {"must_not": [{"ids": {"values": ["x:1", "x:2"]}},
                                  {"terms": {"duplicate_of": ["x:1", "x:2"]}}]}} in knn["filter"]
    assert "embedding" not in body["_source"] and "query" not in body
    with_copies = similar_body([0.1] * 384, "x:2", None, None, None, None, None, 5, include_duplicates=True)
    assert {"bool": {"must_not": {"exists": {"field": "duplicate_of"}}}} not in with_copies["knn"]["filter"]
    hits = similar_hits({"hits": {"hits": [{"_score": 0.95, "_source": {"id": "x:3"}}]}})
    assert hits == [{"similarity": 0.9, "id": "x:3"}]


def test_a_steady_story_has_little_growth_and_a_new_one_has_no_previous_volume():
    rng = np.random.default_rng(2)
    a, b = np.eye(16)[0], np.eye(16)[5]
    now = posts("bag", a, 30, ["lost luggage"], "negative", rng) + posts("wifi", b, 10, ["wifi"], "neutral", rng)
    before = posts("old", a, 30, ["lost luggage"], "negative", rng)
    bags, wifi = stories(now, 40, before, 30, k=2)
    assert abs(bags["growth"]) <= 0.3 and bags["previous_volume"] >= 20
    assert wifi["previous_volume"] == 0 and wifi["growth"] is None
