"""Every request, one record, always: a client that leaves before its (non-streamed) answer, the
whole-request deadline and its per-request header, time limits per phase of each deployment, and SIGTERM
mid-request on a real `gearshift serve` process (records counted against requests)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from reliability.conftest import PROMPT, assert_openai_error, chat, dep, records, running, settings_for
from reliability.slow_upstream import SlowStreamUpstream
from support.fake_upstream import Behaviour, FakeUpstream, closed_port
from support.serve_process import start_serve, two_tier_toml, wait_healthy


def test_client_leaving_before_a_json_answer_cancels_the_upstream_call_and_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with SlowStreamUpstream(n_chunks=100, interval_s=0.05) as up:  # a 5 s answer, read slowly
        settings = settings_for([dep("slow", up.base_url, 10.0)], up.base_url, db, deadline_s=10.0)
        with running(settings) as gw:
            with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as c:
                c.post(gw.root + "/v1/chat/completions", json={"model": "slow", "messages": PROMPT})
            left = time.monotonic()
            assert up.closed_early.wait(3.0), "the upstream call went on after the client left"
            assert time.monotonic() - left < 2.5  # the answer would take 5 s
            time.sleep(0.2)
            recs = records(gw, db)
    assert up.completed == 0
    assert [(r["status"], r["http_status"]) for r in recs] == [("client_disconnected", 499)]
    assert [a["outcome"] for a in recs[0]["attempts"]] == ["cancelled"]
    assert recs[0]["latency_ms"] < 3000


def test_timeout_header_sets_the_deadline_within_the_configured_bound(
        ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    slow, _ = ups
    slow.default = Behaviour(latency_s=3.0)
    db = tmp_path / "d.sqlite"
    settings = settings_for([dep("slow", slow.base_url, 10.0)], slow.base_url, db, deadline_s=10.0,
                            limits={"max_request_timeout_s": 20.0})
    with running(settings) as gw:
        out = chat(gw, "slow", headers={"x-gearshift-timeout": "0.5"})
        too_long = chat(gw, "slow", headers={"x-gearshift-timeout": "25"})
        garbage = chat(gw, "slow", headers={"x-gearshift-timeout": "soon"})
        recs = records(gw, db)
    assert out.status == 504 and out.elapsed_s < 2.0  # not the upstream's 3 s
    assert assert_openai_error(out.body)["code"] == "upstream_timeout"
    for bad in (too_long, garbage):
        assert bad.status == 400 and assert_openai_error(bad.body)["param"] == "x-gearshift-timeout"
    assert sorted((r["status"], r["http_status"]) for r in recs) == [("error", 400), ("error", 400), ("error", 504)]
    assert len(slow.chat_requests) == 1  # a refused header costs no upstream call


def test_retries_never_outlive_the_deadline(ups: tuple[FakeUpstream, FakeUpstream], tmp_path: Path) -> None:
    down, _ = ups
    down.default = Behaviour.status_code(503, retry_after="0.4")
    db = tmp_path / "d.sqlite"
    settings = settings_for([dep("down", down.base_url, 10.0)], down.base_url, db, deadline_s=1.0,
                            reliability={"max_retries": 10, "base_delay_s": 0.3})
    with running(settings) as gw:
        out = chat(gw, "down")
        recs = records(gw, db)
    assert out.status == 502 and out.elapsed_s < 2.0  # ten retries would take 4 s
    assert 1 < len(recs[0]["attempts"]) <= 3  # retried while the next try still fitted, then stopped


@pytest.mark.parametrize("stream", [False, True])
def test_first_byte_limit_per_deployment_fails_over_fast(stream: bool, ups: tuple[FakeUpstream, FakeUpstream],
                                                          tmp_path: Path) -> None:
    thinking, healthy = ups
    thinking.default = Behaviour(latency_s=3.0)  # headers only after 3 s
    db = tmp_path / "d.sqlite"
    cheap = [dep("thinking", thinking.base_url, 10.0, first_byte_timeout_s=0.3), dep("healthy", healthy.base_url, 5.0)]
    with running(settings_for(cheap, healthy.base_url, db, deadline_s=10.0)) as gw:
        out = chat(gw, "gearshift/auto", stream=stream)
        recs = records(gw, db)
    assert out.status == 200 and out.elapsed_s < 2.5  # not the 3 s wait for headers
    assert [(a["deployment"], a["outcome"]) for a in recs[0]["attempts"]] == [("thinking", "error"), ("healthy", "ok")]
    assert "first_byte_timeout_s" in recs[0]["attempts"][0]["error_message"]


def test_idle_limit_per_deployment_ends_a_stalled_stream(ups: tuple[FakeUpstream, FakeUpstream],
                                                         tmp_path: Path) -> None:
    stalling, _ = ups
    stalling.default = Behaviour.stall_stream(after_chunks=3)  # two words, then silence
    db = tmp_path / "d.sqlite"
    with running(settings_for([dep("stalling", stalling.base_url, 10.0, idle_timeout_s=0.3)], stalling.base_url,
                              db, deadline_s=10.0)) as gw:
        out = chat(gw, "stalling", stream=True)
        recs = records(gw, db)
    assert out.status == 200 and out.elapsed_s < 3.0  # not the 10 s attempt limit
    assert assert_openai_error(out.events[-1])
    assert recs[0]["status"] == "truncated" and "idle_timeout_s" in recs[0]["error_message"]


def test_sigterm_mid_request_writes_one_record_per_request(tmp_path: Path) -> None:
    """Requests still running when the drain grace ends are cancelled and recorded `cancelled_shutdown`; the
    process exits with every record flushed: records = requests."""
    db = tmp_path / "d.sqlite"
    port = closed_port()
    with FakeUpstream(answer="quick answer") as slow_json, SlowStreamUpstream(n_chunks=300, interval_s=0.1) as slow_sse:
        cfg = tmp_path / "gearshift.toml"
        cfg.write_text(two_tier_toml(slow_json.base_url, slow_sse.base_url) + f"""
