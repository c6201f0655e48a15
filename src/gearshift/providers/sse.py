"""Incremental Server-Sent Events parsing (the WHATWG event-stream rules, the parts LLM APIs use).

Upstreams split events across TCP reads arbitrarily, use `\\n`, `\\r\\n` or `\\r` line endings, send
`: keep-alive` comments and occasionally multi-line `data:` fields, so a line-based `split("\\n\\n")`
is not enough. The parser is fed raw bytes and returns complete events only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gearshift.errors import ProviderResponseTooLargeError

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: `event` is the `event:` field ("message" when absent)."""

    data: str
    event: str = "message"


class SSEParser:
    """Feed bytes with :meth:`feed`; get back the events completed by them.

    `max_line_bytes` bounds the buffer so an upstream that never sends a newline cannot exhaust memory.
    """

    def __init__(self, *, max_line_bytes: int = 1 << 20) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._max_line = max_line_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buf += chunk
        events: list[SSEEvent] = []
        pos = 0  # consumed prefix; the buffer is sliced once per feed, not once per line
        while True:
            cut = self._next_line_end(pos)
            if cut is None:
                break
            end, width = cut
            ev = self._line(self._buf[pos:end].decode("utf-8", errors="replace"))
            pos = end + width
            if ev is not None:
                events.append(ev)
        self._buf = self._buf[pos:]
        if len(self._buf) > self._max_line:
            raise ProviderResponseTooLargeError(f"upstream SSE line longer than {self._max_line} bytes",
                                                retryable=False)
        return events

    def _next_line_end(self, pos: int) -> tuple[int, int] | None:
        """Position and width of the first line terminator from `pos`; a trailing lone `\\r` waits for more data.

        One regex search stops at the first terminator, where `find` for each of `\\r` and `\\n` would scan to
        the end of the buffer for whichever is absent (quadratic over a read holding many events)."""
        m = _LINE_END.search(self._buf, pos)
        if m is None or (m.group() == b"\r" and m.end() == len(self._buf)):
            return None
        return m.start(), m.end() - m.start()

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            ev = SSEEvent("\n".join(self._data), self._event or "message")
            self._data, self._event = [], ""
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def close(self) -> list[SSEEvent]:
        """End of stream: dispatch a last event that lacks its blank line (`data: [DONE]` without a trailing
        newline is common enough to accept)."""
        return self.feed(b"\n\n")
