"""Closed-loop tables beside the decisions: shadow labels, the triage queue, downstream signal events.

They live in the same SQLite file as `decisions` (WAL lets the gateway, its writer thread and the CLI
share it) and join it on `request_id`, so `DecisionStore` stays append-only and unaware of them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gearshift.data.segments import yes_no
from gearshift.errors import ConfigError
from gearshift.store.sqlite import open_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadow_labels (
    request_id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    tier TEXT,
    label TEXT,
    gap REAL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shadow_labels_time ON shadow_labels(time);
CREATE TABLE IF NOT EXISTS triage_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    time REAL NOT NULL,
    gap REAL,
    label TEXT,
    labelled_at REAL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_open ON triage_items(label, time);
CREATE TABLE IF NOT EXISTS feedback_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    time REAL NOT NULL,
    decision_time REAL,
    signal TEXT NOT NULL,
    value REAL,
    comment TEXT,
    source TEXT NOT NULL,
    tier TEXT,
    segment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback_events(request_id);
CREATE INDEX IF NOT EXISTS feedback_decision_time ON feedback_events(decision_time);
"""

TRIAGE_LABELS = ("strong_needed", "cheap_ok", "skip")
TRIAGE_COLS = "id, request_id, time, gap, label, labelled_at, item"
SIGNAL_COLS = ("id", "request_id", "time", "decision_time", "signal", "value", "comment", "source", "tier", "segment")


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """One downstream signal attributed to the decision `request_id` that produced the answer."""

    request_id: str
    time: float
    signal: str
    source: str  # "explicit" (POST /v1/feedback) or "implicit" (inferred by the gateway)
    value: float | None = None
    comment: str | None = None
    tier: str | None = None
    segment: Mapping[str, Any] | None = None
    decision_time: float | None = None


# -- row shaping shared by the SQLite and PostgreSQL stores (only the SQL differs between them) --------
def triage_where(status: str) -> str:
    """The WHERE clause for a triage `status`: "open" (unlabelled), "labelled" or "all"."""
    where = {"open": " WHERE label IS NULL", "labelled": " WHERE label IS NOT NULL", "all": ""}.get(status)
    if where is None:
        raise ConfigError(f"triage status must be open, labelled or all, got {status!r}")
    return where


def check_triage_label(label: str) -> None:
    if label not in TRIAGE_LABELS:
        raise ConfigError(f"triage label must be one of {', '.join(TRIAGE_LABELS)}, got {label!r}")


def triage_record(row: Sequence[Any]) -> dict[str, Any]:
    """A `TRIAGE_COLS` row as a dict; `item` is JSON text (SQLite) or already decoded (PostgreSQL jsonb)."""
    item_id, request_id, time, gap, label, labelled_at, item = row
    return {"id": int(item_id), "request_id": request_id, "time": time, "gap": gap, "label": label,
            "labelled_at": labelled_at, **(dict(item) if isinstance(item, Mapping) else json.loads(item))}


def signal_rows(events: Sequence[SignalEvent]) -> list[tuple[Any, ...]]:
    """Insert parameters for feedback_events; the segment is stored as JSON text so groups compare byte-exact."""
    return [(e.request_id, e.time, e.decision_time if e.decision_time is not None else e.time, e.signal, e.value,
             e.comment, e.source, e.tier, json.dumps(dict(e.segment)) if e.segment is not None else None)
            for e in events]


def signal_record(row: Sequence[Any]) -> dict[str, Any]:
    rec = dict(zip(SIGNAL_COLS, row, strict=True))
    rec["segment"] = json.loads(rec["segment"]) if rec["segment"] else None
    return rec


def signal_groups_of(rows: Sequence[Sequence[Any]]) -> list[tuple[str, str | None, str | None, int]]:
    return [(str(s), t, g, int(n)) for s, t, g, n in rows]


def decision_groups_of(rows: Sequence[Sequence[Any]]) -> list[tuple[str | None, str, int]]:
    """(tier, language, length bucket, has_code, n) rows with the segment encoded as `signal_rows` encodes it."""
    return [(tier, json.dumps({"language": lang, "length_bucket": length, "has_code": yes_no(bool(code))}), int(n))
            for tier, lang, length, code, n in rows]


@runtime_checkable
class LabelStore(Protocol):
    def put_label(self, label: Mapping[str, Any]) -> None: ...

    def get_label(self, request_id: str) -> dict[str, Any] | None: ...

    def add_triage(self, request_id: str, time: float, gap: float, item: Mapping[str, Any]) -> int: ...

    def triage_items(self, *, status: str = "open", limit: int | None = 100) -> list[dict[str, Any]]: ...

    def set_triage_label(self, item_id: int, label: str, now: float) -> dict[str, Any] | None: ...

    def add_signals(self, events: Sequence[SignalEvent]) -> int: ...

    def decision(self, request_id: str) -> dict[str, Any] | None: ...

    # readers (dashboard, learning, `gearshift triage`/`signals`); both implementations have them
    def labels(self, since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]: ...

    def triage_item(self, item_id: int) -> dict[str, Any] | None: ...

    def triage_counts(self) -> dict[str, int]: ...

    def signals(self, request_id: str | None = None, since: float | None = None) -> list[dict[str, Any]]: ...

    def signal_groups(self, since: float, until: float) -> list[tuple[str, str | None, str | None, int]]: ...

    def decision_groups(self, since: float, until: float) -> list[tuple[str | None, str, int]]: ...

    def close(self) -> None: ...


