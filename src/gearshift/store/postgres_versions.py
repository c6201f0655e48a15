"""Router versions on PostgreSQL, so every gateway of a fleet and every operator see one champion.

Same methods and semantics as `store.versions.SQLiteVersionRegistry`; the tables come from migration
0003. Writes that change the champion run in one transaction holding a table lock, and a partial
unique index keeps "exactly one champion" true even if two operators promote at the same moment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError
from gearshift.store.postgres import PostgresTables, redact
from gearshift.store.versions import (
    VERSION_COLS,
    RegistryReads,
    RouterVersion,
    Status,
    check_new_name,
    last_promotion,
    version_from_row,
    version_values,
)

if TYPE_CHECKING:
    import psycopg


class PostgresVersionRegistry(PostgresTables, RegistryReads):
    """The `VersionRegistry` protocol on PostgreSQL (`url` may carry `?schema=NAME`)."""

    PH = "%s"

    def __init__(self, url: str, **options: Any) -> None:
        """`options`: those of `PostgresTables` (pool size, migrations, timeouts)."""
        super().__init__(url, **options)
        self.path = redact(url)  # where error messages say the registry is (no password)

    @staticmethod
    def _lock(conn: psycopg.Connection[Any]) -> None:
        conn.execute("LOCK TABLE router_versions IN SHARE ROW EXCLUSIVE MODE")

    def register(self, name: str, router: str, path: str | Path, *, thresholds: Sequence[float] | None = None,
                 metrics: Mapping[str, Any] | None = None, now: float | None = None) -> RouterVersion:
        """A new challenger `name/<next number>` (numbered under the table lock, so concurrent retrains differ)."""
        check_new_name(name)
        with self._conn() as conn:
            self._lock(conn)
            row = conn.execute("SELECT MAX(version) FROM router_versions WHERE name = %s", (name,)).fetchone()
            version = int((row[0] if row else None) or 0) + 1
            conn.execute(
                f"INSERT INTO router_versions ({VERSION_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
                (name, version, time.time() if now is None else now, router, str(path), "challenger",
                 *version_values(thresholds, metrics)))
        return self.get(f"{name}/{version}")

    def update_metrics(self, ref: str, metrics: Mapping[str, Any]) -> RouterVersion:
        """Merge `metrics` into the version's metrics (top-level keys replaced)."""
        v = self.get(ref)
        with self._conn() as conn:
            conn.execute("UPDATE router_versions SET metrics = metrics || %s::jsonb WHERE name = %s AND version = %s",
                         (json.dumps(dict(metrics), default=str), v.name, v.version))
        return self.get(v.ref)

    @staticmethod
    def _set_champion(conn: psycopg.Connection[Any], new: RouterVersion, old: RouterVersion | None,
                      old_status: Status) -> None:
        if old is not None:
            conn.execute("UPDATE router_versions SET status = %s WHERE name = %s AND version = %s",
                         (old_status, old.name, old.version))
        conn.execute("UPDATE router_versions SET status = 'champion' WHERE name = %s AND version = %s",
                     (new.name, new.version))

    def _champion_in(self, conn: psycopg.Connection[Any]) -> RouterVersion | None:
        rows = conn.execute(f"SELECT {VERSION_COLS} FROM router_versions WHERE status = 'champion' LIMIT 1").fetchall()
        return version_from_row(rows[0]) if rows else None

    def promote(self, ref: str, *, note: str | None = None, now: float | None = None) -> RouterVersion:
        """Make `ref` the champion; the old champion is retired. Checks (OPE margin) are the caller's."""
        new = self.get(ref)
        with self._conn() as conn:
            self._lock(conn)
            old = self._champion_in(conn)
            if old is not None and old.ref == new.ref:
                raise ConfigError(f"{new.ref} is already the champion")
            self._set_champion(conn, new, old, "retired")
            conn.execute("INSERT INTO router_promotions (time, name, version, previous_name, previous_version, note) "
                         "VALUES (%s, %s, %s, %s, %s, %s)",
                         (time.time() if now is None else now, new.name, new.version,
                          old.name if old else None, old.version if old else None, note))
        return self.get(new.ref)

    def rollback(self, *, now: float | None = None) -> RouterVersion:
        """Undo the newest promotion not yet undone: its previous champion serves again. Returns it."""
        with self._conn() as conn:
            self._lock(conn)
            rows = conn.execute("SELECT id, name, version, previous_name, previous_version FROM router_promotions "
                                "WHERE NOT rolled_back ORDER BY id DESC LIMIT 1").fetchall()
            pid, current_ref, previous_ref = last_promotion(rows)
            current, previous = self.get(current_ref), self.get(previous_ref)
            self._set_champion(conn, previous, current, "retired")
            conn.execute("UPDATE router_promotions SET rolled_back = TRUE WHERE id = %s", (pid,))
        return self.get(previous.ref)
