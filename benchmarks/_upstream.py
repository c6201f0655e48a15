"""A zero-delay OpenAI-compatible upstream for benchmarks, meant to run in its own process.

It is kept as cheap as possible (aiohttp's low-level server, no routing table, no request recording) so
that at high concurrency the gateway under test, not this server, is the bottleneck. It still parses
the request JSON and echoes the model, as a real upstream would.

    python benchmarks/_upstream.py [--host 127.0.0.1] [--port 0]

Prints ``PORT <n>`` on stdout once listening; stops on SIGTERM/SIGINT or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

ANSWER = "Paris is the capital of France."
_JSON = {"Content-Type": "application/json"}


def completion(model: str) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _models() -> bytes:
    data = [{"id": "bench-model", "object": "model", "created": 0, "owned_by": "bench"}]
    return json.dumps({"object": "list", "data": data}).encode()


async def handle(request: BaseRequest) -> web.StreamResponse:
    path = request.path
    if request.method == "POST" and path.endswith("/chat/completions"):
        raw = await request.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            return web.Response(status=400, body=b'{"error":{"message":"not JSON","type":"invalid_request_error"}}',
                                headers=_JSON)
        if not isinstance(payload, dict) or not payload.get("messages"):
            return web.Response(status=400, body=b'{"error":{"message":"no messages","type":"invalid_request_error"}}',
                                headers=_JSON)
        if payload.get("stream"):
            return web.Response(status=400, body=b'{"error":{"message":"streaming not supported by the benchmark '
                                b'upstream","type":"invalid_request_error"}}', headers=_JSON)
        return web.Response(body=completion(str(payload.get("model", "bench-model"))), headers=_JSON)
    if request.method == "GET" and path.endswith("/models"):
        return web.Response(body=_models(), headers=_JSON)
    if path in ("/health", "/healthz"):
        return web.Response(body=b'{"status":"ok"}', headers=_JSON)
    return web.Response(status=404, body=b'{"error":{"message":"not found","type":"invalid_request_error"}}',
                        headers=_JSON)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = web.Server(handle, access_log=None)
    srv = await loop.create_server(server, host, port, backlog=1024, reuse_address=True)
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
    await server.shutdown(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the benchmark upstream only listens on loopback")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
