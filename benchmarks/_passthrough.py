"""A trivial Starlette + aiohttp pass-through: the Python floor a gateway's overhead is judged against.

It does the least any Python gateway must: check the bearer key, read the body, forward it to the upstream
with one pooled aiohttp session, return the upstream's bytes. Same server stack as `gearshift serve`
(uvicorn, uvloop + httptools when installed), no routing, no record. Meant to run in its own process:

    python benchmarks/_passthrough.py --upstream http://127.0.0.1:PORT/v1 --port P --key sk-...

Serves `POST /v1/chat/completions` and `GET /healthz`; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def build(upstream: str, key: str) -> Starlette:
    sessions: list[aiohttp.ClientSession] = []
    expected = f"Bearer {key}"
    target = upstream.rstrip("/") + "/chat/completions"

    async def chat(request: Request) -> Response:
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": {"message": "bad key", "type": "invalid_request_error"}}, status_code=401)
        body = await request.body()
        async with sessions[0].post(target, data=body, headers={"Content-Type": "application/json"}) as r:
            data = await r.read()
            return Response(data, status_code=r.status, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        try:
            yield
        finally:
            await sessions[0].close()

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])], lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="trivial Starlette + aiohttp pass-through (benchmark baseline)")
    ap.add_argument("--upstream", required=True, help="upstream base URL ending in /v1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True, help="the bearer key clients must send")
    args = ap.parse_args(argv)
    have = importlib.util.find_spec
    uvicorn.run(build(args.upstream, args.key), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, loop="uvloop" if have("uvloop") else "asyncio",
                http="httptools" if have("httptools") else "h11")
    return 0


if __name__ == "__main__":
    sys.exit(main())
