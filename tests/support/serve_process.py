"""A real `gearshift serve` process for tests that need the CLI, signals or several gateways at once.

In-process tests use `GatewayServer`; these start the installed console script, so what they check is what
an operator runs. Waiting is on `/healthz`, and a gateway that dies or never answers fails the test with
the tail of its own output instead of hanging it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

GEARSHIFT = Path(sys.executable).with_name("gearshift")


def start_serve(config: Path, port: int, stdout: int | IO[Any] | None = subprocess.PIPE,
                stderr: int | IO[Any] | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """`gearshift serve --config CONFIG --port PORT --log-level warning` in the background."""
    return subprocess.Popen([str(GEARSHIFT), "serve", "--config", str(config), "--port", str(port),
                             "--log-level", "warning"], stdout=stdout, stderr=stderr)


def wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout_s: float, output: Callable[[], str]) -> None:
    """Return once `url`/healthz answers 200. A process that exits or stays silent past `timeout_s` fails
    the test with the last 3000 characters of `output()` (read after the process is stopped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{output()[-3000:]}")
        if time.monotonic() >= deadline:
            stop_serve(proc)
            raise AssertionError(f"gateway on {url} not ready in {timeout_s}s:\n{output()[-3000:]}")
        time.sleep(0.1)


def stop_serve(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM (graceful drain), then SIGKILL if it outlives `timeout_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def two_tier_toml(cheap_url: str, strong_url: str, *, names: tuple[str, str] = ("c", "s"),
                  model: str | None = None) -> str:
    """The `[[tiers]]` part of a config: tier "cheap" with one deployment `names[0]` at `cheap_url`, tier
    "strong" with `names[1]` at `strong_url` (each deployment's model is `model`, else its name)."""
    return "".join(f"""
[[tiers]]
name = "{tier}"
[[tiers.deployments]]
name = "{name}"
model = "{model or name}"
base_url = "{url}"
""" for tier, name, url in (("cheap", names[0], cheap_url), ("strong", names[1], strong_url)))
