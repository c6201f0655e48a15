"""Gateway overhead: direct vs a trivial pass-through vs `gearshift serve` (heuristic, stack) vs LiteLLM, one run.

One zero-delay upstream (benchmarks/_upstream.py, its own process). Each gateway runs as a subprocess
pinned to core 0 (`taskset -c 0`); the upstream and this script (the load generator) share the other
core, so the gateway never competes with them for a CPU. Paths, all against that upstream:

  direct        no gateway: the floor every "added" figure is measured from;
  passthrough   a trivial Starlette + aiohttp pass-through (benchmarks/_passthrough.py): the Python floor;
  gearshift     `gearshift serve`, heuristic router, decision record ON (SQLite), API key checked;
  stack         the same with a saved stack router served through `[router] path` (trained here on a
                400-prompt GSM8K sample, as in the README walkthrough, unless --stack-router DIR is given);
  litellm       LiteLLM's proxy, one worker, logging off, one `openai/` model entry (when installable).

Three measurements:
  1. concurrency 1: N sequential requests after a warm-up, interleaved across paths in rounds so drift
     hits all paths alike -> added latency p50/p99 = path percentile - direct percentile; gateway RSS after;
  2. a concurrency ladder (1, 8, 32 clients, fixed duration each) -> sustained requests/s, pinned;
  3. scaling: `gearshift serve --workers 1` vs `--workers 2`, unpinned (the gateway, the upstream and the
     load generator share both cores, as on a real 2-core host), 32 clients, alternating rounds.

The harness is minimal on purpose. On this 2-core class of host its CPU is taken from the gateway (the
scaling step) or caps the direct and pass-through rows (the ladder): with g the gateway's CPU per request and
c the load generator's + upstream's, 1 -> 2 workers on 2 shared cores can show at most 2g/(g+c). So the
upstream is a bare asyncio.Protocol HTTP/1.1 server and the load generator (benchmarks/_loadgen.py) writes
pre-built request bytes to one kept-alive connection per client and parses responses with a few
`bytes.find`s, both on uvloop: c ~20 us per request on the direct path and ~70-85 us through gearshift at
32 clients (fewer responses per event-loop wake-up), where an aiohttp client and server took ~185 and
~300-330 us (2026-12-03): the bound on the workers ratio moved from ~1.5 to ~1.85. Every request still
carries a distinct prompt, is framed and read in full, and its JSON is parsed by the upstream. The script
prints c for every path and step; for the workers step also g, the bound, and the CPU other jobs used
meanwhile (a neighbour taking the idle core during the 1-worker rounds inflates the ratio, one taking a
core during the 2-worker rounds deflates it; only rounds under 0.1 cores of other work are quiet).
`--client aiohttp` runs the aiohttp generator for comparison.

    .venv/bin/python benchmarks/gateway_overhead.py                 # full run, LiteLLM installed on demand
    .venv/bin/python benchmarks/gateway_overhead.py --quick --no-litellm   # smoke run
    .venv/bin/python benchmarks/gateway_overhead.py --json out.json --litellm-venv /tmp/litellm-venv

Targets (issue 17): gearshift's added p50 within 0.2 ms and p99 within 0.5 ms of the pass-through's; the
stack router <= 0.3 ms more p50 and <= 60 MB more RSS than the heuristic; 2 workers >= 1.5x the req/s of
one at 32 clients; >= 15x LiteLLM's req/s at 1, 8 and 32 clients. Only 127.0.0.1 is ever contacted; every
loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _loadgen import Client, Request, client_errors, make_client, run  # noqa: E402

MODEL = "bench-model"
PROMPT = ("Explain briefly what the capital of France is and name two famous museums there. "
          "Answer in two sentences.")
#: gearshift added latency minus the pass-through's; stack minus heuristic p50 and RSS; workers and LiteLLM ratios
TARGET_P50_MS, TARGET_P99_MS, TARGET_RATIO = 0.2, 0.5, 15.0
TARGET_STACK_P50_MS, TARGET_STACK_RSS_MB, TARGET_WORKERS = 0.3, 60.0, 1.5
#: a load step during which other jobs used less CPU than this (cores) counts as quiet
QUIET_CORES = 0.1
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
    rss_mb: float | None = None  # gateway resident memory after the latency phase (all its processes)
    #: per concurrency: CPU microseconds per request of the load generator + the upstream (the harness's cost)
    harness_cpu_us: dict[int, float] = field(default_factory=dict)


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


def machine_cpu_seconds() -> float:
    """CPU seconds all cores spent busy since boot (Linux /proc/stat: user..steal); 0.0 where unavailable."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants (Linux /proc), MiB; 0.0 where unavailable."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def gearshift_toml(upstream: str, db: Path, record: bool = True, router: Path | None = None) -> str:
    """The benchmark gateway: two tiers on the one upstream; the heuristic, or the saved router at `router`."""
    chooser = 'name = "heuristic"\nthresholds = [0.5]' if router is None else f'path = "{router}"'
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
{chooser}

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
                    profile: Path | None, py_spy: str, record: bool = True, name: str = "gearshift",
                    router: Path | None = None, workers: int = 1) -> Path_:
    """`gearshift serve` pinned to `core`; with `profile`, under `py-spy record` (itself on the other core)."""
    cfg = tmp / f"{name}.toml"
    cfg.write_text(gearshift_toml(upstream, tmp / f"{name}.sqlite", record, router))
    port = free_port()
    cmd = [*pin(core), *gearshift_exe(), "serve", "--config", str(cfg), "--port", str(port), "--log-level", "warning",
           "--workers", str(workers)]
    if profile is not None:
        fmt = "flamegraph" if profile.suffix == ".svg" else "raw"
        cmd = [*pin(None if core is None else 1 - core), py_spy, "record", "-r", "250", "--nonblocking", "--gil",
               "-f", fmt, "-o", str(profile), "--", *cmd]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})
    root = f"http://127.0.0.1:{port}"
    wait_ready(root + "/healthz", proc, 120, f"gearshift serve ({name})")
    return Path_(name, root + "/v1/chat/completions", "gearshift/auto", proc)


