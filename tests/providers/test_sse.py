"""SSE parsing must not depend on how TCP happened to split the stream."""

from __future__ import annotations

import pytest

from gearshift.errors import ProviderError
from gearshift.providers.sse import SSEEvent, SSEParser

STREAM = (
    b": keep-alive comment\r\n\r\n"
    b"event: message\r\ndata: {\"a\": 1}\r\n\r\n"
    b"data: line one\ndata: line two\n\n"
    b"data:{\"b\":2}\r\r"
    b"event: error\ndata: {\"error\": {\"message\": \"x\"}}\n\n"
    b"data: [DONE]"
)
EXPECTED = [
    SSEEvent('{"a": 1}'),
    SSEEvent("line one\nline two"),
    SSEEvent('{"b":2}'),
    SSEEvent('{"error": {"message": "x"}}', "error"),
    SSEEvent("[DONE]"),
]


def parse_in_pieces(data: bytes, size: int) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i:i + size])
    return events + parser.close()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_events_are_the_same_however_the_bytes_are_split(size: int) -> None:
    assert parse_in_pieces(STREAM, size) == EXPECTED


def test_a_line_longer_than_the_limit_is_an_error() -> None:
    parser = SSEParser(max_line_bytes=16)
    with pytest.raises(ProviderError, match="longer than 16 bytes"):
        parser.feed(b"data: " + b"x" * 40)
