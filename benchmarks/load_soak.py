"""Open-loop load ladder and a long soak against a real `gearshift serve` process and a local upstream.

Both the gateway and the upstream run in their own processes; the load generator sends requests on a
fixed schedule whatever the responses do (open loop), so latency is measured from the scheduled send
time and overload shows up as it would in production. Each ladder step prints offered/achieved rate,
p50/p99, error rate, 429/503 counts and the gateway's RSS. The soak then runs at a rate below the knee
and checks that RSS stays flat (within 5 % after warm-up). `[limits] max_in_flight` bounds the gateway's
work: past it, requests get a fast 503 instead of piling up in memory.

    .venv/bin/python benchmarks/load_soak.py            # ladder + 30k-request soak (~3 min)
    .venv/bin/python benchmarks/load_soak.py --quick    # smoke run (~20 s)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GEARSHIFT = Path(sys.executable).with_name("gearshift")
BODY = json.dumps({"model": "gearshift/auto", "messages": [{"role": "user", "content": "What is the capital of "
                                                            "France?"}]}).encode()


# -- the upstream (its own process) --------------------------------------------------------------------
def serve_upstream(latency_ms: float) -> int:
    from aiohttp import web
    from aiohttp.web_request import BaseRequest

    body = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}).encode()

    async def handle(request: BaseRequest) -> web.StreamResponse:
        await request.read()
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        server = web.Server(handle)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(server, "127.0.0.1", 0)
        print(f"PORT {srv.sockets[0].getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    asyncio.run(main())
    return 0


# -- process helpers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def rss_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB from /proc (Linux)."""
    cur = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return cur, peak


def start_upstream(latency_ms: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve-upstream", "--latency-ms", str(latency_ms)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        raise RuntimeError(f"upstream did not start: {line!r}")
    return proc, int(line.split()[1])


def start_gateway(tmp: Path, upstream_port: int, max_in_flight: int, signals_memory: int
                  ) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    url = f"http://127.0.0.1:{upstream_port}/v1"
    cfg = tmp / "gearshift.toml"
    cfg.write_text(f"""
[[tiers]]
name = "cheap"
deployments = [{{ name = "cheap", model = "m", base_url = "{url}", input_price_per_m = 0.15 }}]
[[tiers]]
name = "strong"
deployments = [{{ name = "strong", model = "m", base_url = "{url}", input_price_per_m = 2.5 }}]
[store]
path = "{tmp / 'decisions.sqlite'}"
[limits]
max_in_flight = {max_in_flight}
request_timeout_s = 10
[reliability]
max_retries = 0
[signals]
memory = {signals_memory}
""")
    proc = subprocess.Popen([str(GEARSHIFT), "serve", "--config", str(cfg), "--port", str(port),
                             "--log-level", "error"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gateway did not start")


# -- the open-loop generator ---------------------------------------------------------------------------
@dataclass
class StepResult:
    offered_rps: float
    n: int
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)  # client-side failures (status -1)
    rss_samples_kb: list[int] = field(default_factory=list)

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    @property
    def error_rate(self) -> float:
        return 1.0 - self.statuses.get(200, 0) / max(1, self.n)


async def run_step(url: str, rate: float, n: int, pid: int, session: Any) -> StepResult:
    res = StepResult(offered_rps=rate, n=n, duration_s=0.0)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(scheduled: float) -> None:
        try:
            async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as r:
                await r.read()
                res.statuses[r.status] += 1
                if r.status == 200:
                    res.latencies_ms.append((loop.time() - scheduled) * 1000)
        except Exception as exc:
            res.statuses[-1] += 1
            res.exceptions[type(exc).__name__] += 1

    async def sample_rss() -> None:
        while True:
            res.rss_samples_kb.append(rss_kb(pid)[0])
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    tasks = []
    for i in range(n):
        at = start + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    sampler.cancel()
    res.duration_s = loop.time() - start
    res.rss_samples_kb.append(rss_kb(pid)[0])
    return res


def report(label: str, r: StepResult) -> None:
    print(f"{label:>10} offered {r.offered_rps:6.0f}/s  achieved {r.statuses.get(200, 0) / r.duration_s:6.0f}/s  "
          f"p50 {r.pct(0.5):7.1f} ms  p99 {r.pct(0.99):7.1f} ms  errors {r.error_rate:6.1%}  "
          f"429 {r.statuses.get(429, 0):5d}  503 {r.statuses.get(503, 0):5d}  "
          f"other {sum(v for k, v in r.statuses.items() if k not in (200, 429, 503)):4d}  "
          f"RSS {max(r.rss_samples_kb) / 1024:6.1f} MiB", flush=True)


async def bench(args: argparse.Namespace) -> int:
    import aiohttp
    from rich.progress import Progress

    with tempfile.TemporaryDirectory() as tmpdir:
        up, up_port = start_upstream(args.latency_ms)
        gw, port = start_gateway(Path(tmpdir), up_port, args.max_in_flight, args.signals_memory)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        ok = True
        try:
            conn = aiohttp.TCPConnector(limit=args.connections)
            async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as session:
                await run_step(url, 50, 100, gw.pid, session)  # warm the pools and the router
                print(f"upstream latency {args.latency_ms} ms, max_in_flight {args.max_in_flight}, "
                      f"client connections {args.connections}")
                best = args.rates[0]
                for rate in args.rates:
                    r = await run_step(url, rate, int(rate * args.step_s), gw.pid, session)
                    report("ladder", r)
                    if r.error_rate < 0.01:
                        best = rate
                soak_rate = max(20.0, 0.7 * best)
                print(f"soak: {args.soak} requests at {soak_rate:.0f}/s (70% of the highest clean ladder rate)")
                chunk = max(1, args.soak // 10)
                rss: list[int] = []
                lat: list[float] = []
                statuses: Counter[int] = Counter()
                exceptions: Counter[str] = Counter()
                with Progress(transient=True) as progress:
                    task = progress.add_task("soak", total=args.soak)
                    for _ in range(args.soak // chunk):
                        r = await run_step(url, soak_rate, chunk, gw.pid, session)
                        rss.append(r.rss_samples_kb[-1])
                        lat += r.latencies_ms
                        statuses += r.statuses
                        exceptions += r.exceptions
                        progress.advance(task, chunk)
                soak = StepResult(offered_rps=soak_rate, n=sum(statuses.values()), duration_s=1.0, latencies_ms=lat,
                                  statuses=statuses, exceptions=exceptions, rss_samples_kb=rss)
                soak.duration_s = soak.n / soak_rate
                report("soak", soak)
                print("soak RSS per tenth (MiB): " + " ".join(f"{x / 1024:.1f}" for x in rss))
                if exceptions:
                    print(f"client-side failures: {dict(exceptions)}")
                warm = max(1, len(rss) // 5)
                base = rss[warm - 1]
                growth = (max(rss[warm:] or [base]) - base) / base
                peak = rss_kb(gw.pid)[1]
                print(f"RSS after warm-up {base / 1024:.1f} MiB, max later {max(rss[warm:] or [base]) / 1024:.1f} "
                      f"MiB, growth {growth:+.1%} (limit +5%); peak RSS (VmHWM) {peak / 1024:.1f} MiB")
                ok = growth <= 0.05 and soak.error_rate < 0.01
                # overload: far past max_in_flight, the gateway must shed load fast, not grow
                r = await run_step(url, args.overload_rps, int(args.overload_rps * args.step_s), gw.pid, session)
                report("overload", r)
                print(f"overload RSS {max(r.rss_samples_kb) / 1024:.1f} MiB vs soak {base / 1024:.1f} MiB; "
                      f"shed with 503: {r.statuses.get(503, 0)}")
        finally:
            gw.send_signal(signal.SIGTERM)
            up.send_signal(signal.SIGTERM)
            gw.wait(30)
            up.wait(10)
    print("PASS" if ok else "FAIL: RSS grew more than 5% or the soak had errors")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: short ladder, 1k-request soak")
    ap.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--latency-ms", type=float, default=20.0, help="upstream latency per request")
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--connections", type=int, default=512)
    ap.add_argument("--signals-memory", type=int, default=2000,
                    help="[signals] memory: recent decisions the closed loop keeps (default config: 50000, "
                         "~0.4 KiB each, so a smaller bound lets the soak reach steady state)")
    args = ap.parse_args()
    if args.serve_upstream:
        return serve_upstream(args.latency_ms)
    if args.quick:
        args.rates, args.step_s, args.soak, args.overload_rps = [50.0, 150.0], 2.0, 1000, 600.0
    else:
        args.rates, args.step_s, args.soak, args.overload_rps = [100.0, 200.0, 400.0, 600.0, 800.0], 5.0, 30_000, 2000.0
    os.chdir(ROOT)
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
