"""Added latency of the gateway: p50/p95 of sequential chat requests, direct to a fake upstream vs through
`gearshift serve`'s app (heuristic router, decision store on). Prints the ratio and the added milliseconds.

    .venv/bin/python benchmarks/gateway_latency.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gateway.harness import make_settings, serve
from support.fake_upstream import FakeUpstream


def _timed(client: httpx.Client, url: str, body: dict[str, object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url, json=body)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    with FakeUpstream() as cheap, FakeUpstream() as strong, tempfile.TemporaryDirectory() as tmp:
        server = serve(make_settings([cheap], strong, Path(tmp) / "d.sqlite"))
        try:
            with httpx.Client(timeout=10) as c:
                for url, model in ((cheap.base_url, "x"), (server.base_url, "gearshift/auto")):
                    _timed(c, url + "/chat/completions", {"model": model, "messages": msgs}, 30)  # warm-up
                direct = _timed(c, cheap.base_url + "/chat/completions", {"model": "x", "messages": msgs}, n)
                via = _timed(c, server.base_url + "/chat/completions", {"model": "gearshift/auto", "messages": msgs}, n)
        finally:
            server.stop()
    for name, xs in (("direct", direct), ("gateway", via)):
        q = statistics.quantiles(xs, n=20)
        print(f"{name:8s} p50 {statistics.median(xs):6.2f} ms   p95 {q[18]:6.2f} ms   (n={n})")
    d50, g50 = statistics.median(direct), statistics.median(via)
    print(f"added p50 {g50 - d50:.2f} ms; ratio gateway/direct p50 {g50 / d50:.2f}x")


if __name__ == "__main__":
    main()
