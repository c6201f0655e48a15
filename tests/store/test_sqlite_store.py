"""SQLite decision store and the non-blocking background writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from gearshift.store.writer import BackgroundWriter


def _rec(i: int, tier: str = "cheap", status: str = "ok", t: float | None = None) -> dict[str, Any]:
    return {"request_id": f"r{i}", "time": t if t is not None else 1000.0 + i, "tier": tier, "status": status,
            "segment": {"language": "en"}}


def test_query_filters_newest_first_and_counts(tmp_path: Path) -> None:
    store = SQLiteDecisionStore(tmp_path / "sub" / "d.sqlite")
    store.append_many([_rec(0), _rec(1, "strong"), _rec(2, "strong", "error"), _rec(3)])
    assert [r["request_id"] for r in store.query(DecisionQuery(tier="strong"))] == ["r2", "r1"]
    assert [r["request_id"] for r in store.query(DecisionQuery(since=1002.0))] == ["r3", "r2"]
    assert store.query(DecisionQuery(status="error"))[0]["segment"] == {"language": "en"}
    assert len(store.query(DecisionQuery(limit=1))) == 1
    assert store.count() == 4 and store.count(DecisionQuery(tier="cheap", status="ok")) == 2
    mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()
    reopened = SQLiteDecisionStore(tmp_path / "sub" / "d.sqlite")
    assert reopened.count() == 4
    reopened.close()


def test_writer_batches_in_the_background_and_flushes(tmp_path: Path) -> None:
    store = SQLiteDecisionStore(tmp_path / "d.sqlite")
    writer = BackgroundWriter(store, batch_size=50).start()
    for i in range(500):
        assert writer.submit(_rec(i))
    assert writer.flush(5)
    assert store.count() == 500 and writer.written == 500 and writer.dropped == 0
    writer.close()
    store.close()


class _SlowStore:
    """A store whose first write blocks until released: the queue behind it fills up."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.rows: list[Mapping[str, Any]] = []

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> int:
        self.release.wait(5)
        self.rows.extend(records)
        return len(records)

    def query(self, q: DecisionQuery) -> list[dict[str, Any]]:
        return []

    def count(self, q: DecisionQuery | None = None) -> int:
        return len(self.rows)

    def close(self) -> None:
        pass


def test_full_queue_drops_and_counts_without_blocking() -> None:
    store = _SlowStore()
    spooled: list[Mapping[str, Any]] = []
    writer = BackgroundWriter(store, max_queue=5, batch_size=1).start()
    writer.submit(_rec(0))
    time.sleep(0.05)  # the writer thread is now stuck in the first write
    start = time.perf_counter()
    results = [writer.submit(_rec(i)) for i in range(1, 21)]
    assert time.perf_counter() - start < 0.05  # put_nowait: the request path never waits on storage
    assert results.count(True) == 5 and writer.dropped == 15
    writer.on_overflow = lambda r: spooled.append(r) is None  # the spool hook takes overflow instead of dropping
    assert writer.submit(_rec(99)) and len(spooled) == 1 and writer.dropped == 15
    store.release.set()
    assert writer.flush(5)
    writer.close()
    assert len(store.rows) == 6


def test_close_drains_what_is_queued(tmp_path: Path) -> None:
    store = SQLiteDecisionStore(tmp_path / "d.sqlite")
    writer = BackgroundWriter(store, flush_interval_s=10).start()
    for i in range(20):
        writer.submit(_rec(i))
    writer.close()
    assert store.count() == 20
    store.close()
