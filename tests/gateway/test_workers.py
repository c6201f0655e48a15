"""`gearshift serve --workers N`: real processes on one port, one SQLite log, SIGTERM draining every worker."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gearshift.cli import main
from gearshift.gateway.settings import GatewaySettings
from gearshift.gateway.workers import balanced_ports, per_worker_settings, spool_for_worker
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_upstream import Behaviour, FakeUpstream, closed_port
from support.serve_process import GEARSHIFT, two_tier_toml, wait_healthy

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, upstream: str, db: Path) -> Path:
    cfg = tmp_path / "gearshift.toml"
    cfg.write_text(two_tier_toml(upstream, upstream) + f"""
[store]
path = "{db}"
batch_size = 16

[limits]
drain_timeout_s = 10
""")
    return cfg


@contextlib.contextmanager
def _serving(cfg: Path, port: int, log: Path, workers: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """`gearshift serve --workers N` on `port`, healthy; killed on the way out if the test did not stop it."""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(GEARSHIFT), "serve", "--config", str(cfg), "--port", str(port),
                                 "--log-level", "warning", "--workers", str(workers)], stdout=out, stderr=out)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", 30, log.read_text)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _pids(url: str, tries: int = 60) -> set[int]:
    """Worker pids seen on fresh connections (each GET opens one)."""
    seen: set[int] = set()
    for _ in range(tries):
        seen.add(httpx.get(f"{url}/healthz", timeout=5).json()["pid"])
        if len(seen) > 1:
            break
    return seen


def _chat(client: httpx.Client, url: str, i: int) -> str:
    r = client.post(f"{url}/v1/chat/completions", timeout=30,
                    json={"model": "gearshift/auto", "messages": [{"role": "user", "content": f"question {i}"}]})
    assert r.status_code == 200, r.text
    return r.headers["x-gearshift-request-id"]


def test_two_workers_share_the_port_drain_on_sigterm_and_write_every_record_once(tmp_path: Path) -> None:
    db, port, log = tmp_path / "d.sqlite", closed_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with FakeUpstream() as up, _serving(_config(tmp_path, up.base_url, db), port, log) as proc:
        pids = _pids(url)
        assert len(pids) == 2 and proc.pid not in pids, pids  # two workers answer; the supervisor serves none
        local = threading.local()

        def one(i: int) -> str:
            if not hasattr(local, "client"):
                local.client = httpx.Client()
            return _chat(local.client, url, i)

        with ThreadPoolExecutor(16) as pool:  # M requests from 16 clients, spread over both workers
            ids = list(pool.map(one, range(240)))
            # then 16 slow ones in flight when SIGTERM arrives: every worker must finish what it accepted
            up.default = Behaviour(latency_s=1.5)
            slow = [pool.submit(_chat, httpx.Client(), url, 1000 + i) for i in range(16)]
            deadline = time.monotonic() + 10
            while len(up.chat_requests) < 240 + 16 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(up.chat_requests) == 256
            proc.send_signal(signal.SIGTERM)
            ids += [f.result(timeout=30) for f in slow]
        assert proc.wait(30) == 0, log.read_text()
    store = SQLiteDecisionStore(db)
    try:
        rows = store.query(DecisionQuery(limit=None))
    finally:
        store.close()
    assert len(ids) == len(set(ids)) == 256
    assert sorted(r["request_id"] for r in rows) == sorted(ids)  # each answered request recorded exactly once
    assert not any(spool_for_worker(_settings(db), i).exists() and spool_for_worker(_settings(db), i).stat().st_size
                   for i in range(2))


def _healthz_pid(sock: socket.socket) -> int:
    """Send `GET /healthz` on an open connection and read the answering worker's pid."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    size = int(re.search(rb"content-length: *(\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(body) < size:
        body += sock.recv(65536)
    return int(json.loads(body)["pid"])


