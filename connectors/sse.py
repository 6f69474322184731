"""A pure server-sent-events parser: text in, events out (no I/O, no clock).

Follows the WHATWG HTML standard, "9.2 Server-sent events", section "Parsing an event stream"
(https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream):

- lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the
  next are one line ending);
- a line starting with ``:`` is a comment (Mastodon's ``:thump`` heartbeat);
- ``field: value`` (one space after the colon is dropped), or a bare ``field`` with an empty
  value; fields ``event``, ``data`` (several are joined with ``\\n``), ``id`` (kept for the
  following events too, ignored if it holds a NUL) and ``retry`` (milliseconds, digits only);
  other fields are ignored;
- a blank line dispatches the event; an event without data is not dispatched; an event's
  type defaults to ``message``; a stream that ends without a blank line drops the last,
  unfinished event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event. ``retry``: reconnection time the server asked for, milliseconds."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


@dataclass
class SSEParser:
    """Feed it decoded text as it arrives (any chunking); it returns the events completed so far.

    ``comments`` counts comment lines seen (heartbeats), so a caller can tell a live but quiet
    stream from a dead one without parsing again.
    """

    last_event_id: str | None = None
    retry: int | None = None
    comments: int = 0
    _buffer: str = ""
    _skip_lf: bool = False  # the previous chunk ended in CR: an LF starting the next one belongs to it
    _started: bool = False
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, text: str) -> list[ServerSentEvent]:
        """Events completed by ``text`` (a chunk of the stream, already decoded from UTF-8)."""
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")  # a leading byte-order mark is not content
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = False
        events: list[ServerSentEvent] = []
        buffer = self._buffer + text
        start = 0
        for end in _LINE_END.finditer(buffer):
            event = self.feed_line(buffer[start:end.start()])
            start = end.end()
            if event is not None:
                events.append(event)
        # A CR ending the chunk ended a line; an LF opening the next chunk belongs to it.
        self._skip_lf = start == len(buffer) and buffer.endswith("\r")
        self._buffer = buffer[start:]
        return events

    def feed_line(self, line: str) -> ServerSentEvent | None:
        """Process one line (without its line ending); the event it dispatches, if any."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value and value.isascii() and value.isdigit():
                self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None  # the standard: an event with an empty data buffer is not dispatched
        return ServerSentEvent(event=event or "message", data="\n".join(data), id=self.last_event_id,
                               retry=self.retry)
