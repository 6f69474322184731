"""The Bluesky connector on real Jetstream v1 events captured from production
(bluesky-social/jetstream's corpus test data; the post, delete and a few other events kept).

Each event goes through ``JetstreamSource``'s own message handler, ``encode_live`` and
``parse_mention``; fields are compared with the event.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.schema import Deletion, Mention
from tests.connectors.recordings import DATA, bluesky_pairs, roundtrip, tally

CAPTURE = DATA / "bluesky" / "expected_v1.jsonl"


def posts() -> dict[str, tuple[dict[str, Any], Mention | Deletion]]:
    """rkey -> (event, what the pipeline validated) for every post event of the capture."""
    return {event["commit"]["rkey"]: (event, roundtrip(out)) for event, out in bluesky_pairs(CAPTURE)}


def record(event: dict[str, Any]) -> dict[str, Any]:
    return event["commit"].get("record") or {}


def links(event: dict[str, Any]) -> list[tuple[int, int, str]]:
    return [(f["index"]["byteStart"], f["index"]["byteEnd"], feature["uri"])
            for f in record(event).get("facets") or [] for feature in f["features"]
            if feature["$type"] == "app.bsky.richtext.facet#link"]


def test_links_are_the_facets_full_urls_not_the_shortened_display_text():
    with_links = [(e, m) for e, m in posts().values() if isinstance(m, Mention) and links(e)]
    assert len(with_links) >= 3
    for event, mention in with_links:
        text = record(event)["text"].encode("utf-8")
        for start, end, uri in links(event):
            shown = text[start:end].decode("utf-8")  # facet offsets are bytes of the UTF-8 text
            assert uri in mention.text and uri in mention.raw["links"]
            if shown != uri:
                assert shown not in mention.text.replace(uri, "")  # the display form is gone
    event, mention = posts()["3mptbyoeyc22k"]
    assert record(event)["text"] == "www.youtube.com/watch?v=V5lD..."
    assert mention.text.startswith("https://www.youtube.com/watch?v=V5lDo-jw8mA\n")


def test_facet_byte_offsets_with_multibyte_characters():
    # The Czech post: a link facet, then text with multi-byte letters, kept intact.
    event, mention = posts()["3mptbypt22l26"]
    text = record(event)["text"]
    (start, end, uri), = links(event)
    assert mention.text.startswith(uri + text.encode("utf-8")[end:].decode("utf-8"))
    assert "hlavním městě" in mention.text
    # No capture has multi-byte text before a facet; the Russian post's text is given a link
    # facet over its last word, placed by byte offsets as clients do.
    from connectors.bluesky import post_text

    event, _ = posts()["3mptbxs3hq22j"]
    text = record(event)["text"]
    word = "крутышка"
    start = text.encode("utf-8").index(word.encode("utf-8"))
    facet = {"index": {"byteStart": start, "byteEnd": start + len(word.encode("utf-8"))},
             "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.org/k"}]}
    said = post_text({**record(event), "facets": [facet]})
    assert said.text.startswith(text.replace(word, "https://example.org/k"))
    assert start != text.index(word)  # character and byte offsets differ here


def test_hashtags_and_mentions_come_from_the_facets():
    for event, mention in posts().values():
        if not isinstance(mention, Mention):
            continue
        tags = [feature["tag"] for f in record(event).get("facets") or [] for feature in f["features"]
                if feature["$type"] == "app.bsky.richtext.facet#tag"]
        assert mention.raw["hashtags"] == tags
    assert posts()["3mptbypfywk2v"][1].raw["hashtags"] == ["HowToTellAiToShutUp", "IndieRebellion"]


def test_a_post_with_only_a_link_card_is_read_not_dropped():
    event, mention = posts()["3mptbyproxc2q"]
    card = record(event)["embed"]["external"]
    assert record(event)["text"] == "" and isinstance(mention, Mention)
    assert card["title"] in mention.text and card["uri"] in mention.text and mention.text.startswith("[link: ")
    # A card under a post with text is read too, after the text.
    event, mention = posts()["3mptbyoigog2b"]
    card = record(event)["embed"]["external"]
    assert mention.text.endswith(f"[link: {card['title']} - {card['description']} {card['uri']}]")


def test_image_alt_text_is_read_and_an_empty_alt_adds_nothing():
    event, mention = posts()["3mptbxs3hq22j"]
    assert [i["alt"] for i in record(event)["embed"]["images"]] == [""]
    assert "[image" not in mention.text and mention.text == record(event)["text"]


def test_declared_languages_that_are_plainly_wrong_are_corrected_and_kept_under_raw():
    for rkey in ("3mptbyospqk2i", "3mptbyou7ls2i", "3mptbyoumc22i", "3mptbypfywk2v"):
        event, mention = posts()[rkey]
        assert record(event)["langs"][0] in ("tr", "de") and re.search(r"\bthe\b", mention.text)
        assert mention.lang == "en" and mention.raw["declared_lang"] == record(event)["langs"][0]
        assert mention.raw["langs"] == record(event)["langs"]
    # Right ones stay, however short; a region stays as declared.
    for rkey, lang in (("3mptbyqhi7s2f", "ja"), ("3mptbyp7lu223", "ko"), ("3mptbxs3hq22j", "ru"),
                       ("3mptbypky4c27", "en"), ("3mptbyoigog2b", "en-US")):
        assert posts()[rkey][1].lang == lang and "declared_lang" not in posts()[rkey][1].raw
    assert posts()["3mptbypt22l26"][1].lang is None  # none declared: the pipeline guesses


def test_a_delete_commit_is_a_deletion():
    event, deletion = posts()["3mpt73z3ejc2p"]
    assert event["commit"]["operation"] == "delete" and isinstance(deletion, Deletion)
    assert deletion.id == f"bluesky:at://{event['did']}/app.bsky.feed.post/3mpt73z3ejc2p"


def test_every_post_event_is_published_and_validates():
    events = [line for line in CAPTURE.read_text().splitlines() if '"app.bsky.feed.post"' in line]
    result = tally("bluesky", lambda *_: {})
    assert result.produced == len(events) == result.valid, result.failures[:5]
