"""Small pieces several platform connectors share: platform timestamps, recently seen ids."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from typing import Any


def parse_utc(value: Any) -> datetime | None:
    """A platform's ISO time (``2024-09-09T19:46:02.102Z``; naive = UTC) as aware UTC, or None
    if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def utc_iso(value: Any) -> str | None:
    """``parse_utc`` as an ISO string (what a Mention's ``created_at`` carries), or None."""
    when = parse_utc(value)
    return when.isoformat() if when else None


class RecentIds:
    """The last ``size`` ids handed out: drops items seen twice (backfill and stream, two queries)."""

    def __init__(self, size: int = 50_000):
        self._order: deque[str] = deque()
        self._keys: set[str] = set()
        self._size = size

    def add(self, key: str) -> bool:
        """True if ``key`` is new (and remember it)."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._size:
            self._keys.discard(self._order.popleft())
        return True
