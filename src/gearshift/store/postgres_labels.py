"""The closed-loop tables (shadow labels, triage queue, feedback events) on PostgreSQL.

Same methods and semantics as `store.labels.SQLiteLabelStore`, so shadow labelling, triage and signal
rates work unchanged when several gateways share one database. Tables come from migration 0002.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gearshift.store.labels import (
    SIGNAL_COLS,
    TRIAGE_COLS,
    SignalEvent,
    check_triage_label,
    decision_groups_of,
    signal_groups_of,
    signal_record,
    signal_rows,
    triage_record,
    triage_where,
)
from gearshift.store.postgres import PostgresTables, to_json


class PostgresLabelStore(PostgresTables):
    """The `LabelStore` protocol on PostgreSQL; thread-safe through a connection pool."""

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

    def triage_items(self, *, status: str = "open", limit: int | None = 100) -> list[dict[str, Any]]:
        sql = f"SELECT {TRIAGE_COLS} FROM triage_items{triage_where(status)} ORDER BY id"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        return [triage_record(r) for r in self._rows(sql, params)]

    def triage_item(self, item_id: int) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {TRIAGE_COLS} FROM triage_items WHERE id = %s", (item_id,))
        return triage_record(rows[0]) if rows else None

    def set_triage_label(self, item_id: int, label: str, now: float) -> dict[str, Any] | None:
        check_triage_label(label)
        with self._conn() as conn:
            conn.execute("UPDATE triage_items SET label = %s, labelled_at = %s WHERE id = %s", (label, now, item_id))
        return self.triage_item(item_id)

    def triage_counts(self) -> dict[str, int]:
        rows = self._rows("SELECT COALESCE(label, 'open'), COUNT(*) FROM triage_items GROUP BY 1")
        return {str(k): int(n) for k, n in rows}

    # -- signals ------------------------------------------------------------------------------------
    def add_signals(self, events: Sequence[SignalEvent]) -> int:
        rows = signal_rows(events)
        if not rows:
            return 0
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO feedback_events (request_id, time, decision_time, signal, value, comment, "
                            "source, tier, segment) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        return len(rows)

    def signals(self, request_id: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(SIGNAL_COLS)} FROM feedback_events WHERE time >= %s"
        params: list[Any] = [since or 0.0]
        if request_id is not None:
            sql += " AND request_id = %s"
            params.append(request_id)
        return [signal_record(row) for row in self._rows(sql + " ORDER BY id", params)]

    def signal_groups(self, since: float, until: float) -> list[tuple[str, str | None, str | None, int]]:
        """(signal, tier, segment JSON, distinct decisions) for decisions made in [since, until)."""
        return signal_groups_of(self._rows("SELECT signal, tier, segment, COUNT(DISTINCT request_id) FROM "
                                           "feedback_events WHERE decision_time >= %s AND decision_time < %s "
                                           "GROUP BY 1, 2, 3", (since, until)))

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
        return decision_groups_of(rows)
