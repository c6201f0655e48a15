"""Added client latency: aiohttp (what OpenAICompatProvider uses) vs httpx, against the same local fake upstream.

Run: .venv/bin/python benchmarks/upstream_client.py [--requests 500]
Prints p50/p99 per request for each client and the httpx/aiohttp ratio; both use one pooled client and
send the same chat completion body sequentially, alternating rounds so machine noise hits both equally.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.fake_upstream import FakeUpstream

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


async def run(n: int, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"aiohttp": [], "httpx": []}
    with FakeUpstream() as up:
        url = up.base_url + "/chat/completions"
        async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
            for _ in range(20):  # warm both pools
                async with session.post(url, data=BODY, headers=HEADERS) as r:
                    await r.read()
                (await client.post(url, content=BODY, headers=HEADERS)).raise_for_status()
            for _ in range(rounds):
                for _ in range(n // rounds):
                    t = time.perf_counter()
                    async with session.post(url, data=BODY, headers=HEADERS) as r:
                        json.loads(await r.read())
                    times["aiohttp"].append(time.perf_counter() - t)
                for _ in range(n // rounds):
                    t = time.perf_counter()
                    json.loads((await client.post(url, content=BODY, headers=HEADERS)).content)
                    times["httpx"].append(time.perf_counter() - t)
    return times


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times = asyncio.run(run(args.requests, args.rounds))
    for name, xs in times.items():
        print(f"{name:8s} n={len(xs)} p50={pct(xs, 50):.3f} ms p99={pct(xs, 99):.3f} ms")
    a, h = times["aiohttp"], times["httpx"]
    print(f"ratio httpx/aiohttp: p50 {pct(h, 50) / pct(a, 50):.2f}x  p99 {pct(h, 99) / pct(a, 99):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