class SQLiteLabelStore:
    """Thread-safe (one connection behind a lock); `path` may be ":memory:" for tests."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = open_sqlite(self.path, _SCHEMA, "label store")
        self._lock = threading.Lock()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            cur = self._conn.execute(sql, params)
            return int(cur.lastrowid or 0)

    # -- shadow labels ------------------------------------------------------------------------------
    def put_label(self, label: Mapping[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO shadow_labels(request_id, time, tier, label, gap, record) "
                   "VALUES (?,?,?,?,?,?)",
                   (str(label["request_id"]), float(label["time"]), label.get("tier"), label.get("label"),
                    label.get("gap"), json.dumps(label, default=str)))

    def get_label(self, request_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT record FROM shadow_labels WHERE request_id = ?", (request_id,))
        return json.loads(rows[0][0]) if rows else None

    def labels(self, since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT record FROM shadow_labels WHERE time >= ? ORDER BY time DESC"
        params: list[Any] = [since or 0.0]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [json.loads(r[0]) for r in self._rows(sql, params)]

    # -- triage -------------------------------------------------------------------------------------
    def add_triage(self, request_id: str, time: float, gap: float, item: Mapping[str, Any]) -> int:
        return self._exec("INSERT OR IGNORE INTO triage_items(request_id, time, gap, item) VALUES (?,?,?,?)",
                          (request_id, time, gap, json.dumps(item, default=str)))

    def triage_items(self, *, status: str = "open", limit: int | None = 100) -> list[dict[str, Any]]:
        """`status`: "open" (unlabelled), "labelled" or "all"; oldest first so the queue drains in order."""
        sql = f"SELECT {TRIAGE_COLS} FROM triage_items{triage_where(status)} ORDER BY id"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [triage_record(r) for r in self._rows(sql, params)]

    def triage_item(self, item_id: int) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {TRIAGE_COLS} FROM triage_items WHERE id = ?", (item_id,))
        return triage_record(rows[0]) if rows else None

    def set_triage_label(self, item_id: int, label: str, now: float) -> dict[str, Any] | None:
        """The labelled item, or None when no item has that id. `label` must be one of TRIAGE_LABELS."""
        check_triage_label(label)
        self._exec("UPDATE triage_items SET label = ?, labelled_at = ? WHERE id = ?", (label, now, item_id))
        return self.triage_item(item_id)

    def triage_counts(self) -> dict[str, int]:
        rows = self._rows("SELECT COALESCE(label, 'open'), COUNT(*) FROM triage_items GROUP BY 1")
        return {str(k): int(n) for k, n in rows}

    # -- signals ------------------------------------------------------------------------------------
    def add_signals(self, events: Sequence[SignalEvent]) -> int:
        rows = signal_rows(events)
        if not rows:
            return 0
        with self._lock:
            self._conn.executemany(
                "INSERT INTO feedback_events(request_id, time, decision_time, signal, value, comment, source, "
                "tier, segment) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    def signals(self, request_id: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(SIGNAL_COLS)} FROM feedback_events WHERE time >= ?"
        params: list[Any] = [since or 0.0]
        if request_id is not None:
            sql += " AND request_id = ?"
            params.append(request_id)
        return [signal_record(row) for row in self._rows(sql + " ORDER BY id", params)]

    def signal_groups(self, since: float, until: float) -> list[tuple[str, str | None, str | None, int]]:
        """(signal, tier, segment JSON, distinct decisions) for decisions made in [since, until)."""
        return signal_groups_of(self._rows("SELECT signal, tier, segment, COUNT(DISTINCT request_id) FROM "
                                           "feedback_events WHERE decision_time >= ? AND decision_time < ? "
                                           "GROUP BY 1, 2, 3", (since, until)))

    # -- decisions (read-only view of the gateway's table, when it is in this file) ------------------
    def _has_decisions(self) -> bool:
        return bool(self._rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decisions'"))

    def decision(self, request_id: str) -> dict[str, Any] | None:
        if not self._has_decisions():
            return None
        rows = self._rows("SELECT record FROM decisions WHERE request_id = ?", (request_id,))
        return json.loads(rows[0][0]) if rows else None

    def decision_groups(self, since: float, until: float) -> list[tuple[str | None, str, int]]:
        """(tier, segment JSON as signals store it, decisions) for decisions made in [since, until)."""
        if not self._has_decisions():
            return []
        rows = self._rows(
            "SELECT tier, json_extract(record, '$.segment.language'), json_extract(record, '$.segment.length_bucket'),"
            " json_extract(record, '$.segment.has_code'), COUNT(*) FROM decisions "
            "WHERE time >= ? AND time < ? AND tier IS NOT NULL GROUP BY 1, 2, 3, 4", (since, until))
        return decision_groups_of(rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
