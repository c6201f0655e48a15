"""HTTP/1.1 framing shared by the benchmarks' minimal upstream and load generator (benchmarks/_upstream.py,
benchmarks/_loadgen.py): a header lookup and a chunked-body decoder over a receive buffer, nothing else.
Both sides talk only to 127.0.0.1 and to the servers under test; this is not a general HTTP parser."""

from __future__ import annotations


def header(fields: bytes, name: bytes) -> bytes | None:
    """The stripped value of header `name` (lower case) in lower-cased `fields` starting with CRLF, or None."""
    at = fields.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    at += len(name) + 3
    eol = fields.find(b"\r\n", at)
    return (fields[at:] if eol < 0 else fields[at:eol]).strip()


def dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode the chunked body at `buf[start:]`: (body, offset just past it), or None while incomplete.
    Raises ValueError on a malformed chunk size."""
    parts: list[bytes] = []
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        if size == 0:
            if buf[eol + 2:eol + 4] == b"\r\n":
                return b"".join(parts), eol + 4
            end = buf.find(b"\r\n\r\n", eol)  # trailers, then the blank line
            return None if end < 0 else (b"".join(parts), end + 4)
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2:eol + 2 + size]))
        pos = eol + 2 + size + 2
