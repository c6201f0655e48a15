"""The decisions table, from the one field list (`records.fields`): columns, DDL, the row a record becomes.

The table holds the fields marked `column` (filters the stores query on, indexed with `time`) and the whole
record as JSON. SQLite's DDL is generated here, and an older SQLite file gains any column the list has since
grown (added, filled from the stored JSON, indexed) when it is opened. PostgreSQL's schema is versioned by the
migrations in `store/migrations/` (a fleet migrates under one lock); tests/store/test_schema.py fails until the
migrations give a fresh database exactly the columns derived here (`create_table("postgresql")`), so a new
column needs a migration.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from gearshift.records.fields import COLUMNS, FieldSpec

Dialect = Literal["sqlite", "postgresql"]
TABLE = "decisions"
KEY = "request_id"
RECORD = "record"  # the whole record, as JSON text (SQLite) or JSONB (PostgreSQL)
_RECORD_TYPE = {"sqlite": "TEXT", "postgresql": "JSONB"}
_CASTS: dict[str, Any] = {"str": str, "float": float, "int": int, "bool": bool}

#: The table's columns in order: the field list's `column` fields, then the record.
COLUMN_NAMES: tuple[str, ...] = (*(f.name for f in COLUMNS), RECORD)


def _column_ddl(f: FieldSpec, dialect: Dialect) -> str:
    suffix = " PRIMARY KEY" if f.name == KEY else " NOT NULL" if f.required else ""
    return f"{f.name} {f.sql_type(dialect)}{suffix}"


def _index_ddl(f: FieldSpec) -> str:
    on = "time" if f.name == "time" else f"{f.name}, time"
    return f"CREATE INDEX IF NOT EXISTS {TABLE}_{f.name} ON {TABLE} ({on});"


def create_table(dialect: Dialect) -> str:
    """`CREATE TABLE IF NOT EXISTS` as the field list says today (indexes: `create_indexes`)."""
    cols = [_column_ddl(f, dialect) for f in COLUMNS] + [f"{RECORD} {_RECORD_TYPE[dialect]} NOT NULL"]
    body = ",\n    ".join(cols)
    return f"CREATE TABLE IF NOT EXISTS {TABLE} (\n    {body}\n);\n"


def create_indexes() -> str:
    return "\n".join(_index_ddl(f) for f in COLUMNS if f.index) + "\n"


_PLAN = tuple((f.name, _CASTS[f.kind], f.required) for f in COLUMNS)  # columns are top-level fields (tested)


def record_json(record: Mapping[str, Any]) -> str:
    """The record as compact JSON text, by orjson: the writer thread holds the GIL while it encodes, and the
    json module's ~20 us per record (orjson: ~1.5) stalled the event loop for milliseconds per batch. Non-ASCII
    stays UTF-8 and a NaN becomes null (SQLite already stores a NaN column as NULL); what orjson refuses (an
    integer past 64 bits) goes through the json module."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(record, separators=(",", ":"), default=str)


def column_values(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The `column` fields of one record, typed for the table (the record's JSON is the caller's: the two
    backends escape it differently). Runs per row on the writer thread, hence the plan made once."""
    out: list[Any] = []
    for name, cast, required in _PLAN:
        v = record.get(name)
        if v is None:
            if required:
                raise KeyError(f"a decision record needs {name}")
            out.append(None)
        else:
            out.append(v if type(v) is cast else cast(v))
    return tuple(out)


def _missing(conn: sqlite3.Connection) -> list[FieldSpec]:
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")}
    return [f for f in COLUMNS if f.name not in have]


def upgrade_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Bring a decisions table created by an older gearshift up to the field list, then make sure of the
    indexes; returns the columns added.

    A new column is filled from each stored record's JSON, so filters on it see old rows too. A `required`
    column cannot be added to rows that lack it: the list only ever gets new columns that may be NULL. Runs
    under SQLite's write lock, so gateway workers opening one file together add each column once.
    """
    added: list[str] = []
    if _missing(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for f in _missing(conn):  # again, under the lock: another process may have just done it
                conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {f.name} {f.sql_type('sqlite')}")
                conn.execute(f"UPDATE {TABLE} SET {f.name} = json_extract({RECORD}, ?)", ("$." + f.name,))
                added.append(f.name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    conn.executescript(create_indexes())
    return added
