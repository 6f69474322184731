"""What every connector is: a ``Source`` of normalised records, published by a ``Publisher``.

A source yields ``Outgoing`` records: a key (the mention id) and either a ``Mention``-shaped
dict or, for input it could not even parse, the original bytes, so the pipeline's validator
dead-letters them with a reason instead of the connector dropping them silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Outgoing:
    key: str
    record: dict[str, Any] | None = None  # a Mention-shaped dict ...
    unparsed: bytes | None = None  # ... or the raw bytes of an unreadable input row


class Source(Protocol):
    """A finite or endless stream of records to publish, in order."""

    name: str

    def records(self) -> Iterator[Outgoing]: ...
