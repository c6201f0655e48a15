"""Gateway overhead: direct-to-upstream vs through `gearshift serve` vs through LiteLLM's proxy, same run.

One zero-delay upstream (benchmarks/_upstream.py, its own process). Each gateway runs as a subprocess
pinned to core 0 (`taskset -c 0`); the upstream and this script (the aiohttp load generator) share the
other core, so the gateway never competes with them for a CPU. gearshift runs the heuristic router with
the decision record ON (SQLite, the default `[store]`); LiteLLM runs one worker, logging off, one
`openai/` model entry pointing at the same upstream.

Two measurements per path:
  1. concurrency 1: N sequential requests after a warm-up, interleaved across paths in rounds so drift
     hits all paths alike -> added latency p50/p99 = path percentile - direct percentile;
  2. a concurrency ladder (1, 8, 32, 64 clients, fixed duration each) -> sustained requests/s.

    .venv/bin/python benchmarks/gateway_overhead.py                 # full run, LiteLLM installed on demand
    .venv/bin/python benchmarks/gateway_overhead.py --quick --no-litellm   # smoke run, seconds
    .venv/bin/python benchmarks/gateway_overhead.py --json out.json --litellm-venv /tmp/litellm-venv

Targets (issue): gearshift added p50 <= 1 ms and p99 <= 3 ms at concurrency 1, and >= 10x LiteLLM's
requests/s on one worker. Only 127.0.0.1 is ever contacted; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
MODEL = "bench-model"
PROMPT = ("Explain briefly what the capital of France is and name two famous museums there. "
          "Answer in two sentences.")
TARGET_P50_MS, TARGET_P99_MS, TARGET_RATIO = 1.0, 3.0, 10.0
DEFAULT_LITELLM_VENV = Path(tempfile.gettempdir()) / "gearshift-bench-litellm-venv"
#: Both gateways authenticate this key (LiteLLM refuses to start without a master key; fair to make both check).
API_KEY = "sk-bench-0123456789abcdef0123456789abcdef"


@dataclass
class Path_:
    """One way to reach the upstream: a URL, the model name to send, and (for gateways) its process."""

    name: str
    url: str
    model: str
    proc: subprocess.Popen[bytes] | None = None
    note: str = ""


@dataclass
class Result:
    name: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    added_ms: dict[str, float] = field(default_factory=dict)
    rps: dict[int, float] = field(default_factory=dict)
    cpu_us_per_request: float | None = None  # gateway process CPU (user+sys) per sequential request
    #: per concurrency: share of a core the gateway got, and req/s per CPU-second (= req/s on a core of its own)
    cpu_share: dict[int, float] = field(default_factory=dict)
    rps_per_cpu: dict[int, float] = field(default_factory=dict)
    errors: int = 0
    note: str = ""


# -- processes ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def pin(core: int | None) -> list[str]:
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(core)]


def start_upstream(core: int | None) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [*pin(core), sys.executable, str(HERE / "_upstream.py"), "--port", "0"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"benchmark upstream did not start (got {line!r})")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:  # loopback only
            if r.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready at {url} after {timeout_s:.0f}s")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of `pid` and its descendants (Linux /proc); 0.0 where /proc is unavailable."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def gearshift_toml(upstream: str, db: Path, record: bool = True) -> str:
    return f"""
[[tiers]]
name = "cheap"
[[tiers.deployments]]
name = "cheap"
model = "{MODEL}"
base_url = "{upstream}"
input_price_per_m = 0.15
output_price_per_m = 0.6

[[tiers]]
name = "strong"
[[tiers.deployments]]
name = "strong"
model = "{MODEL}-strong"
base_url = "{upstream}"
input_price_per_m = 2.5
output_price_per_m = 10.0

[router]
name = "heuristic"
thresholds = [0.5]

[store]
enabled = {"true" if record else "false"}
path = "{db}"

[reliability]
max_retries = 0

