"""Opaque pagination cursors over Elasticsearch ``search_after`` sort values.

A cursor is URL-safe base64 of the JSON sort values of the last hit; clients pass it back
unchanged. A cursor that does not decode is the client's error (400), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class BadCursor(ValueError):
    pass


def encode_cursor(sort_values: list[Any]) -> str:
    raw = json.dumps(sort_values, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise BadCursor("cursor is not valid: pass back the next_cursor of a previous page") from exc
    if not isinstance(values, list) or len(values) != 2 or not all(isinstance(v, (int, str)) for v in values):
        raise BadCursor("cursor is not valid: pass back the next_cursor of a previous page")
    return values
