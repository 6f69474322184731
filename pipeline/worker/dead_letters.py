"""Dead-letter records: what was refused, where it came from, and why.

A dead letter keeps the original payload byte-for-byte (as text when it is UTF-8, base64
otherwise) so nothing accepted is ever lost: an operator can fix and replay it. Every dead
letter made here is counted (``earshot_dlq_total{stage}``) and logged with its mention id and
source position.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime
from typing import Any

from pipeline.logs import record_context
from pipeline.metrics import DLQ
from pipeline.worker.wire import json_bytes

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 512 * 1024  # a payload bigger than this is truncated in the DLQ (and says so)
# Kafka's default max.message.bytes is ~1 MB: an encoded dead letter must stay under it, or the
# dead letter itself would be refused.
MAX_RECORD_BYTES = 900 * 1024


def dead_letter(
    *,
    stage: str,
    reason: str,
    payload: bytes | str | dict[str, Any] | None,
    failed_at: datetime,
    mention_id: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """A JSON-ready dead-letter record. ``stage`` is connector | ingest | validate | enrich | index | webhook.

    Every caller writes what it makes to a dead-letter topic, so this is where they are counted."""
    DLQ.labels(stage).inc()
    log.warning("dead letter (%s): %s", stage, reason[:300],
                extra=record_context(mention_id, topic, partition, offset, stage=stage))
    record: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "mention_id": mention_id,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "failed_at": failed_at.isoformat(),
    }
    if isinstance(payload, dict):
        payload = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    elif isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    if payload is None:
        record["payload"] = None
        return record
    record["payload_bytes"] = len(payload)
    record["payload_truncated"] = len(payload) > MAX_PAYLOAD_BYTES
    chunk = payload[:MAX_PAYLOAD_BYTES]
    try:
        record["payload"] = chunk.decode("utf-8")
        record["payload_encoding"] = "utf-8"
    except UnicodeDecodeError:
        record["payload"] = base64.b64encode(chunk).decode("ascii")
        record["payload_encoding"] = "base64"
    return record


def encode_dead_letter(letter: dict[str, Any], limit: int = MAX_RECORD_BYTES) -> bytes:
    """JSON bytes of a dead letter, never longer than ``limit``: the payload is cut (and marked) if needed."""
    encoded = json_bytes(letter)
    while len(encoded) > limit and letter.get("payload"):
        # JSON escaping can make the encoded payload much longer than its characters; halve until it fits.
        letter = {**letter, "payload": letter["payload"][: len(letter["payload"]) // 2], "payload_truncated": True}
        encoded = json_bytes(letter)
    return encoded
