"""earshot's wire format: compact UTF-8 JSON, one encoder and one decoder for every record a
process writes to or reads from Kafka (and the documents sent to Elasticsearch).

Uses ``orjson`` when it is installed (several times faster on the worker's hot path) and the
standard library otherwise; both produce the same bytes for what earshot writes (str keys,
no NaN): compact separators, non-ASCII left as UTF-8. No imports beyond the codecs, so
connectors and the API may use it too.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None


def _stdlib_bytes(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_bytes(record: Any) -> bytes:
    """Compact UTF-8 JSON bytes of ``record`` (a JSON-ready dict or list)."""
    if orjson is not None:
        try:
            return orjson.dumps(record)
        except TypeError:  # what orjson refuses and json takes (an int beyond 64 bits, a non-str key)
            pass
    return _stdlib_bytes(record)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def json_loads(data: bytes | str) -> Any:
    """Parse JSON; ``NaN``/``Infinity`` are refused (ValueError), as every JSON reader downstream would."""
    if orjson is not None:
        return orjson.loads(data)  # orjson.JSONDecodeError is a ValueError; it refuses NaN itself
    return json.loads(data, parse_constant=_refuse_constant)