[[auth.keys]]
id = "bench"
sha256 = "{hashlib.sha256(API_KEY.encode()).hexdigest()}"
"""


def gearshift_exe() -> list[str]:
    exe = Path(sys.executable).parent / "gearshift"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gearshift")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from gearshift.cli import entrypoint; sys.exit(entrypoint())"]


def start_gearshift(upstream: str, tmp: Path, core: int | None, log: Path, *, env: dict[str, str],
                    profile: Path | None, py_spy: str, record: bool = True) -> Path_:
    """`gearshift serve` pinned to `core`; with `profile`, under `py-spy record` (itself on the other core)."""
    cfg = tmp / "gearshift.toml"
    cfg.write_text(gearshift_toml(upstream, tmp / "decisions.sqlite", record))
    port = free_port()
    cmd = [*pin(core), *gearshift_exe(), "serve", "--config", str(cfg), "--port", str(port), "--log-level", "warning"]
    if profile is not None:
        fmt = "flamegraph" if profile.suffix == ".svg" else "raw"
        cmd = [*pin(None if core is None else 1 - core), py_spy, "record", "-r", "250", "--nonblocking", "--gil",
               "-f", fmt, "-o", str(profile), "--", *cmd]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})
    root = f"http://127.0.0.1:{port}"
    wait_ready(root + "/healthz", proc, 60, "gearshift serve")
    return Path_("gearshift", root + "/v1/chat/completions", "gearshift/auto", proc)


def ensure_litellm(venv: Path, install: bool) -> Path | None:
    """The venv's `litellm` executable, installing `litellm[proxy]` into it when missing and allowed."""
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    if not install:
        return None
    print(f"installing litellm[proxy] into {venv} (once; a few minutes)...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True, timeout=1200)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"note: could not install LiteLLM ({exc}); skipping it", flush=True)
        return None
    return exe if exe.exists() else None


def litellm_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; "
                          "print(m.version('litellm'))"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def start_litellm(exe: Path, upstream: str, tmp: Path, core: int | None, log: Path) -> Path_:
    cfg = tmp / "litellm.yaml"
    cfg.write_text(f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {upstream}
      api_key: sk-bench
litellm_settings:
  set_verbose: false
  json_logs: false
  turn_off_message_logging: true
  telemetry: false
general_settings:
  master_key: {API_KEY}
  disable_spend_logs: true
""")
    port = free_port()
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"}
    cmd = [*pin(core), str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    root = f"http://127.0.0.1:{port}"
    wait_ready(root + "/health/liveliness", proc, 180, "litellm proxy")
    return Path_("litellm", root + "/v1/chat/completions", MODEL, proc)


# -- load ----------------------------------------------------------------------------------------------

_seq = itertools.count()


def body_for(path: Path_, same_prompt: bool = False) -> bytes:
    """A distinct prompt per request (as real traffic has): an identical one would look like users regenerating
    answers to gearshift's implicit-signal detector and cost a signal write per request."""
    text = PROMPT if same_prompt else f"{PROMPT} (ref {next(_seq)})"
    return json.dumps({"model": path.model, "messages": [{"role": "user", "content": text}],
                       "max_tokens": 64}).encode()


HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}


async def one(session: aiohttp.ClientSession, url: str, body: bytes) -> bool:
    async with session.post(url, data=body, headers=HEADERS) as r:
        data = await r.read()
        return r.status == 200 and data.startswith(b"{")


async def sequential(session: aiohttp.ClientSession, path: Path_, n: int, out: list[float], same: bool) -> int:
    errors = 0
    for _ in range(n):
        body = body_for(path, same)
        t = time.perf_counter()
        ok = await one(session, path.url, body)
        out.append((time.perf_counter() - t) * 1000.0)
        errors += not ok
    return errors


async def sustained(session: aiohttp.ClientSession, path: Path_, clients: int, duration_s: float,
                    same: bool) -> tuple[float, int]:
    """Requests/s completed by `clients` closed-loop workers over `duration_s` (after a short warm-up)."""
    counts = [0, 0]  # done, errors
    measuring = False

    async def worker(end: float) -> None:
        while time.perf_counter() < end:
            try:
                ok = await one(session, path.url, body_for(path, same))
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            if measuring:
                counts[0 if ok else 1] += 1

    warm = min(1.0, duration_s / 4)
    start = time.perf_counter()
    end = start + warm + duration_s
    tasks = [asyncio.ensure_future(worker(end)) for _ in range(clients)]
    await asyncio.sleep(warm)
    measuring, t0 = True, time.perf_counter()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    measuring, elapsed = False, time.perf_counter() - t0
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return counts[0] / elapsed, counts[1]


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100.0 * (len(s) - 1))))]