def start_passthrough(upstream: str, core: int | None, log: Path) -> Path_:
    """benchmarks/_passthrough.py pinned to `core`: the trivial Python gateway baseline."""
    port = free_port()
    cmd = [*pin(core), sys.executable, str(HERE / "_passthrough.py"), "--upstream", upstream, "--port", str(port),
           "--key", API_KEY]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    wait_ready(root + "/healthz", proc, 60, "pass-through")
    return Path_("passthrough", root + "/v1/chat/completions", MODEL, proc)


def train_stack(tmp: Path) -> Path:
    """A saved stack router as the README walkthrough makes one: 400 GSM8K prompts, 30 % strong."""
    out, data = tmp / "stack-router", tmp / "outcomes.jsonl"
    gs = gearshift_exe()
    t = time.perf_counter()
    for argv in (["data", "export", "--dataset", "gsm8k", "--sample", "400", "--out", str(data)],
                 ["train", "--data", str(data), "--router", "stack", "--target-strong-share", "0.3", "--out",
                  str(out)]):
        subprocess.run([*gs, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
    print(f"trained a stack router for the benchmark in {time.perf_counter() - t:.0f}s", flush=True)
    return out


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

HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
ERRORS = client_errors()


def request_for(path: Path_, same_prompt: bool = False) -> Request:
    """Pre-built POSTs to `path`, a distinct prompt each (as real traffic has): an identical one would look like
    users regenerating answers to gearshift's implicit-signal detector and cost a signal write per request."""
    return Request(path.url, path.model, PROMPT, HEADERS, same_prompt)


async def one(client: Client, req: Request) -> bool:
    status, data = await client.post(req)
    return status == 200 and data.startswith(b"{")


async def sequential(client: Client, path: Path_, req: Request, n: int, out: list[float]) -> int:
    errors = 0
    for _ in range(n):
        t = time.perf_counter()
        ok = await one(client, req)
        out.append((time.perf_counter() - t) * 1000.0)
        ANSWERED[path.name] = ANSWERED.get(path.name, 0) + ok
        errors += not ok
    return errors


#: answered requests per gateway over the whole run (warm-ups included): what its decision log must hold
ANSWERED: dict[str, int] = {}


@dataclass
class Step:
    """One closed-loop load step: req/s, failed requests, and CPU microseconds per request over the measured
    window of this process (`client`, the load generator) and of each watched process tree."""

    rps: float
    errors: int
    cpu_us: dict[str, float]
    #: CPU the rest of the machine used meanwhile, in cores (other jobs on a shared host): > ~0.1 taints the step
    others_cores: float


async def sustained(client: Client, path: Path_, req: Request, clients: int, duration_s: float,
                    watch: dict[str, int] | None = None) -> Step:
    """Requests/s completed by `clients` closed-loop workers over `duration_s` (after a short warm-up)."""
    counts = [0, 0]  # done, errors
    measuring = False

    async def worker(end: float) -> None:
        while time.perf_counter() < end:
            try:
                ok = await one(client, req)
            except ERRORS:
                ok = False
            ANSWERED[path.name] = ANSWERED.get(path.name, 0) + ok
            if measuring:
                counts[0 if ok else 1] += 1

    pids = list((watch or {}).items())
    warm = min(1.0, duration_s / 4)
    start = time.perf_counter()
    end = start + warm + duration_s
    tasks = [asyncio.ensure_future(worker(end)) for _ in range(clients)]
    await asyncio.sleep(warm)
    busy0, cpu0 = machine_cpu_seconds(), {"client": time.process_time(), **{k: cpu_seconds(p) for k, p in pids}}
    measuring, t0 = True, time.perf_counter()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    measuring, elapsed = False, time.perf_counter() - t0
    busy1, cpu1 = machine_cpu_seconds(), {"client": time.process_time(), **{k: cpu_seconds(p) for k, p in pids}}
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    n = max(1, counts[0] + counts[1])
    ours = sum(cpu1[k] - cpu0[k] for k in cpu0)
    return Step(counts[0] / elapsed, counts[1], {k: (cpu1[k] - cpu0[k]) / n * 1e6 for k in cpu0},
                max(0.0, (busy1 - busy0 - ours) / elapsed))


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100.0 * (len(s) - 1))))]


