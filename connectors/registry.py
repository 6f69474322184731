"""The live connectors ``earshot connect <platform>`` knows, imported only when chosen.

Each module exposes ``add_arguments(parser)`` (its command-line options: what to follow, the
instance or base URL) and ``build(args, settings) -> LiveSource``. Credentials never come from
the command line: they are ``EARSHOT_*`` settings (environment or ``.env``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

PLATFORMS: dict[str, tuple[str, str]] = {
    "rss": ("connectors.rss", "RSS/Atom feeds (news, blogs) with conditional GET"),
    "reddit": ("connectors.reddit", "Reddit search and subreddit listings (app-only OAuth)"),
    "mastodon": ("connectors.mastodon", "Mastodon hashtag/public timelines or the streaming API"),
    "bluesky": ("connectors.bluesky", "Bluesky Jetstream firehose or searchPosts backfill"),
    "x": ("connectors.x", "X API v2 filtered stream (rules) or recent search"),
}


def platform_module(name: str) -> ModuleType:
    return importlib.import_module(PLATFORMS[name][0])
