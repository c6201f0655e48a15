"""SQLite decision store: one table, indexed filter columns plus the full record as JSON (store/schema.py).

WAL mode lets the CLI read while the gateway's writer thread appends. Each method opens no long
transaction; the connection is guarded by a lock so the writer thread and readers can share one store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gearshift.errors import ConfigError
from gearshift.store.base import DecisionQuery
from gearshift.store.schema import COLUMN_NAMES, TABLE, column_values, create_table, record_json, upgrade_sqlite

_INSERT = (f"INSERT OR REPLACE INTO {TABLE}({', '.join(COLUMN_NAMES)}) "
           f"VALUES ({','.join('?' * len(COLUMN_NAMES))})")


def open_sqlite(path: str, schema: str, what: str, *, timeout_s: float = 10.0) -> sqlite3.Connection:
    """One WAL-mode connection shared across threads (callers serialise with a lock), schema applied.

    Every SQLite-backed store of the gateway opens its file this way, so they can share one file.
    """
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:  # prompts and answers live here: owner-only, like the spool (SQLite gives -wal/-shm the same mode)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as exc:
            raise ConfigError(f"{what} {path}: cannot create ({exc.strerror})") from exc
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout_s)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(schema)
    except sqlite3.Error as exc:
        raise ConfigError(f"{what} {path}: {exc}") from exc
    return conn


class SQLiteDecisionStore:
    """`path` may be ":memory:" for tests; parent directories of a file path are created."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = open_sqlite(self.path, create_table("sqlite"), "decision store", timeout_s=5.0)
        try:
            upgrade_sqlite(self._conn)
        except sqlite3.Error as exc:
            self._conn.close()
            raise ConfigError(f"decision store {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> int:
        rows = [(*column_values(r), record_json(r)) for r in records]
        if not rows:
            return 0
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                cur = self._conn.executemany(_INSERT, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return cur.rowcount if cur.rowcount >= 0 else len(rows)

    @staticmethod
    def _where(q: DecisionQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if q.since is not None:
            clauses.append("time >= ?")
            params.append(q.since)
        if q.tier is not None:
            clauses.append("tier = ?")
            params.append(q.tier)
        if q.status is not None:
            clauses.append("status = ?")
            params.append(q.status)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(self, q: DecisionQuery) -> list[dict[str, Any]]:
        where, params = self._where(q)
        sql = f"SELECT record FROM decisions{where} ORDER BY time DESC"
        if q.limit is not None:
            sql += " LIMIT ?"
            params.append(int(q.limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [json.loads(r[0]) for r in rows]

    def count(self, q: DecisionQuery | None = None) -> int:
        where, params = self._where(q or DecisionQuery(limit=None))
        with self._lock:
            (n,) = self._conn.execute(f"SELECT COUNT(*) FROM decisions{where}", params).fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