async def measure(paths: list[Path_], args: argparse.Namespace, upstream_pid: int) -> dict[str, Result]:
    results = {p.name: Result(p.name, note=p.note) for p in paths}
    reqs = {p.name: request_for(p, args.same_prompt) for p in paths}
    client = make_client(args.client)
    try:
        lat: dict[str, list[float]] = {p.name: [] for p in paths}
        cpu: dict[str, float] = {p.name: 0.0 for p in paths}
        for p in paths:  # warm-up: imports, pools, JITted regexes, SQLite file
            results[p.name].errors += await sequential(client, p, reqs[p.name], args.warmup, [])
        rounds = max(1, min(args.rounds, args.requests))
        for r in range(rounds):
            per = args.requests // rounds + (1 if r < args.requests % rounds else 0)
            order = paths if r % 2 == 0 else list(reversed(paths))
            for p in order:
                c0 = cpu_seconds(p.proc.pid) if p.proc is not None else 0.0
                results[p.name].errors += await sequential(client, p, reqs[p.name], per, lat[p.name])
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
            if p.proc is not None:
                res.rss_mb = rss_mb(p.proc.pid)
        for c in args.concurrency:
            for p in paths:
                c0, w0 = (cpu_seconds(p.proc.pid) if p.proc is not None else 0.0), time.perf_counter()
                watch = {"upstream": upstream_pid, **({"gateway": p.proc.pid} if p.proc is not None else {})}
                step = await sustained(client, p, reqs[p.name], c, args.duration, watch)
                if p.proc is not None:
                    used, wall = cpu_seconds(p.proc.pid) - c0, time.perf_counter() - w0
                    results[p.name].cpu_share[c] = used / wall
                    if used > 0:
                        results[p.name].rps_per_cpu[c] = step.rps * wall / used
                results[p.name].rps[c] = step.rps
                results[p.name].harness_cpu_us[c] = step.cpu_us["client"] + step.cpu_us["upstream"]
                results[p.name].errors += step.errors
                print(f"  concurrency {c:3d}  {p.name:9s} {step.rps:9.1f} req/s   load generator + upstream CPU "
                      f"{step.cpu_us['client']:.0f} + {step.cpu_us['upstream']:.0f} us/req; other jobs "
                      f"{step.others_cores:.2f} cores" + (f"  ({step.errors} errors)" if step.errors else ""),
                      flush=True)
    finally:
        await client.close()
    return results


