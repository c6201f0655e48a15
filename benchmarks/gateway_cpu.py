"""Gateway CPU per request, in-process: gearshift's ASGI app vs the trivial pass-through's, one run.

Wall-clock latency on a shared machine is noise; CPU time is not (much). This drives each ASGI app directly
(no HTTP server, no client library: a hand-made ASGI scope, receive and send, so neither uvicorn's nor a
client's CPU is counted) against the zero-delay upstream (benchmarks/_upstream.py, its own process, pinned
to another core when there are two), and measures `time.process_time()` over N requests per app. The
pass-through (benchmarks/_passthrough.py) is the same-run baseline: gearshift's figure is reported as CPU
above it and as a ratio to it. Apps run in alternating rounds so drift hits both alike.

    .venv/bin/python benchmarks/gateway_cpu.py                       # heuristic, decision record on
    .venv/bin/python benchmarks/gateway_cpu.py --stack-router DIR    # also a saved router (e.g. a stack)
    .venv/bin/python benchmarks/gateway_cpu.py --profile out.pstats  # cProfile (--profile-app stack)

On a loaded machine even CPU time moves by 10-30 % between runs. Instruction counts do not: run one app alone
under callgrind at two request counts and divide the difference (startup cancels out), e.g.

    valgrind --tool=callgrind --callgrind-out-file=cg-10.out .venv/bin/python benchmarks/gateway_cpu.py \
        --only gearshift --requests 10 --rounds 1 --warmup 30      # then --requests 110 into cg-110.out
    # instructions per request = (totals in cg-110.out - totals in cg-10.out) / 100   (~3 min a run)

`--only stack --stack-router DIR` does the same for a saved router; `--cache-sim=yes --LL=2097152,16,64` adds
simulated cache misses (DLmr, DLmw), which in the gateway cost what instructions alone do not show.

Only 127.0.0.1 is contacted; every loop is bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _passthrough import build as build_passthrough  # noqa: E402
from gateway_overhead import API_KEY, MODEL, PROMPT, gearshift_toml, pin, start_upstream, stop  # noqa: E402

App = Callable[..., Any]


def _scope(path: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
               (b"authorization", f"Bearer {API_KEY}".encode()), (b"content-length", str(len(body)).encode()),
               (b"user-agent", b"bench/1"), (b"accept", b"*/*")]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000), "state": {}}


async def call(app: App, model: str, n: int, state: dict[str, Any]) -> int:
    """One request through `app`; returns the HTTP status."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": f"{PROMPT} (ref {n})"}],
                       "max_tokens": 64}).encode()
    scope = _scope("/v1/chat/completions", body)
    scope["state"] = dict(state)
    done = asyncio.Event()
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    done.set()
    return status


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[dict[str, Any]]:
    """The app's lifespan (writer, extensions) around the measurement; yields the lifespan state."""
    state: dict[str, Any] = {}
    async with app.router.lifespan_context(app) as maybe:
        if isinstance(maybe, dict):
            state.update(maybe)
        yield state


async def measure(apps: dict[str, tuple[Any, str]], args: argparse.Namespace,
                  prof: cProfile.Profile | None) -> dict[str, list[float]]:
    """CPU microseconds per request, one figure per round per app."""
    per_round: dict[str, list[float]] = {name: [] for name in apps}
    seq = 0
    async with contextlib.AsyncExitStack() as stack:
        states = {name: await stack.enter_async_context(running(app)) for name, (app, _) in apps.items()}
        for name, (app, model) in apps.items():  # warm-up: connection pools, caches, lazy imports
            for _ in range(args.warmup):
                seq += 1
                if (s := await call(app, model, seq, states[name])) != 200:
                    raise RuntimeError(f"{name} answered HTTP {s} during warm-up")
        for _ in range(args.rounds):
            for name, (app, model) in apps.items():
                profiling = prof is not None and name == args.profile_app
                t = time.process_time()
                if profiling:
                    prof.enable()  # type: ignore[union-attr]
                for _ in range(args.requests):
                    seq += 1
                    if (s := await call(app, model, seq, states[name])) != 200:
                        raise RuntimeError(f"{name} answered HTTP {s}")
                if profiling:
                    prof.disable()  # type: ignore[union-attr]
                per_round[name].append((time.process_time() - t) / args.requests * 1e6)
    return per_round


def build_apps(upstream: str, tmp: Path, args: argparse.Namespace) -> dict[str, tuple[Any, str]]:
    from gearshift.gateway.app import create_app
    from gearshift.gateway.settings import load_settings

    apps: dict[str, tuple[Any, str]] = {"passthrough": (build_passthrough(upstream, API_KEY), MODEL)}
    variants: list[tuple[str, Path | None]] = [("gearshift", None)]
    if args.stack_router is not None:
        variants.append(("stack", args.stack_router.resolve()))
    for name, router in variants:
        cfg = tmp / f"{name}.toml"
        cfg.write_text(gearshift_toml(upstream, tmp / f"{name}.sqlite", not args.no_record, router))
        apps[name] = (create_app(load_settings(cfg)), "gearshift/auto")
    return apps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="gateway CPU per request, in-process, vs the trivial pass-through")
    ap.add_argument("--requests", type=int, default=1000, help="requests per app per round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up requests per app")
    ap.add_argument("--stack-router", type=Path, help="also measure a saved router directory (e.g. a stack)")
    ap.add_argument("--only", choices=("passthrough", "gearshift", "stack"), help="measure one app alone (e.g. under "
                    "`valgrind --tool=callgrind`, whose instruction counts do not move with the machine's load)")
    ap.add_argument("--no-record", action="store_true", help="diagnostic: gearshift with [store] off")
    ap.add_argument("--profile", type=Path, help="write a cProfile of one app's measured rounds here")
    ap.add_argument("--profile-app", default="gearshift", help="the app --profile records (gearshift or stack)")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    if args.requests < 10 or args.rounds < 1:
        ap.error("need --requests >= 10 and --rounds >= 1")
    two_cores = bool(pin(0))
    if two_cores:
        os.sched_setaffinity(0, {0})
    up, upstream = start_upstream(1 if two_cores else None)
    prof = cProfile.Profile() if args.profile else None
    load = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="gs-cpu-") as tmpdir:
            apps = build_apps(upstream, Path(tmpdir), args)
            if args.only:
                apps = {args.only: apps[args.only]}
            use_uvloop = importlib.util.find_spec("uvloop") is not None
            if use_uvloop:
                import uvloop

                rounds = uvloop.run(measure(apps, args, prof))
            else:
                rounds = asyncio.run(measure(apps, args, prof))
    finally:
        stop(up)
    if prof is not None:
        prof.dump_stats(str(args.profile))
    med = {name: statistics.median(v) for name, v in rounds.items()}
    base = med.get("passthrough", float("nan"))
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end; {args.rounds} rounds x {args.requests} requests; "
          f"event loop {'uvloop' if use_uvloop else 'asyncio'}")
    print(f"{'app':12s} {'CPU us/req':>10s} {'min':>7s} {'max':>7s} {'over pass-through':>18s} {'ratio':>6s}")
    for name, v in rounds.items():
        extra = "" if name == "passthrough" else f"{med[name] - base:+18.0f} {med[name] / base:6.2f}"
        print(f"{name:12s} {med[name]:10.0f} {min(v):7.0f} {max(v):7.0f} {extra}")
    if "stack" in med:
        print(f"stack router minus heuristic: {med['stack'] - med['gearshift']:+.0f} us CPU per request")
    if args.json:
        args.json.write_text(json.dumps({"loadavg": load, "cpu_us_per_request": med, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
