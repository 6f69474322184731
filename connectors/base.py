"""What every connector is: a source of normalised records, published to Kafka.

A source yields ``Outgoing`` records: a key (the mention id) and either a ``Mention``-shaped
dict, a deletion (the platform says the post is gone), or, for input it could not even parse,
the original bytes, so the pipeline's validator dead-letters them with a reason instead of the
connector dropping them silently.

Two shapes of source:
- ``Source`` (file replay, the demo corpus): a plain iterator, published by ``connectors.publish``.
- ``LiveSource`` (platform APIs): an async iterator of ``Batch``es, each with the checkpoint to
  save once Kafka has acknowledged its records; run by ``connectors.runner``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Outgoing:
    key: str
    record: dict[str, Any] | None = None  # a Mention-shaped dict ...
    unparsed: bytes | None = None  # ... or the raw bytes of an unreadable input row ...
    deleted: bool = False  # ... or: the platform deleted the post with this id (record may say more)

    @classmethod
    def deletion(cls, mention_id: str, source: str) -> "Outgoing":
        """The platform deleted (or asked us to forget) the post ``mention_id``."""
        return cls(key=mention_id, record={"id": mention_id, "source": source}, deleted=True)


class Source(Protocol):
    """A finite or endless stream of records to publish, in order."""

    name: str

    def records(self) -> Iterator[Outgoing]: ...


@dataclass
class Batch:
    """Records fetched together, and where to resume once they are safely in Kafka.

    ``checkpoint`` is the source's whole cursor state (JSON-ready: since-ids, ``after`` tokens,
    ETags, a stream's time cursor). The runner saves it only after Kafka acknowledged every
    record of the batch, so a restart resumes after the last acknowledged batch: no gap. Records
    between that save and a crash are fetched again; their ids are stable, so the index holds
    them once. ``None`` = nothing new to save.
    """

    items: list[Outgoing] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None


class LiveSource(Protocol):
    """A platform connector: resumes from a checkpoint and yields batches until told to stop.

    ``batches`` may run forever (polling every few seconds, or holding a stream open and
    reconnecting); the runner cancels it on SIGTERM between batches.
    """

    name: str  # also the checkpoint's name: one per configured connector instance

    def batches(self, checkpoint: dict[str, Any] | None) -> AsyncIterator[Batch]: ...
