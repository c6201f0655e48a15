"""Security (issue 19, item 8): the decision store, its WAL and Parquet exports are readable by their owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gearshift.store.export import export_parquet
from gearshift.store.labels import SQLiteLabelStore
from gearshift.store.sqlite import SQLiteDecisionStore


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_store_wal_and_export_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: files 0644 unless created otherwise
    try:
        db = tmp_path / "d.sqlite"
        store = SQLiteDecisionStore(db)
        store.append_many([{"request_id": "r1", "time": 1_700_000_000.0, "tier": "cheap", "status": "ok",
                            "prompt": "private prompt"}])
        labels = SQLiteLabelStore(db)
        files = sorted(p for p in tmp_path.iterdir() if p.name.startswith("d.sqlite"))
        assert {p.name for p in files} >= {"d.sqlite", "d.sqlite-wal"}
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        out = tmp_path / "export"
        export_parquet(f"sqlite:///{db}", out, 0.0)
        labels.close()
        store.close()
    finally:
        os.umask(old)
    written = [out, *out.rglob("*")]
    assert len(written) > 2
    assert all(_mode(p) == (0o700 if p.is_dir() else 0o600) for p in written)