[store]
path = "{db}"

[limits]
request_timeout_s = 30
drain_timeout_s = 1
""")
        proc = start_serve(cfg, port)
        outcomes: list[Any] = []
        try:
            root = f"http://127.0.0.1:{port}"
            wait_healthy(proc, root, 30, lambda: proc.stderr.read().decode())  # type: ignore[union-attr]
            quick = httpx.post(root + "/v1/chat/completions", json={"model": "c", "messages": PROMPT}, timeout=10)
            assert quick.status_code == 200
            slow_json.default = Behaviour(latency_s=20.0)
            started = threading.Semaphore(0)

            def one(model: str, stream: bool) -> None:
                try:
                    with httpx.Client(timeout=30) as c, c.stream(
                            "POST", root + "/v1/chat/completions",
                            json={"model": model, "messages": PROMPT, "stream": stream}) as r:
                        started.release() if stream else None
                        outcomes.append((model, r.status_code, r.read()))
                except httpx.HTTPError as exc:
                    outcomes.append((model, "error", type(exc).__name__))

            threads = [threading.Thread(target=one, args=("c", False)) for _ in range(3)]
            threads += [threading.Thread(target=one, args=("s", True)) for _ in range(2)]
            for t in threads:
                t.start()
            for _ in range(2):
                assert started.acquire(timeout=10)  # both streams are sending words
            deadline = time.monotonic() + 10
            while len(slow_json.chat_requests) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)  # the three JSON requests are waiting on their upstream
            assert len(slow_json.chat_requests) == 4
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            rc = proc.wait(15)
            exit_s = time.monotonic() - t0
            for t in threads:
                t.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc in (0, -signal.SIGTERM)
    assert exit_s < 8, exit_s  # the 1 s grace, then cancel, record, flush: not the 20 s upstream
    assert len(outcomes) == 5
    store = SQLiteDecisionStore(db)
    rows = store.query(DecisionQuery(limit=None))
    store.close()
    assert len(rows) == 6  # one per request: the quick one and the five cut short
    assert sorted((r["status"], r["stream"]) for r in rows) == [
        ("cancelled_shutdown", False)] * 3 + [("cancelled_shutdown", True)] * 2 + [("ok", False)]
    cut = [r for r in rows if r["status"] == "cancelled_shutdown"]
    assert all(r["attempts"] and r["attempts"][-1]["outcome"] == "cancelled" for r in cut)


def test_the_deadline_bounds_work_before_the_upstream_too(ups: tuple[FakeUpstream, FakeUpstream],
                                                           tmp_path: Path) -> None:
    """A routing step that hangs (here the policy, as an LLM router or a stuck shared store would) ends at the
    deadline with a 504 and a record, and no upstream call."""
    up, _ = ups
    db = tmp_path / "d.sqlite"
    with running(settings_for([dep("cheap", up.base_url, 5.0)], up.base_url, db, deadline_s=10.0)) as gw:
        policy = gw.gateway.policy
        decide = policy.decide

        async def hanging(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(5.0)
            return await decide(*args, **kwargs)

        policy.decide = hanging  # type: ignore[method-assign]
        try:
            out = chat(gw, "gearshift/auto", headers={"x-gearshift-timeout": "0.5"})
        finally:
            policy.decide = decide  # type: ignore[method-assign]
        recs = records(gw, db)
    assert out.status == 504 and out.elapsed_s < 2.5
    assert assert_openai_error(out.body)["code"] == "request_deadline_exceeded"
    assert [(r["status"], r["http_status"], r["error_type"]) for r in recs] == [
        ("error", 504, "request_deadline_exceeded")]
    assert up.chat_requests == []
