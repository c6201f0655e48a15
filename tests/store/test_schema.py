"""The decisions table is what the field list says, on SQLite (generated DDL) and PostgreSQL (the migrations),
and a SQLite file written by an older gearshift keeps working, gaining any column the list has since grown."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gearshift.records.fields import COLUMNS
from gearshift.store.base import DecisionQuery
from gearshift.store.postgres import PgTarget, migrate
from gearshift.store.schema import COLUMN_NAMES, RECORD, TABLE, create_indexes, create_table
from gearshift.store.sqlite import SQLiteDecisionStore
from support.records import full_record

#: The inline schema store/sqlite.py carried before the field list (kept verbatim: files created by it exist).
OLD_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    tier TEXT,
    status TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
CREATE INDEX IF NOT EXISTS decisions_tier ON decisions(tier, time);
CREATE INDEX IF NOT EXISTS decisions_status ON decisions(status, time);
"""


def _expected(dialect: str) -> list[tuple[str, str, bool]]:
    """(column, type, NOT NULL) as the field list derives them."""
    cols = [(f.name, f.sql_type(dialect), f.required) for f in COLUMNS]
    return [*cols, (RECORD, "TEXT" if dialect == "sqlite" else "JSONB", True)]


def _expected_indexes() -> dict[str, list[str]]:
    return {f"{TABLE}_{f.name}": ["time"] if f.name == "time" else [f.name, "time"] for f in COLUMNS if f.index}


def _sqlite_indexes(conn: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[1] for r in conn.execute(f"PRAGMA index_list({TABLE})") if not r[1].startswith("sqlite_autoindex")]
    return {n: [c[2] for c in conn.execute(f"PRAGMA index_info({n})")] for n in names}


def _rows(ids: range) -> list[dict[str, object]]:
    return [full_record(f"old-{i}", 1_700_000_000.0 + i, status="error" if i % 3 == 0 else "ok",
                        tier="cheap" if i % 2 else "strong") for i in ids]


def test_a_new_sqlite_table_has_the_lists_columns_and_indexes(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    SQLiteDecisionStore(db).close()
    conn = sqlite3.connect(db)
    info = [(r[1], r[2], bool(r[3]) or r[1] == "request_id") for r in conn.execute(f"PRAGMA table_info({TABLE})")]
    assert info == [(n, t, nn or n == "request_id") for n, t, nn in _expected("sqlite")]
    assert _sqlite_indexes(conn) == _expected_indexes()
    conn.close()


def test_the_migrations_give_postgresql_the_lists_columns_and_indexes(pg_url: str) -> None:
    import psycopg

    migrate(pg_url)
    target = PgTarget.parse(pg_url)
    with psycopg.connect(target.conninfo) as conn:
        cols = conn.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                            (target.schema, TABLE)).fetchall()
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                               (target.schema, TABLE)).fetchall()
    # sorted: a migration that adds a column appends it after `record`
    assert sorted((n, t.upper(), null == "NO") for n, t, null in cols) == sorted(_expected("postgresql")), \
        f"add a migration to store/migrations/ that ends at:\n{create_table('postgresql')}{create_indexes()}"
    got = {name: d.rpartition("(")[2].rstrip(")").replace(" ", "").replace("\"", "").split(",") for name, d in indexes
           if not name.endswith("_pkey")}
    assert got == _expected_indexes(), f"add a migration to store/migrations/ for the indexes:\n{create_indexes()}"


def test_a_file_from_the_old_inline_schema_reads_filters_and_takes_writes(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(OLD_SQLITE_SCHEMA)
    conn.executemany("INSERT INTO decisions VALUES (?,?,?,?,?)",
                     [(r["request_id"], r["time"], r["tier"], r["status"], json.dumps(r)) for r in _rows(range(6))])
    conn.commit()
    conn.close()
    store = SQLiteDecisionStore(db)
    try:
        assert store.count() == 6 and store.count(DecisionQuery(status="error", limit=None)) == 2
        assert [r["request_id"] for r in store.query(DecisionQuery(tier="cheap"))] == ["old-5", "old-3", "old-1"]
        assert store.query(DecisionQuery(limit=1)) == [full_record("old-5", 1_700_000_005.0, tier="cheap", status="ok")]
        store.append_many(_rows(range(6, 8)))
        assert store.count() == 8
    finally:
        store.close()
    conn = sqlite3.connect(db)
    assert {r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")} == set(COLUMN_NAMES)  # added ones come last
    conn.close()


def test_an_older_table_gains_a_column_the_list_has_grown_filled_from_its_records(tmp_path: Path) -> None:
    """As if `status` had joined the list after this file was written: opening adds, fills and indexes it."""
    db = tmp_path / "older.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE decisions (request_id TEXT PRIMARY KEY, time REAL NOT NULL, tier TEXT, "
                       "record TEXT NOT NULL);")
    conn.executemany("INSERT INTO decisions VALUES (?,?,?,?)",
                     [(r["request_id"], r["time"], r["tier"], json.dumps(r)) for r in _rows(range(9))])
    conn.commit()
    conn.close()
    store = SQLiteDecisionStore(db)
    try:
        assert store.count(DecisionQuery(status="error", limit=None)) == 3
        assert [r["request_id"] for r in store.query(DecisionQuery(status="error", tier="strong"))] == \
            ["old-6", "old-0"]
    finally:
        store.close()
    SQLiteDecisionStore(db).close()  # a second open finds nothing left to do
    conn = sqlite3.connect(db)
    assert {r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")} == set(COLUMN_NAMES)
    assert _sqlite_indexes(conn) == _expected_indexes()
    conn.close()
