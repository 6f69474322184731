"""The Mastodon connector on real recorded Mastodon responses (Mastodon.py's vcrpy cassettes,
MIT; trimmed to the interactions that carry statuses and stream bodies).

Statuses go through ``MastodonSource``'s own normaliser, stream bodies through its event
handler; then ``encode_live`` and ``parse_mention``; fields are compared with the payload.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.mastodon import html_to_text
from pipeline.schema import Deletion, Mention
from tests.connectors.recordings import DATA, mastodon_pairs, roundtrip, tally

M = DATA / "mastodon"


def read(name: str) -> list[tuple[dict[str, Any], Mention | Deletion]]:
    return [(payload, roundtrip(out)) for payload, out in mastodon_pairs(M / name)]


def test_the_content_warning_is_read_marked_before_the_content():
    (status, mention), = read("test_status_post[Content warning-public].yaml")
    assert status["spoiler_text"] == "Content warning"
    assert mention.text == f"[CW: {status['spoiler_text']}]\n{html_to_text(status['content'])}"
    assert mention.raw["spoiler_text"] == status["spoiler_text"]


def test_poll_options_are_read():
    (status, mention), = read("test_polls.yaml")
    options = [o["title"] for o in status["poll"]["options"]]
    assert options == ["four twenty", "sixty-nine"]
    assert mention.text == f"{html_to_text(status['content'])}\n[poll: four twenty | sixty-nine]"


def test_media_descriptions_are_read():
    (status, mention), = read("test_media_post_multiple.yaml")
    alts = [m["description"] for m in status["media_attachments"]]
    assert len(alts) == 2
    assert mention.text == "\n".join([html_to_text(status["content"]), *(f"[image: {a}]" for a in alts)])


def test_stream_updates_edits_and_deletions():
    events = read("test_stream_user_direct.yaml")
    kinds = [payload["event"] for payload, _ in events]
    assert kinds == ["update", "update", "status.update", "delete"]
    (_, posted), (_, _other), (edit_event, edited), (_, deleted) = events
    edit = json.loads(edit_event["data"])
    # The edit replaces the post: same mention id, the new words, when it was edited.
    assert edited.id == posted.id == f"mastodon:mastodon.social:{edit['id']}"
    assert (posted.text, edited.text) == ("only real cars respond.", "only real animals respond.")
    assert edited.raw["edited_at"] == edit["edited_at"] and posted.raw["edited_at"] is None
    assert edited.created_at == posted.created_at  # still published when it was first posted
    assert isinstance(deleted, Deletion) and deleted.id == posted.id


def test_an_edit_is_published_again_though_its_id_was_seen():
    from connectors.mastodon import MastodonSource, Timeline
    from connectors.sse import SSEParser
    from tests.connectors.recordings import cassette_responses

    source = MastodonSource("https://mastodon.social", [Timeline.public()])
    (_, _, body), = list(cassette_responses(M / "test_stream_user_direct.yaml"))
    entries = [source._event_entry(e.event, e.data, Timeline.public()) for e in SSEParser().feed(body + "\n\n")]
    edit = next(e for e in entries if e is not None and e.status_id is None and e.out and not e.out.deleted)
    assert edit.once is False  # not dropped as "seen": the latest version replaces the earlier


def test_an_instance_default_language_that_the_text_is_not_in_is_not_kept():
    # The test server's default language is "ja": every status says "ja", whatever its script.
    events = read("test_stream_user_direct.yaml")
    for payload, mention in events:
        if isinstance(mention, Mention):
            assert json.loads(payload["data"])["language"] == "ja"
            assert mention.lang != "ja" and mention.raw["declared_lang"] == "ja"
    assert events[0][1].lang == "en"  # "only real cars respond.": confident enough
    assert events[1][1].lang is None  # "@mastodonpy_test_2 pssssst": too little to tell


def test_every_recorded_status_validates():
    result = tally("mastodon", lambda *_: {})
    assert result.produced >= 6 and result.produced == result.valid, result.failures[:5]
