"""Tags each enriched mention with the ids of the listening queries it matches, and keeps the
matcher current: every ``queries_refresh_s`` seconds the worker reads the stored queries and
rebuilds the matcher when any query was added, changed, disabled or removed. No restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pipeline.listening.catalog import ListeningQuery, fingerprint
from pipeline.listening.matcher import QueryMatcher

log = logging.getLogger(__name__)


class QueryTagger:
    def __init__(self) -> None:
        self.matcher = QueryMatcher({})
        self.version: frozenset[tuple[str, int, bool]] | None = None  # None: never loaded
        self.reloads = 0

    @property
    def loaded(self) -> bool:
        return self.version is not None

    def update(self, queries: Iterable[ListeningQuery]) -> bool:
        """Rebuild the matcher if the queries differ from the loaded ones; True if rebuilt."""
        queries = list(queries)
        version = fingerprint(queries)
        if version == self.version:
            return False
        enabled = {q.id: q.query for q in queries if q.enabled}
        self.matcher = QueryMatcher(enabled)  # stored queries were validated on write
        self.version = version
        self.reloads += 1
        log.info("listening queries loaded: %d enabled of %d", len(enabled), len(queries))
        return True

    def tag(self, mention: Any) -> list[str]:
        """Sorted ids of the enabled queries ``mention`` (document or EnrichedMention) matches."""
        return self.matcher.match(mention)
