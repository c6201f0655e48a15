"""Decision-log faults: a locked or full database spools records to disk, replays them, never loses one.

Every test counts the responses the gateway sent and checks the store ends up with exactly one record
per answered request; when the spool is full too, the gateway refuses new work with an OpenAI-shaped 503
(counted in /metrics) instead of answering requests it could not record.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from gearshift.store.base import DecisionQuery
from gearshift.store.spool import JsonlSpool
from gearshift.store.sqlite import SQLiteDecisionStore
from gearshift.store.writer import BackgroundWriter
from reliability.conftest import PROMPT, assert_openai_error, dep, running, settings_for
from support.fake_upstream import FakeUpstream


class DiskFullStore:
    """A real SQLite store that fails like a full disk while `full` is set."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteDecisionStore(path)
        self.full = False

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> int:
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return self.inner.append_many(records)

    def query(self, q: DecisionQuery) -> list[dict[str, Any]]:
        return self.inner.query(q)

    def count(self, q: DecisionQuery | None = None) -> int:
        return self.inner.count(q)

    def close(self) -> None:
        self.inner.close()


def _wait(cond: Any, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def _post(c: httpx.Client, i: int) -> httpx.Response:
    payload = {"model": "gearshift/auto", "messages": PROMPT, "stream": i % 2 == 1}
    r = c.post("/v1/chat/completions", json=payload)
    r.read()
    return r


def test_locked_database_spools_and_replays_every_record(ups: tuple[FakeUpstream, FakeUpstream],
                                                          tmp_path: Path) -> None:
    _, healthy = ups
    db = tmp_path / "d.sqlite"
    store = SQLiteDecisionStore(db)
    store._conn.execute("PRAGMA busy_timeout=50")  # fail fast on the lock instead of waiting 5 s
    settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, db,
                            store={"spool_path": str(tmp_path / "spool.jsonl")})
    locker = sqlite3.connect(db, isolation_level=None)
    with running(settings, store=store) as gw:
        writer = gw.gateway.writer
        assert writer is not None
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with gw.client() as c:
            statuses = [_post(c, i).status_code for i in range(12)]
        assert statuses == [200] * 12
        assert _wait(lambda: writer.spooled == 12), writer.spooled
        assert (tmp_path / "spool.jsonl").stat().st_size > 0
        assert not writer.flush(0.3)  # nothing reached the store yet
        locker.execute("COMMIT")
        assert writer.flush(5)
        assert writer.spooled == 0 and (tmp_path / "spool.jsonl").stat().st_size == 0
    locker.close()
    check = SQLiteDecisionStore(db)
    assert check.count() == len(statuses)
    check.close()


def test_full_disk_then_full_spool_is_503_never_silent_loss(ups: tuple[FakeUpstream, FakeUpstream],
                                                             tmp_path: Path) -> None:
    _, healthy = ups
    db = tmp_path / "d.sqlite"
    store = DiskFullStore(db)
    settings = settings_for([dep("cheap", healthy.base_url, 5.0)], healthy.base_url, db,
                            store={"spool_path": str(tmp_path / "spool.jsonl"), "spool_max_bytes": 6000})
    store.full = True
    answered = refused = 0
    with running(settings, store=store) as gw:
        writer = gw.gateway.writer
        assert writer is not None
        with gw.client() as c:
            for i in range(40):
                r = _post(c, i)
                if r.status_code == 503:
                    refused += 1
                    err = assert_openai_error(r.json())
                    assert err["code"] == "overloaded" and r.headers["retry-after"] == "1"
                else:
                    assert r.status_code == 200, r.text
                    answered += 1
                    _wait(lambda n=answered: writer.spooled + writer.held >= n, 2.0)
            metrics = c.get("/metrics").text
        assert refused > 0 and answered > 0
        assert f'gearshift_rejected_total{{reason="log_unavailable"}} {float(refused)}' in metrics
        assert writer.spooled + writer.held == answered  # all on disk or held: none dropped
        store.full = False  # disk space freed
        assert writer.flush(5)
        with gw.client() as c:
            assert _post(c, 0).status_code == 200  # back-pressure lifted once the log recovered
            answered += 1
        assert writer.flush(5)
    check = SQLiteDecisionStore(db)  # the gateway closed its own store at shutdown
    assert check.count() == answered
    check.close()


def test_a_restart_replays_what_the_previous_run_spooled(tmp_path: Path) -> None:
    spool = JsonlSpool(tmp_path / "spool.jsonl")
    rows = [{"request_id": f"r{i}", "time": float(i), "status": "ok"} for i in range(5)]
    assert spool.append(rows)
    with (tmp_path / "spool.jsonl").open("ab") as f:
        f.write(b'{"request_id": "torn", "ti')  # the crash happened mid-write
    store = SQLiteDecisionStore(tmp_path / "d.sqlite")
    writer = BackgroundWriter(store, spool=JsonlSpool(tmp_path / "spool.jsonl"), flush_interval_s=0.05).start()
    try:
        assert _wait(lambda: store.count() == 5)
    finally:
        writer.close()
    assert sorted(r["request_id"] for r in store.query(DecisionQuery(limit=None))) == [f"r{i}" for i in range(5)]
    store.close()


def test_spool_refuses_past_its_size_limit_all_or_nothing(tmp_path: Path) -> None:
    spool = JsonlSpool(tmp_path / "s.jsonl", max_bytes=200)
    assert spool.append([{"request_id": "a", "time": 1.0}])
    assert not spool.append([{"request_id": str(i), "time": 1.0, "pad": "x" * 50} for i in range(3)])
    assert spool.pending == 1 and spool.full and len(spool.read()) == 1


def test_a_record_too_big_for_the_spool_is_held_then_written_and_pressure_lifts(tmp_path: Path) -> None:
    store = DiskFullStore(tmp_path / "d.sqlite")
    store.full = True
    writer = BackgroundWriter(store, spool=JsonlSpool(tmp_path / "s.jsonl", max_bytes=50), flush_interval_s=0.05,
                              retry_interval_s=0.05).start()
    try:
        writer.submit({"request_id": "big", "time": 1.0, "reason": "x" * 100})
        assert _wait(lambda: writer.saturated)
        assert writer.held == 1 and writer.spooled == 0
        store.full = False
        assert writer.flush(5)
        assert _wait(lambda: not writer.saturated)
    finally:
        writer.close()
    assert store.count() == 1
    store.close()
