"""Process lifecycle: SIGTERM drains in-flight streams and flushes the log; a client hang-up cancels upstream."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from reliability.conftest import PROMPT, dep, records, request_counts, running, settings_for
from reliability.slow_upstream import SlowStreamUpstream
from support.fake_upstream import Behaviour, FakeUpstream, closed_port
from support.serve_process import start_serve, two_tier_toml, wait_healthy


def _config(tmp_path: Path, upstream_url: str, db: Path) -> Path:
    cfg = tmp_path / "gearshift.toml"
    cfg.write_text(two_tier_toml(upstream_url, upstream_url, names=("slow-cheap", "slow-strong"), model="slow") + f"""
[store]
path = "{db}"

[limits]
request_timeout_s = 30
drain_timeout_s = 10
""")
    return cfg


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False
    except OSError:
        return True


def test_sigterm_drains_a_streaming_request_and_loses_no_record(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    port = closed_port()
    with SlowStreamUpstream(n_chunks=12, interval_s=0.12) as up:
        proc = start_serve(_config(tmp_path, up.base_url, db), port)
        try:
            wait_healthy(proc, f"http://127.0.0.1:{port}", 20, lambda: proc.stderr.read().decode())  # type: ignore[union-attr]
            lines: list[str] = []
            first = threading.Event()

            def client() -> None:
                with httpx.Client(timeout=20) as c, c.stream(
                        "POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                        json={"model": "gearshift/auto", "messages": PROMPT, "stream": True}) as r:
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            lines.append(line[6:])
                            first.set()

            t = threading.Thread(target=client)
            t.start()
            assert first.wait(10)
            proc.send_signal(signal.SIGTERM)
            stop_accepting = time.monotonic() + 2
            while not _refused(port) and time.monotonic() < stop_accepting:
                time.sleep(0.05)
            assert _refused(port), "the gateway still accepts connections after SIGTERM"
            assert t.is_alive(), "the stream should still be running while new connections are refused"
            t.join(15)
            rc = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc in (0, -signal.SIGTERM)  # uvicorn re-raises the captured SIGTERM after its graceful shutdown
    assert lines[-1] == "[DONE]"
    text = "".join(json.loads(x)["choices"][0]["delta"].get("content") or "" for x in lines[:-1]
                   if json.loads(x).get("choices"))
    assert text == "".join(f"w{i} " for i in range(12))
    store = SQLiteDecisionStore(db)
    rows = store.query(DecisionQuery(limit=None))
    store.close()
    assert [(r["status"], r["stream"]) for r in rows] == [("ok", True)]
    assert rows[0]["tokens_out"] and rows[0]["tokens_out"] > 0


def test_client_disconnect_mid_stream_cancels_upstream_and_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with SlowStreamUpstream(n_chunks=50, interval_s=0.05) as up:
        settings = settings_for([dep("slow", up.base_url, 5.0)], up.base_url, db, deadline_s=10.0)
        with running(settings) as gw:
            with httpx.Client(base_url=gw.root, timeout=10) as c, c.stream(
                    "POST", "/v1/chat/completions",
                    json={"model": "gearshift/auto", "messages": PROMPT, "stream": True}) as r:
                got = 0
                for line in r.iter_lines():
                    got += line.startswith("data: ")
                    if got >= 3:
                        break  # the client hangs up mid-answer
            assert up.closed_early.wait(2.0), "the upstream connection stayed open after the client left"
            assert up.completed == 0
            time.sleep(0.2)
            counts = request_counts(gw)
            recs = records(gw, db)
    assert [r["status"] for r in recs] == ["client_disconnected"]
    assert recs[0]["attempts"][-1]["outcome"] == "cancelled"
    assert counts == {"client_disconnected": 1.0}
    assert os.path.exists(db)


def test_max_in_flight_sheds_load_with_a_fast_503(ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    _, healthy = ups
    healthy.default = Behaviour(latency_s=0.6)
    db = tmp_path / "d.sqlite"
    settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, db, deadline_s=5.0,
                            limits={"max_in_flight": 2})
    results: list[tuple[int, float, dict[str, Any]]] = []

    def one() -> None:
        with httpx.Client(timeout=10) as c:
            t0 = time.monotonic()
            r = c.post(gw.root + "/v1/chat/completions", json={"model": "gearshift/auto", "messages": PROMPT})
            results.append((r.status_code, time.monotonic() - t0, r.json()))

    with running(settings) as gw:
        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(10)
        metrics = httpx.get(gw.root + "/metrics", timeout=5).text
        recs = records(gw, db)
    ok = [r for r in results if r[0] == 200]
    shed = [r for r in results if r[0] == 503]
    assert len(ok) == 2 and len(shed) == 3
    assert all(elapsed < 0.3 and body["error"]["code"] == "overloaded" for _, elapsed, body in shed)
    assert 'gearshift_rejected_total{reason="max_in_flight"} 3.0' in metrics
    assert len(recs) == 2  # refused before any work: no decision was made, so none is recorded
