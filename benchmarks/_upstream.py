"""A zero-delay OpenAI-compatible upstream for benchmarks, meant to run in its own process.

On a 2-core host the upstream shares the CPUs with the gateway under test, so every microsecond it spends
per request is taken from the gateway and caps what a throughput or scaling figure can show. It is
therefore a bare `asyncio.Protocol` HTTP/1.1 keep-alive server (uvloop when installed): no framework, no
routing table, no request recording, responses written in one `transport.write`. It still does what a
real upstream must: reads the whole request (Content-Length or chunked framing), parses the JSON body
(orjson when installed) and echoes its model; it answers

    POST .../chat/completions   a fixed completion (400 for bad JSON, no messages, or stream=true)
    GET  .../models             one model
    GET  /health, /healthz      {"status":"ok"}

    python benchmarks/_upstream.py [--host 127.0.0.1] [--port 0]

Prints ``PORT <n>`` on stdout once listening; stops on SIGTERM/SIGINT or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from typing import Any

from _http11 import dechunk, header

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)
except ImportError:  # pragma: no cover - orjson is a dependency of the gateway
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)

ANSWER = "Paris is the capital of France."
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Payload Too Large", 501: b"Not Implemented"}


def completion(model: str) -> bytes:
    return _dumps({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    })


MODELS = _dumps({"object": "list", "data": [{"id": "bench-model", "object": "model", "created": 0,
                                             "owned_by": "bench"}]})
HEALTH = b'{"status":"ok"}'


def _error(message: str) -> bytes:
    return _dumps({"error": {"message": message, "type": "invalid_request_error"}})


def response(status: int, body: bytes, close: bool = False) -> bytes:
    """One complete HTTP/1.1 response with Content-Length framing."""
    return b"".join((b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     % (status, _REASONS.get(status, b"Error"), len(body)),
                     b"Connection: close\r\n\r\n" if close else b"\r\n", body))


def answer(method: bytes, target: bytes, body: bytes) -> tuple[int, bytes]:
    """The status and JSON body for one request."""
    path = target.split(b"?", 1)[0]
    if path.endswith(b"/chat/completions"):
        if method != b"POST":
            return 405, _error("use POST")
        try:
            payload = _loads(body)
        except ValueError:
            return 400, _error("not JSON")
        if not isinstance(payload, dict) or not payload.get("messages"):
            return 400, _error("no messages")
        if payload.get("stream"):
            return 400, _error("streaming not supported by the benchmark upstream")
        return 200, completion(str(payload.get("model", "bench-model")))
    if method == b"GET" and path.endswith(b"/models"):
        return 200, MODELS
    if path in (b"/health", b"/healthz"):
        return 200, HEALTH
    return 404, _error("not found")


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection: parse each complete request in the buffer, answer it, keep the rest."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        transport = self.transport
        assert transport is not None
        while buf:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > MAX_HEAD:
                    self._fail(413, "request head too large")
                return
            head = bytes(buf[:head_end])
            line, _, fields = head.partition(b"\r\n")
            try:
                method, target, version = line.split(b" ", 2)
            except ValueError:
                self._fail(400, "bad request line")
                return
            fields = b"\r\n" + fields.lower()
            close = version == b"HTTP/1.0" or header(fields, b"connection") == b"close"
            start = head_end + 4
            if header(fields, b"transfer-encoding") == b"chunked":
                try:
                    got = dechunk(buf, start)
                except ValueError:
                    self._fail(400, "bad chunk size")
                    return
                if got is None:
                    return
                body, end = got
            else:
                try:
                    length = int(header(fields, b"content-length") or b"0")
                except ValueError:
                    self._fail(400, "bad Content-Length")
                    return
                if length > MAX_BODY:
                    self._fail(413, "request body too large")
                    return
                end = start + length
                if len(buf) < end:
                    return
                body = bytes(buf[start:end])
            del buf[:end]
            status, payload = answer(method, target, body)
            transport.write(response(status, payload, close))
            if close:
                transport.close()
                return

    def _fail(self, status: int, message: str) -> None:
        if self.transport is not None:
            self.transport.write(response(status, _error(message), close=True))
            self.transport.close()
        self.buf.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    srv = await loop.create_server(UpstreamProtocol, host, port, backlog=1024, reuse_address=True)
    bound = srv.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)

    if not sys.stdin.isatty():
        # The orchestrator holds our stdin; when it dies the pipe closes and we stop too. A daemon thread, so
        # a blocked read never holds up shutdown.
        def watch_stdin() -> None:
            sys.stdin.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    await stop.wait()
    srv.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the benchmark upstream only listens on loopback")
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve(args.host, args.port))
        else:
            uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
