"""Where one gateway request's time goes: wall-clock microseconds per phase, in-process, heuristic router.

`benchmarks/gateway_cpu.py` says how much CPU gearshift spends above the trivial pass-through; this says on
what. It wraps the request path's phase functions with timers (each wrapper adds ~0.3 us), drives the ASGI
app as gateway_cpu.py does against the zero-delay upstream (its own process, on the other core), and prints
each phase's mean wall time per request next to the pass-through's whole request, measured in the same run.
Phases nest (`finish` holds its `finish.*` parts; `executor` holds the upstream round trip), so the column
does not add up; read each line against the pass-through's.

    .venv/bin/python benchmarks/gateway_phases.py [--requests 3000] [--stack-router DIR]

Only 127.0.0.1 is contacted; every loop is bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway_cpu import build_apps, call, running  # noqa: E402
from gateway_overhead import pin, start_upstream, stop  # noqa: E402

SPENT: collections.Counter[str] = collections.Counter()


def _timed(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    if asyncio.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                SPENT[label] += time.perf_counter() - t
        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - t
    return timed


def instrument() -> None:
    """Wrap the phases where the request path looks them up (module globals and classes)."""
    import gearshift.closed_loop.loop as loop
    import gearshift.gateway.auth as auth
    import gearshift.gateway.call as call_mod
    import gearshift.gateway.chat as chat
    import gearshift.gateway.service as service
    import gearshift.policy.decide as decide
    import gearshift.providers.openai_compat as openai_compat
    import gearshift.providers.reliability as reliability
    import gearshift.tracing.metrics as metrics

    targets: list[tuple[Any, str, str]] = [
        (chat, "handle_chat", "request (handler, without sending)"),
        (chat, "read_body", "read body"), (chat, "parse_json", "parse JSON"),
        (chat, "validate_chat", "validate (pydantic)"), (chat, "segment_row", "segment (language id...)"),
        (decide.Policy, "decide", "policy decide (router score...)"), (chat, "worst_case", "budget worst case"),
        (reliability.FailoverExecutor, "complete", "executor (upstream round trip)"),
        (chat, "record_usage", "usage and cost"), (chat, "pin_conversation", "conversation pin"),
        (chat, "finish", "finish (after the answer is sent)"), (call_mod, "build_row", "finish.build record"),
        (metrics.GatewayMetrics, "observe_record", "finish.metrics"), (service.Gateway, "emit", "finish.writer"),
        (loop.ClosedLoop, "on_decision", "finish.closed loop (signals...)"),
        (auth.KeyChecker, "admit", "key check"), (auth.KeyChecker, "reserve", "budget reservation"),
        (chat, "new_call", "new call (request id...)"), (chat, "answer_within", "deadline (holds the routing...)"),
        (chat, "json_response", "encode answer"),
        (openai_compat.OpenAICompatProvider, "complete", "executor.provider (aiohttp round trip)"),
    ]
    for owner, name, label in targets:
        setattr(owner, name, _timed(getattr(owner, name), label))


async def measure(apps: dict[str, tuple[Any, str]], n: int) -> dict[str, float]:
    """Mean wall microseconds per request of each app's whole request, after a warm-up."""
    out: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        states = {name: await stack.enter_async_context(running(app)) for name, (app, _) in apps.items()}
        for name, (app, model) in apps.items():
            for i in range(300):
                await call(app, model, -i - 1, states[name])
        SPENT.clear()
        for name, (app, model) in apps.items():
            t = time.perf_counter()
            for i in range(n):
                if (status := await call(app, model, i, states[name])) != 200:
                    raise RuntimeError(f"{name} answered HTTP {status}")
            out[name] = (time.perf_counter() - t) / n * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="wall time per request phase, in-process, vs the pass-through")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--stack-router", type=Path, help="measure a saved router directory instead of the heuristic")
    args = ap.parse_args(argv)
    if args.requests < 10:
        ap.error("need --requests >= 10")
    two_cores = bool(pin(0))
    if two_cores:
        os.sched_setaffinity(0, {0})
    up, upstream = start_upstream(1 if two_cores else None)
    try:
        with tempfile.TemporaryDirectory(prefix="gs-phases-") as tmp:
            ns = argparse.Namespace(stack_router=args.stack_router, no_record=False)
            apps = build_apps(upstream, Path(tmp), ns)
            if args.stack_router is not None:
                apps = {"passthrough": apps["passthrough"], "gearshift": apps["stack"]}
            instrument()
            try:
                import uvloop  # the event loop `gearshift serve` runs on when installed
            except ImportError:
                whole = asyncio.run(measure(apps, args.requests))
            else:
                whole = uvloop.run(measure(apps, args.requests))
    finally:
        stop(up)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.requests} requests per app; mean wall us per request")
    print(f"{'pass-through, whole request':40s} {whole['passthrough']:8.1f}")
    print(f"{'gearshift, whole request':40s} {whole['gearshift']:8.1f}")
    for label, spent in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(f"  {label:38s} {spent / args.requests * 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