async def measure(paths: list[Path_], args: argparse.Namespace) -> dict[str, Result]:
    results = {p.name: Result(p.name, note=p.note) for p in paths}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        lat: dict[str, list[float]] = {p.name: [] for p in paths}
        cpu: dict[str, float] = {p.name: 0.0 for p in paths}
        for p in paths:  # warm-up: imports, pools, JITted regexes, SQLite file
            results[p.name].errors += await sequential(session, p, args.warmup, [], args.same_prompt)
        rounds = max(1, min(args.rounds, args.requests))
        for r in range(rounds):
            per = args.requests // rounds + (1 if r < args.requests % rounds else 0)
            order = paths if r % 2 == 0 else list(reversed(paths))
            for p in order:
                c0 = cpu_seconds(p.proc.pid) if p.proc is not None else 0.0
                results[p.name].errors += await sequential(session, p, per, lat[p.name], args.same_prompt)
                if p.proc is not None:
                    cpu[p.name] += cpu_seconds(p.proc.pid) - c0
            print(f"  latency round {r + 1}/{rounds} done", flush=True)
        base = lat[paths[0].name]
        for p in paths:
            xs = lat[p.name]
            res = results[p.name]
            res.latency_ms = {"p50": statistics.median(xs), "p90": pct(xs, 90), "p99": pct(xs, 99),
                              "mean": statistics.fmean(xs), "n": float(len(xs))}
            if p.proc is not None and cpu[p.name] > 0:
                res.cpu_us_per_request = cpu[p.name] / len(xs) * 1e6
            res.added_ms = {"p50": res.latency_ms["p50"] - statistics.median(base),
                            "p99": res.latency_ms["p99"] - pct(base, 99)}
        for c in args.concurrency:
            for p in paths:
                c0, w0 = (cpu_seconds(p.proc.pid) if p.proc is not None else 0.0), time.perf_counter()
                rps, errs = await sustained(session, p, c, args.duration, args.same_prompt)
                if p.proc is not None:
                    used, wall = cpu_seconds(p.proc.pid) - c0, time.perf_counter() - w0
                    results[p.name].cpu_share[c] = used / wall
                    if used > 0:
                        results[p.name].rps_per_cpu[c] = rps * wall / used
                results[p.name].rps[c] = rps
                results[p.name].errors += errs
                print(f"  concurrency {c:3d}  {p.name:9s} {rps:9.1f} req/s" + (f"  ({errs} errors)" if errs else ""),
                      flush=True)
    return results


# -- report --------------------------------------------------------------------------------------------