async def scaling(one: Path_, two: Path_, args: argparse.Namespace, upstream_pid: int) -> dict[str, Any]:
    """req/s at `args.scale_clients` clients through `--workers 1` and `--workers 2`, alternating rounds; also the
    CPU per request of the gateway (g) and of the load generator + upstream (c) in each round: on a host where
    they share the cores the ratio cannot exceed 2g/(g+c)."""
    rps: dict[str, list[float]] = {one.name: [], two.name: []}
    g: dict[str, list[float]] = {one.name: [], two.name: []}
    c: dict[str, list[float]] = {one.name: [], two.name: []}
    others: dict[str, list[float]] = {one.name: [], two.name: []}
    errors = 0
    client = make_client(args.client)
    reqs = {p.name: request_for(p, args.same_prompt) for p in (one, two)}
    try:
        for p in (one, two):  # warm-up: both workers of `two` import, connect and open SQLite
            errors += await sequential(client, p, reqs[p.name], args.warmup, [])
            await sustained(client, p, reqs[p.name], args.scale_clients, 1.0)
        for r in range(args.scale_rounds):
            for p in ((one, two) if r % 2 == 0 else (two, one)):
                assert p.proc is not None
                step = await sustained(client, p, reqs[p.name], args.scale_clients, args.duration,
                                       {"upstream": upstream_pid, "gateway": p.proc.pid})
                rps[p.name].append(step.rps)
                g[p.name].append(step.cpu_us["gateway"])
                c[p.name].append(step.cpu_us["client"] + step.cpu_us["upstream"])
                others[p.name].append(step.others_cores)
                errors += step.errors
                print(f"  scaling round {r + 1}/{args.scale_rounds}  {p.name:10s} {step.rps:9.1f} req/s   CPU us/req: "
                      f"gateway {step.cpu_us['gateway']:.0f}, load generator {step.cpu_us['client']:.0f}, "
                      f"upstream {step.cpu_us['upstream']:.0f}; other jobs {step.others_cores:.2f} cores", flush=True)
    finally:
        await client.close()
    mean = {k: statistics.fmean(v) for k, v in rps.items()}
    g_mean = {k: statistics.fmean(v) for k, v in g.items()}
    c_mean = statistics.fmean(c[one.name] + c[two.name])
    g_one = g_mean[one.name]
    quiet = [b / a for a, b, x, y in zip(rps[one.name], rps[two.name], others[one.name], others[two.name], strict=True)
             if a > 0 and max(x, y) < QUIET_CORES]
    return {"clients": args.scale_clients, "rounds": rps, "mean_rps": mean, "errors": errors, "others_cores": others,
            "quiet_round_ratios": quiet,
            "ratio": mean[two.name] / mean[one.name] if mean[one.name] > 0 else float("inf"),
            "gateway_cpu_us": g_mean, "harness_cpu_us": c_mean,
            "bound": 2 * g_one / (g_one + c_mean) if g_one + c_mean > 0 else float("nan")}


