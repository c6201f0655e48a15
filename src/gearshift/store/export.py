"""Decision records, with their shadow labels and feedback joined, as date-partitioned Parquet.

The output (`DIR/date=YYYY-MM-DD/part-*.parquet`, Hive-style) is what offline training and analysis
read: pyarrow.dataset, DuckDB (`read_parquet('DIR/**/*.parquet', hive_partitioning=1)`) or Polars
(`scan_parquet`). Columns are a fixed, typed schema (so files from different days concatenate): the fields the
field list (`records.fields`) marks `export`; nested parts of a record (attempts, cascade steps) travel as
JSON text, and `record_json` keeps the whole record.
Decisions are read in chunks, so a month of traffic never sits in memory at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gearshift.errors import ConfigError
from gearshift.records.fields import EXPORTED, FieldSpec
from gearshift.records.redaction import FULL, Concealment
from gearshift.store.factory import sqlite_path, store_kind

CHUNK = 2000

_PA_TYPES = {"str": "string", "float": "float64", "int": "int64", "bool": "bool_"}
_CASTS: dict[str, Callable[[Any], Any]] = {"str": str, "float": float, "int": int, "bool": bool}


def arrow_schema() -> Any:
    """The exported fields of the field list (`records.fields`, in its order), then the joined closed-loop
    columns, the whole record and the date partition."""
    import pyarrow as pa  # type: ignore[import-untyped]

    def arrow_type(f: FieldSpec) -> Any:
        if f.kind == "floats":
            return pa.list_(pa.float64())
        if f.kind == "json":
            return pa.string()
        return getattr(pa, _PA_TYPES[f.kind])()

    fields = [pa.field(f.export_name, arrow_type(f)) for f in EXPORTED]
    fields += [
        pa.field("shadow_label", pa.string()), pa.field("shadow_gap", pa.float64()),
        pa.field("feedback_count", pa.int64()), pa.field("feedback_json", pa.string()),
        pa.field("record_json", pa.string()), pa.field("date", pa.string()),
    ]
    return pa.schema(fields)


def _column(f: FieldSpec, record: dict[str, Any]) -> Any:
    value = f.get(record)
    if f.kind == "floats":
        return [float(t) for t in value] if isinstance(value, list) else None
    if f.kind == "json":
        return json.dumps(value or [], default=str)
    return _typed(value, _CASTS[f.kind])


def _typed(value: Any, cast: Callable[[Any], Any]) -> Any:
    try:
        return None if value is None else cast(value)
    except (TypeError, ValueError):
        return None


def conceal_text(obj: Any, how: Concealment) -> Any:
    """Prompt/answer text per `how` ("full", "hash", "redact"), at any depth. A record the gateway concealed
    when writing says so (`text_mode`) and stays as it is (hashing a hash would break joins on it); nothing is
    judged by its prefix, so a prompt that merely starts with "sha256:" is concealed like any other."""
    from gearshift.records.redaction import TEXT_FIELDS

    if how.mode == "full":
        return obj
    if isinstance(obj, dict):
        if obj.get("text_mode") in ("hash", "redact"):
            return obj
        return {k: how(v) if k in TEXT_FIELDS else conceal_text(v, how) for k, v in obj.items()}
    if isinstance(obj, list):
        return [conceal_text(v, how) for v in obj]
    return obj


def flatten(record: dict[str, Any], label: dict[str, Any] | None, feedback: list[dict[str, Any]]) -> dict[str, Any]:
    """One Parquet row: the exported fields typed (segment flattened, nested parts as JSON), then the joins."""
    row: dict[str, Any] = {f.export_name: _column(f, record) for f in EXPORTED}
    row["shadow_label"] = _typed((label or {}).get("label"), str)
    row["shadow_gap"] = _typed((label or {}).get("gap"), float)
    row["feedback_count"] = len(feedback)
    row["feedback_json"] = json.dumps(feedback, default=str)
    row["record_json"] = json.dumps(record, default=str)
    row["date"] = time.strftime("%Y-%m-%d", time.gmtime(float(record["time"])))
    return row


class _Source:
    """Chunked reads of decisions since a time, and the labels/feedback of a chunk's request ids."""

    def count(self, since: float) -> int:
        raise NotImplementedError

    def decisions(self, since: float) -> Iterator[list[dict[str, Any]]]:
        raise NotImplementedError

    def joined(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


_FEEDBACK_COLS = ("request_id", "time", "signal", "value", "comment", "source")


class _SQLiteSource(_Source):
    def __init__(self, path: str) -> None:
        if not Path(path).exists():
            raise ConfigError(f"no decision store at {path}")
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "decisions" not in tables:
            raise ConfigError(f"{path} has no decisions table")
        self.has_labels, self.has_feedback = "shadow_labels" in tables, "feedback_events" in tables

    def count(self, since: float) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM decisions WHERE time >= ?", (since,)).fetchone()[0])

    def decisions(self, since: float) -> Iterator[list[dict[str, Any]]]:
        cur = self.conn.execute("SELECT record FROM decisions WHERE time >= ? ORDER BY time", (since,))
        while rows := cur.fetchmany(CHUNK):
            yield [json.loads(r[0]) for r in rows]

    def joined(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        marks = ",".join("?" * len(ids))
        labels: dict[str, dict[str, Any]] = {}
        feedback: dict[str, list[dict[str, Any]]] = {}
        if self.has_labels:
            for rid, rec in self.conn.execute(f"SELECT request_id, record FROM shadow_labels WHERE request_id IN "
                                              f"({marks})", list(ids)):
                labels[rid] = json.loads(rec)
        if self.has_feedback:
            for row in self.conn.execute(f"SELECT {', '.join(_FEEDBACK_COLS)} FROM feedback_events WHERE request_id "
                                         f"IN ({marks}) ORDER BY id", list(ids)):
                feedback.setdefault(row[0], []).append(dict(zip(_FEEDBACK_COLS[1:], row[1:], strict=True)))
        return labels, feedback

    def close(self) -> None:
        self.conn.close()


class _PostgresSource(_Source):
    def __init__(self, url: str) -> None:
        import psycopg

        from gearshift.store.postgres import PgTarget, redact

        target = PgTarget.parse(url)
        try:
            self.conn = psycopg.connect(target.conninfo, **target.options)
        except psycopg.Error as exc:
            raise ConfigError(f"PostgreSQL store {redact(url)}: {exc}") from exc

    def count(self, since: float) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM decisions WHERE time >= %s", (since,)).fetchone()
        return int(row[0]) if row else 0

    def decisions(self, since: float) -> Iterator[list[dict[str, Any]]]:
        with self.conn.cursor(name="gearshift_export") as cur:  # server-side cursor: streamed, not buffered
            cur.execute("SELECT record FROM decisions WHERE time >= %s ORDER BY time", (since,))
            while rows := cur.fetchmany(CHUNK):
                yield [dict(r[0]) for r in rows]

    def joined(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        with self.conn.cursor() as cur:  # a second cursor while the named one is open
            cur.execute("SELECT request_id, record FROM shadow_labels WHERE request_id = ANY(%s)", (list(ids),))
            labels = {str(rid): dict(rec) for rid, rec in cur.fetchall()}
            cur.execute(f"SELECT {', '.join(_FEEDBACK_COLS)} FROM feedback_events WHERE request_id = ANY(%s) "
                        "ORDER BY id", (list(ids),))
            feedback: dict[str, list[dict[str, Any]]] = {}
            for row in cur.fetchall():
                feedback.setdefault(row[0], []).append(dict(zip(_FEEDBACK_COLS[1:], row[1:], strict=True)))
        return labels, feedback

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True, slots=True)
class ExportResult:
    rows: int
    files: int
    dates: tuple[str, ...]
    out: Path


def _owner_only(root: Path) -> None:
    """Exported prompts are as private as the store they came from: directories 0700, files 0600."""
    if not root.exists():
        return
    root.chmod(0o700)
    for p in root.rglob("*"):
        p.chmod(0o700 if p.is_dir() else 0o600)


def export_parquet(url: str, out: str | Path, since: float, *,
                   progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None,
                   text: Concealment = FULL) -> ExportResult:
    """Write decisions newer than `since` (Unix time) under `out`, one directory per UTC date.

    `text` conceals prompt and answer text in the `prompt` column and in `record_json`, on top of what the
    gateway's `[store] text` already did when writing (hash mode: the same key gives the same digests).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"export directory {out} is not empty; choose a new one")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    source: _Source = _SQLiteSource(sqlite_path(url)) if store_kind(url) == "sqlite" else _PostgresSource(url)
    schema = arrow_schema()
    rows = files = 0
    dates: set[str] = set()
    try:
        if total is not None:
            total(source.count(since))
        for i, chunk in enumerate(source.decisions(since)):
            labels, feedback = source.joined([str(r["request_id"]) for r in chunk])
            flat = [flatten(conceal_text(r, text), labels.get(str(r["request_id"])),
                            feedback.get(str(r["request_id"]), [])) for r in chunk]
            table = pa.Table.from_pylist(flat, schema=schema)
            pq.write_to_dataset(table, root_path=str(out), partition_cols=["date"],
                                basename_template=f"part-{i:05d}-{{i}}.parquet",
                                existing_data_behavior="overwrite_or_ignore")
            chunk_dates = {row["date"] for row in flat}
            files += len(chunk_dates)
            dates |= chunk_dates
            rows += len(flat)
            if progress is not None:
                progress(len(flat))
    finally:
        source.close()
        _owner_only(out)
    return ExportResult(rows=rows, files=files, dates=tuple(sorted(dates)), out=out)
