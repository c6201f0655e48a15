"""Incremental Server-Sent Events parsing (the WHATWG event-stream rules, the parts LLM APIs use).

Upstreams split events across TCP reads arbitrarily, use `\\n`, `\\r\\n` or `\\r` line endings, send
`: keep-alive` comments and occasionally multi-line `data:` fields, so a line-based `split("\\n\\n")`
is not enough. The parser is fed raw bytes and returns complete events only.
"""

from __future__ import annotations

from dataclasses import dataclass

from gearshift.errors import ProviderError


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
        while True:
            cut = self._next_line_end()
            if cut is None:
                break
            end, width = cut
            line = self._buf[:end]
            self._buf = self._buf[end + width:]
            ev = self._line(line.decode("utf-8", errors="replace"))
            if ev is not None:
                events.append(ev)
        if len(self._buf) > self._max_line:
            raise ProviderError(f"upstream SSE line longer than {self._max_line} bytes", retryable=False)
        return events

    def _next_line_end(self) -> tuple[int, int] | None:
        """Position and width of the first line terminator; a trailing lone `\\r` waits for more data."""
        n = self._buf.find(b"\n")
        r = self._buf.find(b"\r")
        if r == -1 and n == -1:
            return None
        if r == -1 or (n != -1 and n < r):
            return n, 1
        if r + 1 < len(self._buf):
            return r, 2 if self._buf[r + 1:r + 2] == b"\n" else 1
        return None if n == -1 else (n, 1)

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
