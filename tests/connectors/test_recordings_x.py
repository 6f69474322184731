"""The X connector on real recorded X API v2 responses (twarc-csv's test data, MIT).

Each post goes through the connector's own reading (``page_outgoing`` / the stream's line
handler), ``encode_live`` and ``parse_mention``; fields are compared with the payload.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.x import FIELDS, XSource, _StreamState
from connectors.x_posts import full_text, page_outgoing, posts_by_id, snowflake_time, users_by_id
from pipeline.schema import Deletion, Mention, Rejection
from tests.connectors.recordings import DATA, roundtrip, tally, x_pairs

X = DATA / "x"


def pages(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (X / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def mentions(name: str) -> dict[str, tuple[dict[str, Any], Mention]]:
    """Native post id -> (payload post, validated mention) for every post of a recording."""
    found = {}
    for post, out in x_pairs(X / name):
        parsed = roundtrip(out)
        if isinstance(parsed, Mention):
            found[str(post["id"])] = (post, parsed)
    return found


def referenced(post: dict[str, Any], kind: str) -> str | None:
    return next((r["id"] for r in post.get("referenced_tweets") or [] if r["type"] == kind), None)


def test_html_entities_x_escapes_are_undone():
    posts = mentions("brexit.jsonl")
    escaped = [(p, m) for p, m in posts.values() if "&amp;" in p["text"] and not referenced(p, "retweeted")]
    assert len(escaped) >= 3
    for post, mention in escaped:
        assert "&amp;" not in mention.text and "&" in mention.text
        # The text is the payload's, unescaped, with each t.co link replaced by the URL it stands for.
        expected = post["text"]
        for url in (post.get("entities") or {}).get("urls") or []:
            expected = expected.replace(url["url"], url["expanded_url"])
        assert mention.text == expected.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        assert "t.co/" not in mention.text


def test_a_retweet_is_an_echo_of_the_original_with_its_full_text_and_no_borrowed_metrics():
    page, = pages("brexit.jsonl")
    originals = posts_by_id(page["includes"])
    users = users_by_id(page["includes"])
    posts = mentions("brexit.jsonl")
    retweets = [(p, m) for p, m in posts.values() if referenced(p, "retweeted")]
    assert len(retweets) >= 3
    for post, mention in retweets:
        original = originals[referenced(post, "retweeted")]
        assert post["text"].startswith("RT @") and post["text"].endswith("…")  # X's cut-off copy
        assert mention.text == full_text(original)[0]  # the original's whole text, unescaped
        assert not mention.text.startswith("RT @") and "&amp;" not in mention.text
        # X reports the original's counts on every retweet: none of them is this share's.
        assert post["public_metrics"]["retweet_count"] > 0
        assert mention.metrics.model_dump() == {"likes": 0, "shares": 0, "replies": 0}
        assert mention.raw["original_metrics"] == post["public_metrics"]
        # It is the retweeter's share of the original: linked to it, under its own id.
        assert mention.raw["echo_of"] == f"x:{original['id']}" == mention.raw["reposted_id"]
        assert mention.id == f"x:{post['id']}"
        assert mention.author.handle == users[post["author_id"]]["username"]
        assert mention.raw["reposted_author"] == users[original["author_id"]]["username"]
    # Two people retweeting one post: two echoes of the same original, with the same text, so
    # the near-duplicate logic counts them on that post.
    by_original: dict[str, list[Mention]] = {}
    for post, mention in retweets:
        by_original.setdefault(referenced(post, "retweeted"), []).append(mention)
    twice = [ms for ms in by_original.values() if len(ms) > 1]
    assert twice and all(len({m.text for m in ms}) == 1 for ms in twice)


def test_a_retweet_whose_original_was_not_expanded_keeps_the_words_it_has():
    posts = mentions("withheld.jsonl")
    cut = [(p, m) for p, m in posts.values() if referenced(p, "retweeted") and m.raw.get("text_truncated")]
    assert len(cut) >= 2
    for post, mention in cut:
        handle = post["text"].split(":", 1)[0].removeprefix("RT @")
        assert mention.raw["reposted_author"] == handle
        assert mention.raw["echo_of"] == f"x:{referenced(post, 'retweeted')}"
        # The retweet's own prefix and X's ellipsis go; what is left are the original's words.
        expected = post["text"].split(": ", 1)[1].removesuffix("…").rstrip()
        assert mention.text == expected.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        assert mention.metrics.shares == 0 and mention.metrics.likes == 0


def test_a_quote_keeps_its_own_text_and_links_the_quoted_post():
    posts = mentions("brexit.jsonl")
    quotes = [(p, m) for p, m in posts.values() if referenced(p, "quoted")]
    assert len(quotes) >= 2
    page, = pages("brexit.jsonl")
    for post, mention in quotes:
        assert mention.raw["quoted_id"] == f"x:{referenced(post, 'quoted')}"
        assert "echo_of" not in mention.raw
        assert mention.text == full_text(post)[0]  # its own words, not the quoted post's
        assert mention.metrics.likes == post["public_metrics"]["like_count"]  # its own counts
    # The quote of an edited post (a real one: quoted_edit.jsonl) links the post's first version.
    (post, mention), = mentions("quoted_edit.jsonl").values()
    assert mention.raw["quoted_id"] == "x:1576994746135764992" and mention.in_reply_to == "x:1576994789110992896"


def test_an_edit_replaces_the_earlier_version_under_the_first_id_with_the_version_count():
    (before_post, before), = mentions("edited_before.jsonl").values()
    (after_post, after), = mentions("edited.jsonl").values()
    first = after_post["edit_history_tweet_ids"][0]
    assert before_post["id"] == first and after_post["id"] != first
    assert before.id == after.id == f"x:{first}"  # one mention
    assert (before.raw["edit_version"], after.raw["edit_version"]) == (1, 2)
    assert after.raw["edit_versions"] == 2 and after.raw["native_id"] == after_post["id"]
    assert after.text == full_text(after_post)[0] != before.text  # the latest words
    # The post was published with its first version: both carry that time (the index's month).
    assert before.created_at == after.created_at
    published = before_post["created_at"].replace(".000Z", "+00:00")
    assert before.created_at.isoformat() == snowflake_time(first) == published
    assert after.raw["edited_at"] == after_post["created_at"].replace(".000Z", "+00:00")


def test_an_earlier_version_arriving_after_the_edit_is_not_published():
    source = XSource("token", searches=["q"])
    (_, before_out), = list(x_pairs(X / "edited_before.jsonl"))
    (after_post,) = pages("edited.jsonl")[0]["data"]
    before_post = pages("edited_before.jsonl")[0]["data"][0]
    users = users_by_id(pages("edited.jsonl")[0]["includes"])
    assert source._post(after_post, users, (), "search") is not None
    assert source._post(before_post, users, (), "search") is None  # stale: the index has the edit
    fresh = XSource("token", searches=["q"])  # in order, both go out, under one key
    outs = [fresh._post(before_post, users, (), "search"), fresh._post(after_post, users, (), "search")]
    assert [o.key for o in outs] == [before_out.key] * 2


def test_long_posts_take_their_full_text_from_note_tweet():
    # A real post, given the note_tweet X sends for posts over 280 characters (documented:
    # https://docs.x.com/x-api/fundamentals/data-dictionary#tweet, "note_tweet"); no recording has one.
    page, = pages("edited_before.jsonl")
    post = dict(page["data"][0])
    long_text = "i miss y’all so much haha " * 15 + "&amp; the rest"
    post["note_tweet"] = {"text": long_text, "entities": {"hashtags": [{"start": 0, "end": 4, "tag": "miss"}]}}
    out, = page_outgoing({"data": [post], "includes": page["includes"]})
    mention = roundtrip(out)
    assert isinstance(mention, Mention)
    assert mention.text.startswith(long_text.replace("&amp;", "&")) and len(mention.text) > 280
    assert mention.raw["hashtags"] == ["miss"]


def test_media_alt_text_is_read():
    (post, mention), = mentions("edited_before.jsonl").values()
    media = {m["media_key"]: m for m in pages("edited_before.jsonl")[0]["includes"]["media"]}
    alts = [media[k]["alt_text"] for k in post["attachments"]["media_keys"]]
    assert alts == ["selfie of me with memoji"]
    assert mention.text.endswith("[image: selfie of me with memoji]") and mention.raw["media_alt_text"] == alts


COMPLIANCE = [json.loads(line) for line in (X / "tweets_compliance.jsonl").read_text().splitlines() if line.strip()]
RECORDED_ID = COMPLIANCE[0]["id"]
# Every deletion format X sends: the batch-compliance lines as recorded, and the stream formats
# (documented; https://docs.x.com/x-api/compliance/streams/introduction) built around a recorded id.
DELETION_FORMATS = {
    "batch compliance line": (COMPLIANCE[0], RECORDED_ID, "protected"),
    "batch compliance line, redacted": (COMPLIANCE[1], COMPLIANCE[1]["id"], "deactivated"),
    "v1.1 delete notice": ({"delete": {"status": {"id": int(RECORDED_ID), "id_str": RECORDED_ID,
                                                   "user_id": 1, "user_id_str": "1"}, "timestamp_ms": "1"}},
                           RECORDED_ID, None),
    "v2 compliance delete event": ({"data": {"delete": {"tweet": {"id": RECORDED_ID, "author_id": "1"},
                                                        "event_at": "2021-07-06T18:40:40.000Z"}}}, RECORDED_ID, None),
    "v2 compliance drop event": ({"data": {"drop": {"tweet": {"id": RECORDED_ID, "author_id": "1"},
                                                    "event_at": "2021-07-06T18:40:40.000Z"}}}, RECORDED_ID, "drop"),
}


@pytest.mark.parametrize("name", list(DELETION_FORMATS))
def test_every_deletion_format_becomes_a_deletion(name):
    message, post_id, reason = DELETION_FORMATS[name]
    out, = page_outgoing(message)
    parsed = roundtrip(out)
    assert isinstance(parsed, Deletion)
    assert parsed.id == f"x:{post_id}" and parsed.source == "x" and parsed.reason == reason
    # ... and the stream handles it the same way.
    streamed, = XSource("token", rules={"acme": "acme"})._handle_line(json.dumps(message), _StreamState(None))
    assert streamed == out


def test_user_compliance_lines_are_read_as_deletions_too():
    lines = list(x_pairs(X / "users_compliance.jsonl"))
    assert lines and all(isinstance(roundtrip(out), Deletion) for _, out in lines)


def test_withheld_and_unavailable_notices_are_not_indexed_as_the_authors_words():
    outs = {post["id"]: (post, out) for post, out in x_pairs(X / "withheld.jsonl")}
    notices = [(p, o) for p, o in outs.values() if "has been withheld" in p["text"]]
    assert len(notices) >= 2
    for post, out in notices:
        parsed = roundtrip(out)
        assert isinstance(parsed, Deletion) and parsed.reason == "withheld" and parsed.id == f"x:{post['id']}"
    # Withheld in some countries only, with the author's text: published, the countries kept.
    in_india_only = {"copyright": False, "country_codes": ["IN"]}
    (post, out), = [(p, o) for p, o in outs.values() if p.get("withheld") == in_india_only]
    mention = roundtrip(out)
    assert isinstance(mention, Mention) and mention.raw["withheld"] == post["withheld"]
    (post, out), = list(x_pairs(X / "media_policy_violation_on.jsonl"))
    assert "temporarily unavailable" in post["text"] and "withheld" not in post
    assert roundtrip(out).reason == "unavailable"


def test_legacy_language_codes_are_mapped():
    posts = mentions("kpop.jsonl")
    indonesian = [m for p, m in posts.values() if p["lang"] == "in"]
    assert indonesian and all(m.lang == "id" and m.raw["declared_lang"] == "in" for m in indonesian)
    korean = [m for p, m in posts.values() if p["lang"] == "ko"]
    assert korean and all(m.lang == "ko" and "declared_lang" not in m.raw for m in korean)
    (post, mention), = mentions("edited.jsonl").values()
    assert post["lang"] == "qst" and mention.lang is None  # X's "short text": no language


def test_the_stream_capture_with_its_cut_off_line():
    source = XSource("token", rules={"acme": "acme"})
    state = _StreamState(None)
    outs = [o for line in (X / "streaming_output_with_error.jsonl").read_text().splitlines()
            for o in source._handle_line(line, state)]
    parsed = [roundtrip(o) for o in outs]
    assert sum(isinstance(p, Mention) for p in parsed) == 7
    rejected = [p for p in parsed if isinstance(p, Rejection)]
    assert len(rejected) == 1 and "malformed JSON" in rejected[0].reason  # dead-lettered, not dropped
    quote = next(p for p in parsed if isinstance(p, Mention) and p.id == "x:1377650090978992134")
    assert quote.raw["quoted_id"] == "x:1377640162566496258"
    assert quote.text == "Fury https://twitter.com/blackheart_265/status/1377650090978992134/photo/1 " \
                         "https://twitter.com/Manie_DS/status/1377640162566496258"


def test_requests_ask_for_referenced_posts_their_authors_long_text_and_edits():
    fields = set(FIELDS["tweet.fields"].split(","))
    assert {"referenced_tweets", "note_tweet", "edit_history_tweet_ids", "entities", "attachments"} <= fields
    assert {"author_id", "referenced_tweets.id", "referenced_tweets.id.author_id",
            "attachments.media_keys"} <= set(FIELDS["expansions"].split(","))
    assert "alt_text" in FIELDS["media.fields"]


def test_every_recorded_item_validates():
    result = tally("x", lambda *_: {})
    assert result.files >= 10 and result.produced == result.valid, result.failures[:5]
