"""How every earshot process logs: one JSON object per line (``EARSHOT_LOG_FORMAT=json``, the
default), or one text line for people (``text``).

A JSON line carries ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``, plus
whatever the call passed in ``extra=``: a log about one record passes ``record_context(...)``
(``mention_id``, ``topic``, ``partition``, ``offset``), so a log search finds every line about a
mention or an offset. Exceptions come as ``exc_info`` (the formatted traceback).

The processes differ only in who installs the handler: Faust (``faust_logging_config``, given
to the app; the worker's ``--loglevel`` sets the level), uvicorn (``uvicorn_log_config``), and
everything else (``configure_logging``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]
RECORD_FIELDS = ("mention_id", "topic", "partition", "offset")


def record_context(mention_id: str | None = None, topic: str | None = None, partition: int | None = None,
                   offset: int | None = None, **more: Any) -> dict[str, Any]:
    """``extra=`` for a log line about one record (fields left None are still named, as null)."""
    return {"mention_id": mention_id, "topic": topic, "partition": partition, "offset": offset, **more}


class JsonLogFormatter(JsonFormatter):
    """``{"timestamp", "level", "logger", "message", ...extra}`` on one line."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            # uvicorn adds a coloured copy of its messages; Faust's CompositeLogger adds nothing.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            json_ensure_ascii=False,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": log_data.pop("timestamp"), **log_data}  # the timestamp first, for people too


class TextLogFormatter(logging.Formatter):
    """``[time] [pid] [LEVEL] logger: message`` and, for a record, ``mention_id=... topic=...``."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{f}={getattr(record, f)}" for f in RECORD_FIELDS if getattr(record, f, None) is not None)
        if not context:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the context
        return f"{head} [{context}]{newline}{rest}"


def formatter_class(log_format: LogFormat) -> type[logging.Formatter]:
    return JsonLogFormatter if log_format == "json" else TextLogFormatter


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def configure_logging(log_format: LogFormat, level: str | int = "INFO") -> None:
    """One stderr handler on the root logger with earshot's format (replacing any there)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_class(log_format)())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)


def faust_logging_config(log_format: LogFormat) -> dict[str, Any]:
    """The App's ``logging_config``: merged into Faust's own (its handler, its ``--loglevel``),
    replacing only the formatters of its console and file handlers."""
    formatter = {"()": _path(formatter_class(log_format))}
    return {"merge": True, "formatters": {"default": formatter, "colored": formatter}}


def uvicorn_log_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers (server and access log) and the app's, all through
    one stderr handler on the root logger at ``level`` (uvicorn's ``log_level`` sets its own)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"earshot": {"()": _path(formatter_class(log_format))}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "earshot", "stream": "ext://sys.stderr"}},
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            "elastic_transport": {"level": "WARNING"},  # one INFO line per ES request would drown the rest
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }
