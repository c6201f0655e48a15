"""What the fleet-wide SLO windows cost: per decision on the request path, and per check, against local Redis.

The in-run baseline is the per-process monitor on the same events: `observe` (a deque append) and a check
over the window it holds (`SLIMonitor.evaluate`). The fleet figures add, per decision, a list append
(`FleetWindows.observe`) and its share of a flush (counting it per bucket and segment and adding the counts to
Redis: "flush", per decision, off the request path), and per check one round trip adding the pending counts
and one reading the window back (`flush` + `window` + the band rules). A check's cost should stay flat as
the traffic per window grows (it reads counts, not events) where the per-process check grows with the events
in its window.

    .venv/bin/python benchmarks/slo_fleet_check.py [--url redis://127.0.0.1:6379/0] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid

from gearshift.closed_loop.fleet import FleetWindows
from gearshift.closed_loop.sli import DecisionEvent, QualityEvent, SLIConfig, SLIMonitor, count_alerts
from gearshift.store.redis_slo import RedisSLOStore
from gearshift.store.redis_state import connect

LANGS = ("en", "de", "fr", "es", "ja", "zh", "pt", "it", "ru", "ko")
CLIENTS = tuple(f"team-{i}" for i in range(10))


def _events(n: int, now: float, window_s: float, rng: random.Random) -> list[DecisionEvent]:
    return [DecisionEvent(now - window_s + window_s * i / n, int(rng.random() < 0.3),
                          {"language": rng.choice(LANGS), "length_bucket": rng.choice(("short", "medium", "long")),
                           "has_code": rng.choice(("yes", "no")), "client": rng.choice(CLIENTS)},
                          escalated=rng.random() < 0.05, p_strong=rng.random()) for i in range(n)]


async def _run(url: str, sizes: list[int], checks: int) -> None:
    config = SLIConfig(window_s=300.0, quality_window_s=3600.0)
    rng = random.Random(0)
    client = connect(url, timeout_s=5.0)
    prefix = f"gs-bench-{uuid.uuid4().hex[:8]}:"
    print(f"{'decisions/window':>16} | {'observe local':>13} {'+ fleet':>9} {'flush':>9} | {'check local':>11} "
          f"{'check fleet':>11} {'fleet/local':>11}")
    try:
        for n in sizes:
            now = time.time()
            events = _events(n, now, config.window_s, rng)
            local = SLIMonitor(config)
            t0 = time.perf_counter()
            for e in events:
                local.observe(e)
            observe_local = (time.perf_counter() - t0) / n
            fleet = FleetWindows(RedisSLOStore(client, f"{prefix}{n}:"), config)
            t0 = time.perf_counter()
            for e in events:
                fleet.observe(e)
                if e.escalated:
                    fleet.observe_quality(QualityEvent(e.timestamp, True, e.segments))
            observe_fleet = (time.perf_counter() - t0) / n
            t0 = time.perf_counter()
            await fleet.flush()  # the window's counts are in Redis, as after a window of checks
            flush_fleet = (time.perf_counter() - t0) / n
            t0 = time.perf_counter()
            for _ in range(checks):
                local.evaluate(now)
            check_local = (time.perf_counter() - t0) / checks
            t0 = time.perf_counter()
            for _ in range(checks):
                fleet.observe(events[-1])  # one decision's counts pending, as on every real check
                await fleet.flush()
                decisions, quality = await fleet.window(now)
                count_alerts(decisions, quality, now - config.window_s, now, config, now - config.quality_window_s)
            check_fleet = (time.perf_counter() - t0) / checks
            print(f"{n:>16,} | {observe_local * 1e6:>10.2f} us {observe_fleet * 1e6:>6.2f} us "
                  f"{flush_fleet * 1e6:>6.2f} us | "
                  f"{check_local * 1e3:>8.2f} ms {check_fleet * 1e3:>8.2f} ms {check_fleet / check_local:>10.2f}x")
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--checks", type=int, default=20)
    args = ap.parse_args()
    asyncio.run(_run(args.url, [int(x) for x in args.sizes.split(",")], args.checks))


if __name__ == "__main__":
    main()
