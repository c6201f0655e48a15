"""The benchmarks' HTTP load generator: a minimal HTTP/1.1 keep-alive client, with aiohttp as an alternative.

On a 2-core host the load generator shares the CPUs with the gateway under test (unpinned runs) or with
the upstream (pinned runs), so its CPU per request caps what a throughput or scaling figure can show. An
aiohttp client builds a request object, a header multidict, a response object and a payload reader per
request; `RawClient` writes pre-built bytes (`Request.wire`: a fixed head with only the Content-Length
and the prompt's sequence number changing) to a kept-alive connection and parses the response with a
few `bytes.find` calls. It handles Content-Length and chunked responses and `Connection: close`, one
connection per concurrent caller (closed-loop clients each hold one at steady state), and bounds every
request in time. `AiohttpClient` (`--client aiohttp`) keeps the old generator for comparison.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from _http11 import dechunk, header

MAX_RESPONSE = 16 * 1024 * 1024
T = TypeVar("T")


class Request:
    """POSTs of one JSON chat request to one URL; each call gives a distinct prompt (`... (ref N)`)."""

    _seq = itertools.count()

    def __init__(self, url: str, model: str, prompt: str, headers: dict[str, str], same_prompt: bool = False,
                 max_tokens: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http:// URLs are supported, got {url!r}")
        self.url, self.same_prompt = url, same_prompt
        self.host, self.port = parts.hostname, parts.port or 80
        self.headers = dict(headers)
        marker = "\x00SEQ\x00"
        text = prompt if same_prompt else f"{prompt} (ref {marker})"
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}],
                           "max_tokens": max_tokens}).encode()
        self._pre, _, self._post = body.partition(json.dumps(marker)[1:-1].encode())
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*",
                 *(f"{k}: {v}" for k, v in headers.items())]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode()

    def body(self) -> bytes:
        if self.same_prompt:
            return self._pre
        return b"%s%d%s" % (self._pre, next(self._seq), self._post)

    def wire(self) -> bytes:
        body = self.body()
        return b"%s%d\r\n\r\n%s" % (self._head, len(body), body)


class Client(Protocol):
    async def post(self, req: Request) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class _Conn(asyncio.Protocol):
    """One keep-alive connection; `send` writes a request and returns a future of (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.started = 0.0
        self.used = False  # answered at least one request (a stale keep-alive connection can fail once)
        self.received = False  # got bytes of the current response
        self.until_close = False  # the current response has no length: its body ends with the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.waiter is None
        self.waiter, self.started = loop.create_future(), time.monotonic()
        self.received = self.until_close = False
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.received = True
        buf = self.buf
        buf += data
        if self.waiter is None:
            self._abort(ConnectionError("unsolicited response bytes"))
            return
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buf) > 65536:
                self._abort(ConnectionError("response head too large"))
            return
        head = bytes(buf[:head_end])
        line_end = head.find(b"\r\n")
        line = head if line_end < 0 else head[:line_end]
        fields = b"\r\n" + (b"" if line_end < 0 else head[line_end + 2:].lower())
        try:
            status = int(line.split(b" ", 2)[1])
            if header(fields, b"transfer-encoding") == b"chunked":
                got = dechunk(buf, head_end + 4)
                if got is None:
                    return
                body, end = got
            else:
                length = header(fields, b"content-length")
                if length is None:  # read-until-close framing: finished in connection_lost
                    self.until_close = True
                    if len(buf) > MAX_RESPONSE:
                        raise ValueError("response too large")
                    return
                end = head_end + 4 + int(length)
                if end - head_end > MAX_RESPONSE:
                    raise ValueError("response too large")
                if len(buf) < end:
                    return
                body = bytes(buf[head_end + 4:end])
        except (ValueError, IndexError) as exc:
            self._abort(ConnectionError(f"malformed response: {exc}"))
            return
        del buf[:end]
        waiter, self.waiter, self.used = self.waiter, None, True
        if header(fields, b"connection") == b"close" or line.startswith(b"HTTP/1.0"):
            self.transport.close()  # type: ignore[union-attr]
            self.transport = None
        if not waiter.done():
            waiter.set_result((status, body))

    def _abort(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if self.until_close:  # a response framed by the connection's end
            head_end = self.buf.find(b"\r\n\r\n")
            waiter.set_result((int(bytes(self.buf[:head_end]).split(b" ", 2)[1]), bytes(self.buf[head_end + 4:])))
            return
        waiter.set_exception(ConnectionError(f"connection closed mid-response ({exc})"))


class RawClient:
    """Kept-alive connections per (host, port), reused last-in first-out; a request taking longer than
    `timeout_s` is aborted by a once-a-second watchdog (no timer per request)."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.idle: dict[tuple[str, int], list[_Conn]] = {}
        self.busy: set[_Conn] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def post(self, req: Request) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch())
        idle = self.idle.setdefault((req.host, req.port), [])
        data = req.wire()
        for _attempt in range(2):
            while idle and idle[-1].transport is None:
                idle.pop()  # closed by the server while idle
            if idle:
                conn = idle.pop()
            else:
                _, conn = await loop.create_connection(_Conn, req.host, req.port)
            self.busy.add(conn)
            try:
                result = await conn.send(data, loop)
            except ConnectionError:
                # A kept-alive connection the server closed just as we wrote to it: retry once on a fresh one.
                if conn.used and not conn.received and _attempt == 0:
                    continue
                raise
            finally:
                self.busy.discard(conn)
            if conn.transport is not None:
                idle.append(conn)
            return result
        raise AssertionError("unreachable")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.busy):
                if conn.waiter is not None and now - conn.started > self.timeout_s:
                    conn._abort(TimeoutError(f"no response within {self.timeout_s:g}s"))

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for conns in self.idle.values():
            for conn in conns:
                if conn.transport is not None:
                    conn.transport.close()
        self.idle.clear()


class AiohttpClient:
    """The same interface over one pooled aiohttp session (the generator these benchmarks used before)."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def post(self, req: Request) -> tuple[int, bytes]:
        async with self.session.post(req.url, data=req.body(), headers=req.headers) as r:
            return r.status, await r.read()

    async def close(self) -> None:
        await self.session.close()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the load generator's coroutine on uvloop when installed (cheaper per request), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def make_client(kind: str, timeout_s: float = 30.0) -> Client:
    if kind == "raw":
        return RawClient(timeout_s)
    if kind == "aiohttp":
        return AiohttpClient(timeout_s)
    raise ValueError(f"unknown client {kind!r} (raw or aiohttp)")


def client_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failed request raises with either client."""
    errors: list[Any] = [TimeoutError, OSError]
    try:
        import aiohttp

        errors.append(aiohttp.ClientError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)