# -- report --------------------------------------------------------------------------------------------

def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def report(results: dict[str, Result], args: argparse.Namespace, meta: dict[str, Any],
           scale: dict[str, Any] | None) -> dict[str, Any]:
    names = list(results)
    print()
    print(f"gateway overhead  (zero-delay upstream; gateways pinned to core 0: {meta['pinned']}; "
          f"{args.requests} sequential requests, {args.duration:g}s per concurrency step)")
    print(f"{'path':12s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s} {'added p50':>10s} {'added p99':>10s} "
          f"{'CPU us/req':>10s} {'RSS MB':>7s}  "
          + "  ".join(f"{'c=' + str(c) + ' req/s':>12s}" for c in args.concurrency) + "  errors")
    for n in names:
        r = results[n]
        added = ("" if n == names[0] else f"{r.added_ms['p50']:10.3f} {r.added_ms['p99']:10.3f}")
        cpu = "" if r.cpu_us_per_request is None else f"{r.cpu_us_per_request:10.0f}"
        rss = "" if r.rss_mb is None else f"{r.rss_mb:7.1f}"
        print(f"{n:12s} {r.latency_ms['p50']:8.3f} {r.latency_ms['p99']:8.3f} {r.latency_ms['mean']:8.3f} "
              f"{added or ' ' * 21:21s} {cpu:>10s} {rss:>7s}  "
              + "  ".join(f"{r.rps[c]:12.1f}" for c in args.concurrency) + f"  {r.errors}")
    print(f"load generator ({meta['client']}, {meta['loop']}) + upstream CPU us per request, by path at "
          + "/".join(str(c) for c in args.concurrency) + " clients: "
          + "; ".join(f"{n} " + "/".join(f"{results[n].harness_cpu_us.get(c, float('nan')):.0f}"
                                         for c in args.concurrency) for n in names))
    ratios: dict[str, float] = {}
    verdict: dict[str, bool] = {}
    figures: dict[str, float] = {}
    gs, pt, st, ll = (results.get(k) for k in ("gearshift", "passthrough", "stack", "litellm"))
    print()
    if gs is not None and pt is not None:
        figures["over_passthrough_p50_ms"] = gs.added_ms["p50"] - pt.added_ms["p50"]
        figures["over_passthrough_p99_ms"] = gs.added_ms["p99"] - pt.added_ms["p99"]
        verdict["over_passthrough_p50"] = figures["over_passthrough_p50_ms"] <= TARGET_P50_MS
        verdict["over_passthrough_p99"] = figures["over_passthrough_p99_ms"] <= TARGET_P99_MS
        print(f"gearshift (heuristic) added latency beyond the pass-through's: p50 "
              f"{figures['over_passthrough_p50_ms']:+.3f} ms (target <= {TARGET_P50_MS:g}: "
              f"{_verdict(verdict['over_passthrough_p50'])}), p99 {figures['over_passthrough_p99_ms']:+.3f} ms "
              f"(target <= {TARGET_P99_MS:g}: {_verdict(verdict['over_passthrough_p99'])})")
        for c in args.concurrency:
            ratios[f"gearshift_over_passthrough_{c}"] = gs.rps[c] / pt.rps[c] if pt.rps[c] > 0 else float("inf")
        print("gearshift req/s / pass-through req/s: "
              + ", ".join(f"c={c}: {ratios[f'gearshift_over_passthrough_{c}']:.2f}x" for c in args.concurrency))
    if gs is not None and st is not None:
        figures["stack_minus_heuristic_p50_ms"] = st.latency_ms["p50"] - gs.latency_ms["p50"]
        figures["stack_minus_heuristic_p99_ms"] = st.latency_ms["p99"] - gs.latency_ms["p99"]
        figures["stack_minus_heuristic_rss_mb"] = (st.rss_mb or 0.0) - (gs.rss_mb or 0.0)
        verdict["stack_p50"] = figures["stack_minus_heuristic_p50_ms"] <= TARGET_STACK_P50_MS
        verdict["stack_rss"] = figures["stack_minus_heuristic_rss_mb"] <= TARGET_STACK_RSS_MB
        cpu = ""
        if st.cpu_us_per_request and gs.cpu_us_per_request:
            figures["stack_minus_heuristic_cpu_us"] = st.cpu_us_per_request - gs.cpu_us_per_request
            cpu = f"; CPU per request {figures['stack_minus_heuristic_cpu_us']:+.0f} us"
        print(f"stack router vs heuristic: p50 {figures['stack_minus_heuristic_p50_ms']:+.3f} ms (target <= "
              f"{TARGET_STACK_P50_MS:g}: {_verdict(verdict['stack_p50'])}), p99 "
              f"{figures['stack_minus_heuristic_p99_ms']:+.3f} ms, "
              f"RSS {figures['stack_minus_heuristic_rss_mb']:+.1f} MB "
              f"(target <= {TARGET_STACK_RSS_MB:g}: {_verdict(verdict['stack_rss'])}){cpu}")
        for c in args.concurrency:
            ratios[f"stack_over_heuristic_{c}"] = st.rps[c] / gs.rps[c] if gs.rps[c] > 0 else float("inf")
        print("stack req/s / heuristic req/s: "
              + ", ".join(f"c={c}: {ratios[f'stack_over_heuristic_{c}']:.2f}x" for c in args.concurrency))
    if scale is not None:
        verdict["workers"] = scale["ratio"] >= TARGET_WORKERS
        m = scale["mean_rps"]
        print(f"workers (unpinned, {scale['clients']} clients): 1 worker {m['workers-1']:.0f} req/s, 2 workers "
              f"{m['workers-2']:.0f} req/s -> {scale['ratio']:.2f}x (target >= {TARGET_WORKERS:g}: "
              f"{_verdict(verdict['workers'])})")
        gc = scale["gateway_cpu_us"]
        print(f"  CPU per request in those rounds: gateway {gc['workers-1']:.0f} us (1 worker) / "
              f"{gc['workers-2']:.0f} us (2 workers), load generator + upstream {scale['harness_cpu_us']:.0f} us "
              "-> on 2 shared cores the ratio "
              f"is bounded by 2g/(g+c) = {scale['bound']:.2f}")
        busy = [x for v in scale["others_cores"].values() for x in v]
        quiet = scale["quiet_round_ratios"]
        print(f"  other jobs on the machine used {min(busy):.2f}-{max(busy):.2f} cores during those rounds; rounds "
              f"where both steps had < {QUIET_CORES:g}: " + (", ".join(f"{x:.2f}x" for x in quiet) or "none"))
        if "records" in scale:
            verdict["records_once"] = scale["records"] == scale["answered"]
            print(f"decision records vs answered requests (each once): {scale['records']} vs {scale['answered']} "
                  f"({_verdict(verdict['records_once'])})")
    if ll is not None:
        print(f"LiteLLM added latency:   p50 {ll.added_ms['p50']:.3f} ms, p99 {ll.added_ms['p99']:.3f} ms  "
              f"(LiteLLM {meta.get('litellm_version', '?')})")
    if gs is not None and ll is not None:
        for c in args.concurrency:
            ratios[f"litellm_{c}"] = gs.rps[c] / ll.rps[c] if ll.rps[c] > 0 else float("inf")
        verdict["litellm_ratio"] = all(ratios[f"litellm_{c}"] >= TARGET_RATIO for c in args.concurrency)
        print("gearshift req/s / LiteLLM req/s: " + ", ".join(f"c={c}: {ratios[f'litellm_{c}']:.1f}x"
                                                             for c in args.concurrency)
              + f"  (target >= {TARGET_RATIO:g}x: {_verdict(verdict['litellm_ratio'])})")
        if gs.cpu_us_per_request and ll.cpu_us_per_request:
            ratios["litellm_cpu_per_request"] = ll.cpu_us_per_request / gs.cpu_us_per_request
            print(f"gateway CPU per request: gearshift {gs.cpu_us_per_request:.0f} us, LiteLLM "
                  f"{ll.cpu_us_per_request:.0f} us -> {ratios['litellm_cpu_per_request']:.1f}x")
    return {"meta": meta, "config": {"requests": args.requests, "warmup": args.warmup, "duration_s": args.duration,
                                     "concurrency": args.concurrency, "prompt": PROMPT,
                                     "same_prompt": args.same_prompt, "decision_record": not args.no_record,
                                     "gearshift_env": args.gearshift_env},
            "paths": {n: asdict(r) for n, r in results.items()}, "figures": figures, "ratios": ratios,
            "scaling": scale,
            "targets": {"over_passthrough_p50_ms": TARGET_P50_MS, "over_passthrough_p99_ms": TARGET_P99_MS,
                        "stack_p50_ms": TARGET_STACK_P50_MS, "stack_rss_mb": TARGET_STACK_RSS_MB,
                        "workers_ratio": TARGET_WORKERS, "litellm_ratio": TARGET_RATIO},
            "met": verdict}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="gearshift vs LiteLLM gateway overhead on a zero-delay local upstream")
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per path (concurrency 1)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up requests per path, not measured")
    ap.add_argument("--rounds", type=int, default=4, help="interleave the sequential requests in this many rounds")
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32],
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
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw", help="load generator: the minimal "
                    "HTTP/1.1 client (default) or aiohttp (several times its CPU per request; for comparison)")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    ap.add_argument("--keep-logs", type=Path, help="copy the gateway logs and configs to this folder")
    ap.add_argument("--gearshift-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for `gearshift serve` (e.g. PYTHONPATH=... to try uvloop/httptools)")
    ap.add_argument("--profile", type=Path, help="run gearshift under `py-spy record`: .svg flame graph, else "
                    "collapsed stacks")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable for --profile")
    ap.add_argument("--stack-router", type=Path, help="a saved stack router directory for the `stack` path "
                    "(default: train one on 400 GSM8K prompts, ~1 min)")
    ap.add_argument("--no-stack", action="store_true", help="skip the stack-router path")
    ap.add_argument("--no-scaling", action="store_true", help="skip the --workers 1 vs 2 measurement")
    ap.add_argument("--scale-clients", type=int, default=32, help="clients for the workers measurement")
    ap.add_argument("--scale-rounds", type=int, default=4, help="alternating rounds of the workers measurement")
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.warmup, args.duration = min(args.requests, 300), min(args.warmup, 50), 2.0
        args.scale_rounds = min(args.scale_rounds, 2)
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
    every_core = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {1})  # this process = load generator, on the non-gateway core
    meta: dict[str, Any] = {"pinned": pinned, "python": sys.version.split()[0], "loadavg": os.getloadavg(),
                            "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            "client": args.client,
                            "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"}
    litellm_exe = None
    if not args.no_litellm:
        venv = args.litellm_venv.resolve()
        if HERE.parent in venv.parents:
            print("error: --litellm-venv must be outside the repository", file=sys.stderr)
            return 2
        litellm_exe = ensure_litellm(venv, not args.no_install)
        if litellm_exe is None:
            print(f"note: LiteLLM not available in {venv}; measuring without it", flush=True)
        else:
            meta["litellm_version"] = litellm_version(venv)
    scale: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmpdir, processes() as procs:
        tmp = Path(tmpdir)
        stack_dir = None if args.no_stack else (args.stack_router.resolve() if args.stack_router else train_stack(tmp))
        up_proc, upstream = start_upstream(client_core)
        procs.append(up_proc)
        paths = [Path_("direct", upstream + "/chat/completions", MODEL)]
        pt = start_passthrough(upstream, gw_core, tmp / "passthrough.log")
        procs.append(pt.proc)  # type: ignore[arg-type]
        paths.append(pt)
        env = dict(kv.split("=", 1) for kv in args.gearshift_env)
        if args.profile is not None:
            args.profile = args.profile.resolve()
        gs = start_gearshift(upstream, tmp, gw_core, tmp / "gearshift.log", env=env, profile=args.profile,
                             py_spy=args.py_spy, record=not args.no_record)
        procs.append(gs.proc)  # type: ignore[arg-type]
        paths.append(gs)
        if stack_dir is not None:
            st = start_gearshift(upstream, tmp, gw_core, tmp / "stack.log", env=env, profile=None, py_spy=args.py_spy,
                                 record=not args.no_record, name="stack", router=stack_dir)
            procs.append(st.proc)  # type: ignore[arg-type]
            paths.append(st)
        if litellm_exe is not None:
            try:
                ll = start_litellm(litellm_exe, upstream, tmp, gw_core, tmp / "litellm.log")
                procs.append(ll.proc)  # type: ignore[arg-type]
                paths.append(ll)
            except RuntimeError as exc:
                print(f"note: LiteLLM proxy failed to start ({exc}); log tail:\n"
                      + (tmp / "litellm.log").read_text(errors="replace")[-2000:], flush=True)
        print(f"paths: {', '.join(p.name for p in paths)}; upstream {upstream}", flush=True)
        results = run(measure(paths, args, up_proc.pid))
        health = gs.url.rsplit("/v1/", 1)[0] + "/healthz"
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(health, timeout=5) as r:
            meta["gearshift_decisions"] = json.loads(r.read()).get("decisions")
        for p in paths[1:]:  # the scaling phase has the machine to itself
            stop(p.proc)
        if not args.no_scaling:
            os.sched_setaffinity(0, every_core)  # unpinned: load generator, upstream and workers share the cores
            os.sched_setaffinity(up_proc.pid, every_core)
            w1 = start_gearshift(upstream, tmp, None, tmp / "workers-1.log", env=env, profile=None, py_spy=args.py_spy,
                                 record=not args.no_record, name="workers-1")
            procs.append(w1.proc)  # type: ignore[arg-type]
            w2 = start_gearshift(upstream, tmp, None, tmp / "workers-2.log", env=env, profile=None, py_spy=args.py_spy,
                                 record=not args.no_record, name="workers-2", workers=2)
            procs.append(w2.proc)  # type: ignore[arg-type]
            scale = run(scaling(w1, w2, args, up_proc.pid))
            for p in (w1, w2):
                stop(p.proc)  # SIGTERM: drain, flush the writers
            scale["records"] = {p.name: _count_records(tmp / f"{p.name}.sqlite") for p in (w1, w2)}
            scale["answered"] = {p.name: ANSWERED.get(p.name, 0) for p in (w1, w2)}
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for f in tmp.iterdir():
                if f.suffix in (".log", ".toml", ".yaml"):
                    shutil.copy(f, args.keep_logs / f.name)
    meta["loadavg_end"] = os.getloadavg()
    out = report(results, args, meta, scale)
    print(f"decision record: {meta.get('gearshift_decisions')}; load average start {meta['loadavg']}, "
          f"end {meta['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    bad = sum(r.errors for r in results.values()) + (scale["errors"] if scale else 0)
    if bad:
        print(f"error: {bad} failed requests", file=sys.stderr)
        return 1
    return 0


def _count_records(db: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        (n,) = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()
    return int(n)


if __name__ == "__main__":
    sys.exit(main())