def report(results: dict[str, Result], args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    names = list(results)
    print()
    print(f"gateway overhead  (zero-delay upstream; gateways pinned to core 0: {meta['pinned']}; "
          f"{args.requests} sequential requests, {args.duration:g}s per concurrency step)")
    print(f"{'path':10s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s} {'added p50':>10s} {'added p99':>10s} "
          f"{'CPU us/req':>10s}  " + "  ".join(f"{'c=' + str(c) + ' req/s':>12s}" for c in args.concurrency)
          + "  errors")
    for n in names:
        r = results[n]
        added = ("" if n == names[0] else f"{r.added_ms['p50']:10.3f} {r.added_ms['p99']:10.3f}")
        cpu = "" if r.cpu_us_per_request is None else f"{r.cpu_us_per_request:10.0f}"
        print(f"{n:10s} {r.latency_ms['p50']:8.3f} {r.latency_ms['p99']:8.3f} {r.latency_ms['mean']:8.3f} "
              f"{added or ' ' * 21:21s} {cpu:>10s}  "
              + "  ".join(f"{r.rps[c]:12.1f}" for c in args.concurrency) + f"  {r.errors}")
    ratios: dict[str, float] = {}
    verdict: dict[str, bool] = {}
    gs = results.get("gearshift")
    ll = results.get("litellm")
    print()
    if gs is not None:
        verdict["added_p50"] = gs.added_ms["p50"] <= TARGET_P50_MS
        verdict["added_p99"] = gs.added_ms["p99"] <= TARGET_P99_MS
        print(f"gearshift added latency: p50 {gs.added_ms['p50']:.3f} ms (target <= {TARGET_P50_MS:g}: "
              f"{'MET' if verdict['added_p50'] else 'MISSED'}), p99 {gs.added_ms['p99']:.3f} ms "
              f"(target <= {TARGET_P99_MS:g}: {'MET' if verdict['added_p99'] else 'MISSED'})")
    if gs is not None and gs.cpu_share:
        print("gearshift share of its core during the ladder: "
              + ", ".join(f"c={c}: {gs.cpu_share[c] * 100:.0f}% ({gs.rps_per_cpu.get(c, 0):.0f} req per CPU-s)"
                          for c in args.concurrency))
    if ll is not None:
        print(f"LiteLLM added latency:   p50 {ll.added_ms['p50']:.3f} ms, p99 {ll.added_ms['p99']:.3f} ms  "
              f"(LiteLLM {meta.get('litellm_version', '?')})")
    if gs is not None and ll is not None:
        for c in args.concurrency:
            ratios[str(c)] = gs.rps[c] / ll.rps[c] if ll.rps[c] > 0 else float("inf")
        verdict["rps_ratio"] = all(ratios[str(c)] >= TARGET_RATIO for c in args.concurrency)
        print("gearshift req/s / LiteLLM req/s: " + ", ".join(f"c={c}: {v:.1f}x" for c, v in ratios.items())
              + f"  (target >= {TARGET_RATIO:g}x: {'MET' if verdict['rps_ratio'] else 'MISSED'})")
        print(f"LiteLLM added p50 / gearshift added p50: "
              f"{ll.added_ms['p50'] / max(gs.added_ms['p50'], 1e-6):.1f}x")
        if all(gs.rps_per_cpu.get(c) and ll.rps_per_cpu.get(c) for c in args.concurrency):
            for c in args.concurrency:
                ratios[f"per_cpu_{c}"] = gs.rps_per_cpu[c] / ll.rps_per_cpu[c]
            print("req per CPU-second (= req/s with a core to itself; robust to other load on the core): "
                  + ", ".join(f"c={c}: gearshift {gs.rps_per_cpu[c]:.0f} / LiteLLM {ll.rps_per_cpu[c]:.0f} = "
                              f"{ratios[f'per_cpu_{c}']:.1f}x" for c in args.concurrency))
        if gs.cpu_us_per_request and ll.cpu_us_per_request:
            ratios["cpu_per_request"] = ll.cpu_us_per_request / gs.cpu_us_per_request
            print(f"gateway CPU per request (load-robust): gearshift {gs.cpu_us_per_request:.0f} us, LiteLLM "
                  f"{ll.cpu_us_per_request:.0f} us -> LiteLLM/gearshift {ratios['cpu_per_request']:.1f}x "
                  f"(one-core ceilings ~{1e6 / gs.cpu_us_per_request:.0f} vs ~{1e6 / ll.cpu_us_per_request:.0f} req/s)")
    return {"meta": meta, "config": {"requests": args.requests, "warmup": args.warmup, "duration_s": args.duration,
                                     "concurrency": args.concurrency, "prompt": PROMPT,
                                     "same_prompt": args.same_prompt, "decision_record": not args.no_record,
                                     "gearshift_env": args.gearshift_env},
            "paths": {n: asdict(r) for n, r in results.items()}, "ratios_rps_gearshift_over_litellm": ratios,
            "targets": {"added_p50_ms": TARGET_P50_MS, "added_p99_ms": TARGET_P99_MS, "rps_ratio": TARGET_RATIO},
            "met": verdict}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="gearshift vs LiteLLM gateway overhead on a zero-delay local upstream")
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per path (concurrency 1)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up requests per path, not measured")
    ap.add_argument("--rounds", type=int, default=4, help="interleave the sequential requests in this many rounds")
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 64],
                    help="comma-separated client counts for the throughput ladder")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds measured per concurrency step and path")
    ap.add_argument("--quick", action="store_true", help="smoke run: 300 requests, 2s steps, ladder 1,8,32")
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM path")
    ap.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV,
                    help="venv holding litellm[proxy]; created on demand (never inside the repo)")
    ap.add_argument("--no-install", action="store_true", help="do not install LiteLLM if the venv lacks it")
    ap.add_argument("--same-prompt", action="store_true", help="send one identical prompt every time (stresses "
                    "gearshift's regeneration-signal path)")
    ap.add_argument("--no-record", action="store_true", help="diagnostic: gearshift with [store] off (the targets "
                    "are defined with the decision record ON)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    ap.add_argument("--keep-logs", type=Path, help="copy the gateway logs and configs to this folder")
    ap.add_argument("--gearshift-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for `gearshift serve` (e.g. PYTHONPATH=... to try uvloop/httptools)")
    ap.add_argument("--profile", type=Path, help="run gearshift under `py-spy record`: .svg flame graph, else "
                    "collapsed stacks")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable for --profile")
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.warmup, args.duration = min(args.requests, 300), min(args.warmup, 50), 2.0
        if args.concurrency == [1, 8, 32, 64]:
            args.concurrency = [1, 8, 32]
    if args.requests < 10 or args.duration <= 0 or any(c < 1 or c > 256 for c in args.concurrency):
        ap.error("need --requests >= 10, --duration > 0 and concurrency in 1..256")
    return args


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Started subprocesses, stopped in reverse order; SIGINT lets a py-spy wrapper write its profile."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for p in reversed(procs):
            stop(p, signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = not args.no_pin and bool(pin(0))
    gw_core, client_core = (0, 1) if pinned else (None, None)
    if pinned:
        os.sched_setaffinity(0, {1})  # this process = load generator, on the non-gateway core
    meta: dict[str, Any] = {"pinned": pinned, "python": sys.version.split()[0], "loadavg": os.getloadavg(),
                            "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    litellm_exe = None
    if not args.no_litellm:
        venv = args.litellm_venv.resolve()
        if HERE.parent in venv.parents:
            print("error: --litellm-venv must be outside the repository", file=sys.stderr)
            return 2
        litellm_exe = ensure_litellm(venv, not args.no_install)
        if litellm_exe is None:
            print(f"note: LiteLLM not available in {venv}; measuring direct and gearshift only", flush=True)
        else:
            meta["litellm_version"] = litellm_version(venv)
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmpdir, processes() as procs:
        tmp = Path(tmpdir)
        up_proc, upstream = start_upstream(client_core)
        procs.append(up_proc)
        paths = [Path_("direct", upstream + "/chat/completions", MODEL)]
        env = dict(kv.split("=", 1) for kv in args.gearshift_env)
        if args.profile is not None:
            args.profile = args.profile.resolve()
        gs = start_gearshift(upstream, tmp, gw_core, tmp / "gearshift.log", env=env, profile=args.profile,
                             py_spy=args.py_spy, record=not args.no_record)
        procs.append(gs.proc)  # type: ignore[arg-type]
        paths.append(gs)
        if litellm_exe is not None:
            try:
                ll = start_litellm(litellm_exe, upstream, tmp, gw_core, tmp / "litellm.log")
                procs.append(ll.proc)  # type: ignore[arg-type]
                paths.append(ll)
            except RuntimeError as exc:
                print(f"note: LiteLLM proxy failed to start ({exc}); log tail:\n"
                      + (tmp / "litellm.log").read_text(errors="replace")[-2000:], flush=True)
        print(f"paths: {', '.join(p.name for p in paths)}; upstream {upstream}", flush=True)
        results = asyncio.run(measure(paths, args))
        health = gs.url.rsplit("/v1/", 1)[0] + "/healthz"
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(health, timeout=5) as r:
            meta["gearshift_decisions"] = json.loads(r.read()).get("decisions")
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for f in tmp.iterdir():
                if f.suffix in (".log", ".toml", ".yaml"):
                    shutil.copy(f, args.keep_logs / f.name)
    meta["loadavg_end"] = os.getloadavg()
    out = report(results, args, meta)
    print(f"decision record: {meta.get('gearshift_decisions')}; load average start {meta['loadavg']}, "
          f"end {meta['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    bad = sum(r.errors for r in results.values())
    if bad:
        print(f"error: {bad} failed requests", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
