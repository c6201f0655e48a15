"""A small, real OpenAI-compatible HTTP server for tests (aiohttp.web on 127.0.0.1, ephemeral port).

It runs in a background thread with its own event loop, so both sync and async tests can talk to it
over real sockets. Start/stop it explicitly, as a context manager, or via the ``fake_upstream`` pytest
fixture (tests/conftest.py)::

    with FakeUpstream(answer="Hi there") as up:
        up.base_url                       # "http://127.0.0.1:PORT/v1"
        up.script(Behaviour.status_code(429, retry_after="1"), Behaviour())   # next two requests
        ... send requests ...
        up.requests[0].json["model"]      # what the server received
        up.requests[0].headers["Authorization"]

Endpoints:
  * ``POST /v1/chat/completions`` -- JSON, or SSE when the request has ``"stream": true`` (a role-only
    header chunk with empty content, then one chunk per word of the answer, a final chunk with
    ``finish_reason``, a usage chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``).
    ``usage`` is always in JSON answers; ``logprobs`` appear when the request asks (``"logprobs": true``)
    or the behaviour forces them.
  * ``GET /v1/models`` -- the configured ``models`` list.

Behaviour: each request pops the next scripted :class:`Behaviour` (``script(...)``), else uses
``default`` (settable). A :class:`Behaviour` has a ``kind`` plus parameters; constructors:

  ============================================  =====================================================
  ``Behaviour()``                               a normal answer (``text``, ``finish_reason``)
  ``Behaviour(latency_s=0.2)``                  any kind: sleep before sending headers
  ``Behaviour.status_code(429, retry_after=)``  non-200 status with an OpenAI error body (or ``body``)
  ``Behaviour.error_body_200()``                HTTP 200 whose JSON is ``{"error": {...}}``
  ``Behaviour.no_choices()``                    HTTP 200 with a completion that has no ``choices``
  ``Behaviour.malformed_json()``                HTTP 200, body is not JSON
  ``Behaviour.malformed_sse()``                 stream whose second event (before any text) is not JSON
  ``Behaviour.error_event()``                   role chunk, then ``data: {"error": ...}`` (before any text)
  ``Behaviour.stall_stream(after_chunks=1)``    stream that stops sending after N events (stays open);
                                                event 1 is the role header, so N >= 2 means text was sent
  ``Behaviour.cut_stream(after_chunks=1)``      stream that ends after N events without ``[DONE]``;
                                                ``abort=True`` drops the TCP connection instead
  ``Behaviour.stall_body()``                    headers sent (Content-Length set), body never comes
  ``Behaviour.oversized(n_bytes)``              a valid answer whose body is about ``n_bytes`` long
  ``Behaviour.trickle(bytes_per_tick, tick_s)`` a valid answer, sent a few bytes per interval
  ``Behaviour.reset()``                         closes the connection before any response
  ============================================  =====================================================

``echo=True`` makes the answer text the JSON of the received request. Stalls end when the server stops.
``closed_port()`` returns a port nothing listens on (connection refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Behaviour", "FakeUpstream", "RecordedRequest", "closed_port"]


@dataclass(frozen=True)
class Behaviour:
    """What the server does for one request. See the module docstring for the kinds."""

    kind: str = "ok"
    status: int = 200
    latency_s: float = 0.0
    text: str | None = None  # None: the server's default answer
    finish_reason: str = "stop"
    logprobs: bool = False
    echo: bool = False
    retry_after: str | None = None
    body: bytes | None = None  # raw body override for `status_code`
    headers: dict[str, str] = field(default_factory=dict)
    after_chunks: int = 1
    abort: bool = False
    stall_s: float = 30.0
    n_bytes: int = 0
    bytes_per_tick: int = 1
    tick_s: float = 0.01

    @classmethod
    def status_code(cls, status: int, *, retry_after: str | None = None, body: bytes | None = None,
                    latency_s: float = 0.0) -> Behaviour:
        return cls(kind="status", status=status, retry_after=retry_after, body=body, latency_s=latency_s)

    @classmethod
    def error_body_200(cls) -> Behaviour:
        return cls(kind="error_body_200")

    @classmethod
    def no_choices(cls) -> Behaviour:
        return cls(kind="no_choices")

    @classmethod
    def malformed_json(cls) -> Behaviour:
        return cls(kind="malformed_json")

    @classmethod
    def malformed_sse(cls) -> Behaviour:
        return cls(kind="malformed_sse")

    @classmethod
    def error_event(cls) -> Behaviour:
        return cls(kind="error_event")

    @classmethod
    def stall_stream(cls, after_chunks: int = 1, stall_s: float = 30.0) -> Behaviour:
        return cls(kind="stall_stream", after_chunks=after_chunks, stall_s=stall_s)

    @classmethod
    def cut_stream(cls, after_chunks: int = 1, *, abort: bool = False) -> Behaviour:
        return cls(kind="cut_stream", after_chunks=after_chunks, abort=abort)

    @classmethod
    def stall_body(cls, stall_s: float = 30.0) -> Behaviour:
        return cls(kind="stall_body", stall_s=stall_s)

    @classmethod
    def oversized(cls, n_bytes: int) -> Behaviour:
        return cls(kind="oversized", n_bytes=n_bytes)

    @classmethod
    def trickle(cls, bytes_per_tick: int = 1, tick_s: float = 0.01) -> Behaviour:
        return cls(kind="trickle", bytes_per_tick=bytes_per_tick, tick_s=tick_s)

    @classmethod
    def reset(cls) -> Behaviour:
        return cls(kind="reset")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float


def closed_port() -> int:
    """A localhost port with nothing listening on it (connecting gets 'connection refused')."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class FakeUpstream:
    """An OpenAI-compatible server on 127.0.0.1 in a background thread. See the module docstring."""

    def __init__(self, *, answer: str = "Hello from the fake upstream.", default: Behaviour | None = None,
                 models: list[str] | None = None) -> None:
        self.answer = answer
        self.default = default or Behaviour()
        self.models = models or ["fake-small", "fake-large"]
        self.requests: list[RecordedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0

    # -- configuration -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order; afterwards `default` applies again."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
        self.default = Behaviour()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            assert self._stop is not None and self._runner is not None
            self._stop.set()
            await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers ------------------------------------------------------------------------------------
    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.path, dict(request.headers), payload,
                                                 time.monotonic()))
        return payload

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up when the server stops so shutdown never waits on a stall."""
        assert self._stop is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        payload = await self._record(request)
        b = self._next()
        if b.latency_s:
            await self._sleep(b.latency_s)
        req = payload if isinstance(payload, dict) else {}
        text = json.dumps(payload) if b.echo else (b.text if b.text is not None else self.answer)
        last = (req.get("messages") or [None])[-1]
        if isinstance(last, dict) and last.get("role") == "assistant" and isinstance(last.get("content"), str) \
                and text.startswith(last["content"]) and not b.echo:
            text = text[len(last["content"]):]  # a continuation (prefill): the rest of the same answer
        if b.kind == "reset":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the connection without a response
        if b.kind == "status":
            return self._status(b)
        if b.kind == "error_body_200":
            return web.json_response({"error": {"message": "upstream exploded", "type": "server_error"}})
        if b.kind == "malformed_json":
            return web.Response(body=b'{"id": "x", "choices": [', content_type="application/json")
        if b.kind == "stall_body":
            resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "1000"})
            await resp.prepare(request)
            await self._sleep(b.stall_s)
            return resp
        if req.get("stream"):
            return await self._stream(request, req, b, text)
        body = self._completion(req, b, text)
        if b.kind == "no_choices":
            body.pop("choices")
        if b.kind == "oversized":
            body["choices"][0]["message"]["content"] = "x" * b.n_bytes
        raw = json.dumps(body).encode()
        if b.kind == "trickle":
            resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(raw))})
            await resp.prepare(request)
            for i in range(0, len(raw), b.bytes_per_tick):
                await resp.write(raw[i:i + b.bytes_per_tick])
                await self._sleep(b.tick_s)
            await resp.write_eof()
            return resp
        return web.Response(body=raw, content_type="application/json", headers=b.headers)

    def _status(self, b: Behaviour) -> web.Response:
        headers = dict(b.headers)
        if b.retry_after is not None:
            headers["Retry-After"] = b.retry_after
        body = b.body if b.body is not None else json.dumps(
            {"error": {"message": f"fake upstream status {b.status}", "type": "server_error", "code": None}}
        ).encode()
        return web.Response(status=b.status, body=body, content_type="application/json", headers=headers)

    def _completion(self, req: dict[str, Any], b: Behaviour, text: str) -> dict[str, Any]:
        words = text.split(" ")
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": b.finish_reason,
        }
        if b.logprobs or req.get("logprobs"):
            choice["logprobs"] = {"content": [self._logprob(w) for w in words]}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model", "fake"),
            "choices": [choice],
            "usage": self._usage(req, len(words)),
        }

    @staticmethod
    def _logprob(token: str) -> dict[str, Any]:
        return {"token": token, "logprob": -0.25, "bytes": list(token.encode()), "top_logprobs": []}

    @staticmethod
    def _usage(req: dict[str, Any], completion_tokens: int) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in req.get("messages", []) if isinstance(m, dict))
        return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens}

    async def _stream(self, request: web.Request, req: dict[str, Any], b: Behaviour, text: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        model = req.get("model", "fake")
        words = text.split(" ")
        want_logprobs = b.logprobs or bool(req.get("logprobs"))

        def chunk(delta: dict[str, Any], finish: str | None = None, lp: str | None = None) -> dict[str, Any]:
            ch: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            if lp is not None and want_logprobs:
                ch["logprobs"] = {"content": [self._logprob(lp)]}
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [ch]}

        events: list[bytes] = [_sse(chunk({"role": "assistant", "content": ""}))]  # role header, as OpenAI does
        for i, w in enumerate(words):
            piece = w if i == 0 else " " + w
            events.append(_sse(chunk({"content": piece}, lp=piece)))
        events.append(_sse(chunk({}, b.finish_reason)))
        if (req.get("stream_options") or {}).get("include_usage"):
            events.append(_sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                                "model": model, "choices": [], "usage": self._usage(req, len(words))}))
        events.append(b"data: [DONE]\n\n")

        if b.kind == "malformed_sse":
            events = [events[0], b"data: {\"choices\": [\n\n", *events[1:]]
        elif b.kind == "error_event":
            events = [events[0], _sse({"error": {"message": "overloaded mid-stream", "type": "server_error"}})]
        elif b.kind in ("stall_stream", "cut_stream"):
            events = events[: b.after_chunks]

        for ev in events:
            await resp.write(ev)
        if b.kind == "stall_stream":
            await self._sleep(b.stall_s)
        if b.kind == "cut_stream" and b.abort and request.transport is not None:
            request.transport.abort()
            return resp
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[FakeUpstream]:
    """`with running(answer=...) as up:` -- a started server, stopped on exit."""
    up = FakeUpstream(**kwargs).start()
    try:
        yield up
    finally:
        up.stop()