@pytest.mark.skipif(not balanced_ports(), reason="the kernel balances sockets sharing a port on Linux only")
def test_connections_a_client_pool_opens_at_once_spread_over_the_workers(tmp_path: Path) -> None:
    db, port, log = tmp_path / "d.sqlite", closed_port(), tmp_path / "serve.log"
    with FakeUpstream() as up, _serving(_config(tmp_path, up.base_url, db), port, log) as proc:
        for _ in range(3):  # one shared socket gave all 32 to one worker, every time
            conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
            try:
                split = collections.Counter(_healthz_pid(c) for c in conns)
            finally:
                for c in conns:
                    c.close()
            assert len(split) == 2 and min(split.values()) >= 4, split  # binomial(32, 1/2): < 4 is ~1e-6
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    db, port, log = tmp_path / "d.sqlite", closed_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with FakeUpstream() as up, _serving(_config(tmp_path, up.base_url, db), port, log) as proc:
        victim = next(iter(_pids(url)))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        seen: set[int] = set()
        while len(seen - {victim}) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                seen |= _pids(url, tries=10)
            time.sleep(0.1)
        assert len(seen - {victim}) == 2, (seen, log.read_text())
        with httpx.Client() as c:
            _chat(c, url, 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert f"(pid {victim}) exited" in log.read_text()


def _settings(db: Path, **auth: object) -> GatewaySettings:
    raw: dict[str, object] = {
        "tiers": [{"name": "cheap", "deployments": [{"name": "c", "model": "c", "base_url": "http://x/v1"}]},
                  {"name": "strong", "deployments": [{"name": "s", "model": "s", "base_url": "http://x/v1"}]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(db)},
        "shadow": {"max_requests_per_hour": 100, "max_usd_per_hour": 3.0},
        **auth,
    }
    return GatewaySettings.model_validate(raw)


def test_without_redis_each_worker_enforces_its_share_of_per_key_caps(tmp_path: Path) -> None:
    keys = {"auth": {"keys": [{"id": "k", "sha256": "0" * 64, "rpm": 60, "budget_usd_per_day": 10.0}]}}
    base = _settings(tmp_path / "d.sqlite", **keys)
    w0, w1 = (per_worker_settings(base, i, 2) for i in range(2))
    assert (w0.auth.keys[0].rpm, w0.auth.keys[0].budget_usd_per_day) == (30, 5.0)
    assert (w0.shadow.max_requests_per_hour, w0.shadow.max_usd_per_hour) == (50, 1.5)
    assert w0.store.spool_path != w1.store.spool_path  # two processes never share one spool file
    shared = _settings(tmp_path / "d.sqlite", redis={"url": "redis://127.0.0.1:6379/0"}, **keys)
    assert per_worker_settings(shared, 1, 2).auth.keys[0].rpm == 60  # Redis enforces the key's cap fleet-wide
    assert per_worker_settings(base, 0, 1) is base


@pytest.mark.parametrize("bad", ["0", "x", "1000"])
def test_workers_must_be_a_sane_count(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", bad]) == 2
    assert "argument --workers" in capsys.readouterr().err


def test_sighup_reloads_the_router_of_every_worker(tmp_path: Path) -> None:
    from gateway.test_router_reload import _register, _registry_do

    db, port, log = tmp_path / "gw.sqlite", closed_port(), tmp_path / "serve.log"
    v1, v2 = _register(db)
    url = f"http://127.0.0.1:{port}"
    with FakeUpstream() as up:
        cfg = tmp_path / "gearshift.toml"
        cfg.write_text(two_tier_toml(up.base_url, up.base_url) + f'\n[router]\nversion = "champion"\n\n'
                                                                    f'[store]\npath = "{db}"\n')
        with _serving(cfg, port, log) as proc:

            def versions(tries: int = 80) -> dict[int, str]:
                seen: dict[int, str] = {}
                for _ in range(tries):
                    h = httpx.get(f"{url}/healthz", timeout=5).json()
                    seen[h["pid"]] = h["router_version"]
                    if len(seen) > 1:
                        break
                return seen

            before = versions()
            assert len(before) == 2 and set(before.values()) == {v1}, before
            _registry_do(db, "promote", v2)
            proc.send_signal(signal.SIGHUP)
            deadline, after = time.monotonic() + 30, before
            while time.monotonic() < deadline:
                after = {**after, **versions(10)}
                if set(after.values()) == {v2}:
                    break
                time.sleep(0.1)
            assert set(after) == set(before) and set(after.values()) == {v2}, (after, log.read_text())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
