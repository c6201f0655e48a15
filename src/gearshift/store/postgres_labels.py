"""The closed-loop tables (shadow labels, triage queue, feedback events) on PostgreSQL.

Same methods and semantics as `store.labels.SQLiteLabelStore`, so shadow labelling, triage and signal
rates work unchanged when several gateways share one database. Tables come from migration 0002.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError
from gearshift.store.labels import TRIAGE_LABELS, SignalEvent
from gearshift.store.postgres import migrate, open_pool, to_json

if TYPE_CHECKING:
    import psycopg

_TRIAGE_COLS = "id, request_id, time, gap, label, labelled_at, item"
_SIGNAL_COLS = ("id", "request_id", "time", "decision_time", "signal", "value", "comment", "source", "tier", "segment")


class PostgresLabelStore:
    """The `LabelStore` protocol on PostgreSQL; thread-safe through a connection pool."""

    def __init__(self, url: str, *, pool_size: int = 2, run_migrations: bool = True) -> None:
        self.url = url
        if run_migrations:
            migrate(url)
        self._pool = open_pool(url, max_size=pool_size)

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn:
            yield conn

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    # -- shadow labels ------------------------------------------------------------------------------
    def put_label(self, label: Mapping[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO shadow_labels (request_id, time, tier, label, gap, record) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (request_id) DO UPDATE SET time = EXCLUDED.time, "
                "tier = EXCLUDED.tier, label = EXCLUDED.label, gap = EXCLUDED.gap, record = EXCLUDED.record",
                (str(label["request_id"]), float(label["time"]), label.get("tier"), label.get("label"),
                 label.get("gap"), to_json(label)))

    def get_label(self, request_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT record FROM shadow_labels WHERE request_id = %s", (request_id,))
        return dict(rows[0][0]) if rows else None

    def labels(self, since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT record FROM shadow_labels WHERE time >= %s ORDER BY time DESC"
        params: list[Any] = [since or 0.0]
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        return [dict(r[0]) for r in self._rows(sql, params)]

    # -- triage -------------------------------------------------------------------------------------
    def add_triage(self, request_id: str, time: float, gap: float, item: Mapping[str, Any]) -> int:
        """The new item's id, or 0 when the request is already queued (as SQLite's INSERT OR IGNORE)."""
        rows = self._rows("INSERT INTO triage_items (request_id, time, gap, item) VALUES (%s, %s, %s, %s::jsonb) "
                          "ON CONFLICT (request_id) DO NOTHING RETURNING id", (request_id, time, gap, to_json(item)))
        return int(rows[0][0]) if rows else 0

    @staticmethod
    def _triage_row(row: tuple[Any, ...]) -> dict[str, Any]:
        item_id, request_id, time, gap, label, labelled_at, item = row
        return {"id": int(item_id), "request_id": request_id, "time": time, "gap": gap, "label": label,
                "labelled_at": labelled_at, **dict(item)}

    def triage_items(self, *, status: str = "open", limit: int | None = 100) -> list[dict[str, Any]]:
        where = {"open": " WHERE label IS NULL", "labelled": " WHERE label IS NOT NULL", "all": ""}.get(status)
        if where is None:
            raise ConfigError(f"triage status must be open, labelled or all, got {status!r}")
        sql = f"SELECT {_TRIAGE_COLS} FROM triage_items{where} ORDER BY id"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        return [self._triage_row(r) for r in self._rows(sql, params)]

    def triage_item(self, item_id: int) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {_TRIAGE_COLS} FROM triage_items WHERE id = %s", (item_id,))
        return self._triage_row(rows[0]) if rows else None

    def set_triage_label(self, item_id: int, label: str, now: float) -> dict[str, Any] | None:
        if label not in TRIAGE_LABELS:
            raise ConfigError(f"triage label must be one of {', '.join(TRIAGE_LABELS)}, got {label!r}")
        with self._conn() as conn:
            conn.execute("UPDATE triage_items SET label = %s, labelled_at = %s WHERE id = %s", (label, now, item_id))
        return self.triage_item(item_id)

    def triage_counts(self) -> dict[str, int]:
        rows = self._rows("SELECT COALESCE(label, 'open'), COUNT(*) FROM triage_items GROUP BY 1")
        return {str(k): int(n) for k, n in rows}

    # -- signals ------------------------------------------------------------------------------------
    def add_signals(self, events: Sequence[SignalEvent]) -> int:
        rows = [(e.request_id, e.time, e.decision_time if e.decision_time is not None else e.time, e.signal, e.value,
                 e.comment, e.source, e.tier, json.dumps(dict(e.segment)) if e.segment is not None else None)
                for e in events]
        if not rows:
            return 0
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO feedback_events (request_id, time, decision_time, signal, value, comment, "
                            "source, tier, segment) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        return len(rows)

    def signals(self, request_id: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_SIGNAL_COLS)} FROM feedback_events WHERE time >= %s"
        params: list[Any] = [since or 0.0]
        if request_id is not None:
            sql += " AND request_id = %s"
            params.append(request_id)
        out = []
        for row in self._rows(sql + " ORDER BY id", params):
            rec = dict(zip(_SIGNAL_COLS, row, strict=True))
            rec["segment"] = json.loads(rec["segment"]) if rec["segment"] else None
            out.append(rec)
        return out

    def signal_groups(self, since: float, until: float) -> list[tuple[str, str | None, str | None, int]]:
        """(signal, tier, segment JSON, distinct decisions) for decisions made in [since, until)."""
        rows = self._rows("SELECT signal, tier, segment, COUNT(DISTINCT request_id) FROM feedback_events "
                          "WHERE decision_time >= %s AND decision_time < %s GROUP BY 1, 2, 3", (since, until))
        return [(str(s), t, g, int(n)) for s, t, g, n in rows]

    # -- decisions (read-only view of the gateway's table in the same schema) -----------------------
    def decision(self, request_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT record FROM decisions WHERE request_id = %s", (request_id,))
        return dict(rows[0][0]) if rows else None

    def decision_groups(self, since: float, until: float) -> list[tuple[str | None, str, int]]:
        """(tier, segment JSON as signals store it, decisions) for decisions made in [since, until)."""
        rows = self._rows(
            "SELECT tier, record->'segment'->>'language', record->'segment'->>'length_bucket', "
            "COALESCE((record->'segment'->>'has_code')::boolean, false), COUNT(*) FROM decisions "
            "WHERE time >= %s AND time < %s AND tier IS NOT NULL GROUP BY 1, 2, 3, 4", (since, until))
        out = []
        for tier, lang, length, code, n in rows:
            seg = {"language": lang, "length": length, "has_code": "yes" if code else "no"}
            out.append((tier, json.dumps(seg), int(n)))
        return out

    def close(self) -> None:
        self._pool.close()
