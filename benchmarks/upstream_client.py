"""Per-request client CPU of async HTTP clients (aiohttp, what OpenAICompatProvider uses, is the baseline).

Each client POSTs the same ~300-byte chat completion body to the zero-delay upstream (`_upstream.py`, its own
process pinned to core 1; this process and all its threads, e.g. a Rust client's runtime, pinned to core 0)
over one pooled keep-alive client, reads the whole body and parses it with orjson, under uvloop. Rounds
alternate the clients (rotating the order) so machine noise hits all of them alike. Reported per client:
time.process_time() per request (user+system of every thread of this process, so a client's helper
threads are counted) at concurrency 1 and 32, wall p50 at concurrency 1, and the ratio to aiohttp.

    python benchmarks/upstream_client.py [--requests 3000] [--rounds 5] [--clients aiohttp,httpx,...]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p python benchmarks/upstream_client.py \
        --only pyreqwest --count 1200        # instructions: (total@N2 - total@N1) / (N2 - N1)

Clients that are not installed are skipped. niquests pulls urllib3-future, which replaces urllib3 in the
environment it is installed in: keep it out of the project's venv (`pip install --target DIR niquests`)
and name DIR in --extra-path. Not measured: httpr (its AsyncClient runs the blocking client on a thread pool).

Measured 2026-12-03 (5 x 3000 requests, shared 2-core host; CPU us/request at c=1, c=32, ratio to aiohttp):
aiohttp 342, 240 | wreq 227 (0.66), 76 (0.32) | pyreqwest 228 (0.67), 83 (0.35) | pyqwest 288 (0.84), 200
(0.84) | rnet 0.86, 0.49 | aiosonic 1.75, 1.07 | curl_cffi 2.0, 2.1 | zapros 2.2, 2.5 | httpx2 3.1, 5.3 |
httpx 4.0, 13.8 | niquests 4.0, 5.3. Callgrind instructions/request: aiohttp 373k, pyqwest 173k,
pyreqwest 142k, wreq 115k. pyreqwest 0.15.1 neither closes the upstream connection when the awaiting task is
cancelled nor (by default) returns a streamed response before 64 KiB or the end of its body arrived; wreq and
pyqwest do both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import uvloop

Post = Callable[[], Awaitable[bytes]]
Factory = Callable[[str], Awaitable[tuple[Post, Callable[[], Awaitable[Any]]]]]

BODY = orjson.dumps({
    "model": "bench-model", "temperature": 0.2, "max_tokens": 256,
    "messages": [{"role": "system", "content": "You are a concise assistant answering geography questions."},
                 {"role": "user", "content": "What is the capital of France? Answer in one short sentence, "
                                             "please, and name no other city in the answer at all."}],
})
HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "Authorization": "Bearer sk-bench"}


async def _aiohttp(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

    async def post() -> bytes:
        async with session.post(url, data=BODY, headers=HEADERS) as r:
            return await r.read()
    return post, session.close


def _httpx_like(mod: Any) -> Factory:
    async def make(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
        client = mod.AsyncClient(limits=mod.Limits(max_connections=100))

        async def post() -> bytes:
            return (await client.post(url, content=BODY, headers=HEADERS)).content  # type: ignore[no-any-return]
        return post, client.aclose
    return make


async def _pyreqwest(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().max_connections(100).timeout(timedelta(seconds=30)).build()

    async def post() -> bytes:
        resp = await client.post(url).headers(HEADERS).body_bytes(BODY).build().send()
        return bytes(await resp.bytes())
    return post, client.close


async def _pyqwest(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
    import pyqwest

    transport = pyqwest.HTTPTransport(timeout=30.0, enable_otel=False)
    client = pyqwest.Client(transport)

    async def post() -> bytes:
        return bytes((await client.post(url, HEADERS, BODY)).content)
    return post, transport.aclose


def _rust_reqwest_fork(name: str, streamed: bool = False) -> Factory:
    """rnet and its successor wreq (same author, same API shape). streamed: the body read chunk by chunk, as a
    size-limited read of an answer without Content-Length would be."""
    async def make(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
        mod = __import__(name)
        client = mod.Client()

        async def post() -> bytes:
            resp = await client.post(url, body=BODY, headers=HEADERS)
            if not streamed:
                return bytes(await resp.bytes())
            parts = []
            async with resp.stream() as chunks:
                async for chunk in chunks:
                    parts.append(bytes(chunk))
            return b"".join(parts)

        async def close() -> None:
            pass
        return post, close
    return make


async def _aiosonic(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
    import aiosonic

    client = aiosonic.HTTPClient()

    async def post() -> bytes:
        return await (await client.post(url, data=BODY, headers=HEADERS)).content()  # type: ignore[no-any-return]
    return post, client.aclose


async def _niquests(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
    import niquests

    session = niquests.AsyncSession(pool_maxsize=100)

    async def post() -> bytes:
        return (await session.post(url, data=BODY, headers=HEADERS)).content  # type: ignore[no-any-return]
    return post, session.close


async def _curl_cffi(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
    from curl_cffi.requests import AsyncSession

    session = AsyncSession(max_clients=100)

    async def post() -> bytes:
        return (await session.post(url, data=BODY, headers=HEADERS)).content
    return post, session.close


async def _zapros(url: str) -> tuple[Post, Callable[[], Awaitable[Any]]]:
    import zapros

    client = zapros.AsyncClient()

    async def post() -> bytes:
        return await (await client.post(url, body=BODY, headers=HEADERS)).aread()
    return post, client.aclose


def _httpx() -> Factory:
    import httpx
    return _httpx_like(httpx)


def _httpx2() -> Factory:
    import httpx2
    return _httpx_like(httpx2)


CLIENTS: dict[str, Callable[[], Factory]] = {
    "aiohttp": lambda: _aiohttp, "httpx": _httpx, "httpx2": _httpx2, "pyreqwest": lambda: _pyreqwest,
    "pyqwest": lambda: _pyqwest, "rnet": lambda: _rust_reqwest_fork("rnet"), "wreq": lambda: _rust_reqwest_fork("wreq"),
    "wreq-stream": lambda: _rust_reqwest_fork("wreq", streamed=True),
    "aiosonic": lambda: _aiosonic, "niquests": lambda: _niquests, "curl_cffi": lambda: _curl_cffi,
    "zapros": lambda: _zapros,
}


async def burst(post: Post, n: int, conc: int, lat: list[float] | None) -> None:
    """n requests from conc workers; per-request wall latency into lat when given."""
    async def worker(k: int) -> None:
        for _ in range(k):
            t = time.perf_counter()
            orjson.loads(await post())
            if lat is not None:
                lat.append(time.perf_counter() - t)
    await asyncio.gather(*(worker(n // conc) for _ in range(conc)))


async def run(url: str, names: list[str], n: int, rounds: int, concs: list[int]) -> dict[str, dict[str, Any]]:
    made = {name: await CLIENTS[name]()(url) for name in names}
    res: dict[str, dict[str, Any]] = {name: {"lat": [], **{f"cpu{c}": 0.0 for c in concs},
                                             **{f"n{c}": 0 for c in concs}} for name in names}
    for post, _ in made.values():  # warm pools, caches and any lazily started runtime
        await burst(post, 256, 32, None)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for c in concs:
            for name in order:
                post = made[name][0]
                lat = res[name]["lat"] if c == 1 else None
                t = time.process_time()
                await burst(post, n, c, lat)
                res[name][f"cpu{c}"] += time.process_time() - t
                res[name][f"n{c}"] += n // c * c
    for _, close in made.values():
        with contextlib.suppress(Exception):
            await close()
    return res


@contextlib.contextmanager
def upstream(core: int) -> Any:
    """`_upstream.py` in its own process pinned to `core`; yields its base URL."""
    script = Path(__file__).with_name("_upstream.py")
    proc = subprocess.Popen(["taskset", "-c", str(core), sys.executable, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"upstream did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1/chat/completions"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def count_only(url: str, name: str, count: int) -> None:
    """For callgrind: `count` sequential requests with one client, nothing else."""
    post, close = await CLIENTS[name]()(url)
    await burst(post, count, 1, None)
    await close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="per client, per round, per concurrency")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--extra-path", action="append", default=[], help="appended to sys.path (e.g. niquests)")
    ap.add_argument("--only", help="callgrind mode: this client alone, --count sequential requests")
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()
    sys.path.extend(args.extra_path)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {0})  # threads started later (Rust runtimes) inherit it
    if args.only:
        with upstream(1) as url:
            uvloop.run(count_only(url, args.only, args.count))
        return 0
    names = ["aiohttp"]  # the baseline every ratio is taken against, always in the same run
    for name in args.clients.split(","):
        if name not in CLIENTS:
            ap.error(f"unknown client {name!r}: one of {', '.join(CLIENTS)}")
        if name in names:
            continue
        if importlib.util.find_spec(name.split("-")[0]) is None:
            print(f"skip {name}: not installed")
        else:
            names.append(name)
    concs = [int(c) for c in args.concurrency.split(",")]
    with upstream(1) as url:
        res = uvloop.run(run(url, names, args.requests, args.rounds, concs))
    base = res["aiohttp"]
    print(f"{'client':12s}" + "".join(f"  cpu c={c} us  ratio" for c in concs) + "  wall p50 c=1 us  ratio")
    for name, r in res.items():
        line = f"{name:12s}"
        for c in concs:
            us, base_us = r[f"cpu{c}"] / r[f"n{c}"] * 1e6, base[f"cpu{c}"] / base[f"n{c}"] * 1e6
            line += f"  {us:11.1f}  {us / base_us:5.2f}"
        if r["lat"]:
            p50, base_p50 = statistics.median(r["lat"]) * 1e6, statistics.median(base["lat"]) * 1e6
            line += f"  {p50:15.1f}  {p50 / base_p50:5.2f}"
        print(line)
    print(f"({args.rounds} rounds x {args.requests} requests per client and concurrency, orders rotated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
