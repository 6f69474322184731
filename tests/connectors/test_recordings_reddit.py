"""The Reddit connector on real recorded Reddit API responses (PRAW's betamax cassettes,
BSD-2-Clause; ``*.trimmed.json``: the listing things a test reads, cut from a larger cassette).

Listing things go through the connector's own ``thing_outgoing``, then ``encode_live`` and
``parse_mention``; fields are compared with the payload.
"""

from __future__ import annotations

from pipeline.schema import Deletion, Mention
from tests.connectors.recordings import DATA, reddit_pairs, roundtrip, tally

R = DATA / "reddit"


def test_a_deleted_comment_becomes_a_deletion_not_a_mention_of_deleted():
    read = {thing["data"]["name"]: (thing, roundtrip(out))
            for thing, out in reddit_pairs(R / "TestComment.test_refresh__deleted_comment.json")}
    thing, deletion = read["t1_d7ltvl0"]
    assert thing["data"]["body"] == "[deleted]" and thing["data"]["author"] == "[deleted]"
    assert isinstance(deletion, Deletion) and deletion.id == "reddit:t1_d7ltvl0" and deletion.reason == "deleted"
    # Its post is still there: a mention, with its own text.
    thing, post = read["t3_52o2fl"]
    assert isinstance(post, Mention)
    assert post.text == f"{thing['data']['title']}\n\n{thing['data']['selftext']}"
    assert "body_gone" not in post.raw


def test_entities_in_markdown_bodies_are_undone():
    (thing, out), = list(reddit_pairs(R / "TestCommentForest.test_replace__all.trimmed.json"))
    mention = roundtrip(out)
    assert "&amp;" in thing["data"]["body"]
    assert mention.text == thing["data"]["body"].replace("&amp;", "&")
    assert mention.text == "https://www.youtube.com/watch?v=BdsQBqN7bCw&feature=youtu.be&t=15s"


def test_a_post_whose_text_was_removed_keeps_its_title():
    from connectors.reddit import thing_outgoing

    (thing, _), = [(t, o) for t, o in reddit_pairs(R / "TestComment.test_refresh__deleted_comment.json")
                   if t["kind"] == "t3"]
    removed = {"kind": "t3", "data": {**thing["data"], "selftext": "[removed]", "removed_by_category": "moderator"}}
    mention = roundtrip(thing_outgoing(removed, "recording"))
    assert mention.text == thing["data"]["title"] and mention.raw["body_gone"] == "removed"


def test_every_recorded_thing_validates():
    result = tally("reddit", lambda *_: {})
    assert result.produced == 3 == result.valid, result.failures[:5]
