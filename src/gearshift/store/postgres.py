"""PostgreSQL decision store, so several gateway processes (and hosts) share one decision log.

Selected by `[store] url = "postgresql://user@host:5432/db"`; an optional `?schema=NAME` puts every table
in that schema (tests use a fresh one per run). The schema is versioned by yoyo-migrations (raw SQL files
in `store/migrations/`, all `IF NOT EXISTS`; the decisions table's columns come from the field list,
`store/schema.py`, and a test holds the migrations to it); creating it and migrating run under one advisory
lock, so a fleet starting together on a new database does not race (`migrate`).

Writes are batched: the gateway's BackgroundWriter thread calls `append_many` with up to `batch_size`
records, which become one transaction of pipelined upserts (`executemany`). Reads and writes share a
small thread-safe connection pool.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gearshift.errors import ConfigError, StoreUnavailableError
from gearshift.store.base import DecisionQuery
from gearshift.store.schema import COLUMN_NAMES, KEY, RECORD, TABLE, column_values, record_json

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_SCHEMES = ("postgresql", "postgres")
_SECRET_PARAMS = frozenset({"password", "sslpassword"})  # libpq parameters that hold a secret


def _upsert(update: tuple[str, ...]) -> str:
    """One decision row, the record as JSONB; a request id seen before keeps the last write's `update` columns."""
    marks = ", ".join(["%s"] * (len(COLUMN_NAMES) - 1) + ["%s::jsonb"])
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in update)
    return (f"INSERT INTO {TABLE} ({', '.join(COLUMN_NAMES)}) VALUES ({marks}) "
            f"ON CONFLICT ({KEY}) DO UPDATE SET {sets}")


_UPSERT = _upsert(tuple(c for c in COLUMN_NAMES if c != KEY))
_UPSERT_RECORD = _upsert((RECORD,))


@dataclass(frozen=True, slots=True)
class PgTarget:
    """A PostgreSQL URL split into what libpq takes and the gearshift-only `schema` parameter."""

    conninfo: str
    schema: str | None

    @classmethod
    def parse(cls, url: str) -> PgTarget:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ConfigError(f"not a PostgreSQL URL (postgresql://...): {redact(url)}")
        params = dict(parse_qsl(parts.query))
        schema = params.pop("schema", None)
        if schema is not None and not schema.replace("_", "").isalnum():
            raise ConfigError(f"store url: schema must be letters, digits and _, got {schema!r}")
        conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(params), ""))
        return cls(conninfo, schema)

    @property
    def options(self) -> dict[str, Any]:
        """Connection kwargs that pin `search_path` to the schema."""
        return {"options": f"-c search_path={self.schema}"} if self.schema else {}


def redact(url: str) -> str:
    """The URL without its password (in the user part or as `?password=`), for messages, logs and the CLI."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = "&".join(f"{k}=***" if k.lower() in _SECRET_PARAMS else f"{k}={v}" if v else k
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _scrubbed(url: str, exc: BaseException) -> str:
    """An error's text with the URL's passwords removed, should the driver quote its connection string."""
    parts = urlsplit(url)
    text = str(exc)
    secrets = [parts.password or ""] + [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_PARAMS]
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def migrate(url: str) -> list[str]:
    """Create the schema if needed and apply pending migrations; returns the ids applied now.

    Replicas of a deployment start together: `CREATE SCHEMA IF NOT EXISTS` and yoyo's own bookkeeping tables
    race (`duplicate key ... pg_namespace_nspname_index`), so everything runs under one PostgreSQL advisory lock
    per schema, held on its own connection; a second gateway waits, then finds nothing left to do.
    """
    import psycopg

    target = PgTarget.parse(url)
    try:
        with psycopg.connect(target.conninfo, autocommit=True) as lock_conn:
            lock_conn.execute("SELECT pg_advisory_lock(%s)", (migration_lock_key(target.schema),))
            try:
                if target.schema:
                    lock_conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')
                return _apply_migrations(target)
            finally:
                lock_conn.execute("SELECT pg_advisory_unlock(%s)", (migration_lock_key(target.schema),))
    except psycopg.Error as exc:
        raise ConfigError(f"PostgreSQL store {redact(url)}: {_scrubbed(url, exc)}") from exc


def migration_lock_key(schema: str | None) -> int:
    """The advisory lock (a signed 64-bit key) that serialises migrations of one schema of one database."""
    digest = hashlib.blake2b(f"gearshift-migrate:{schema or 'public'}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _apply_migrations(target: PgTarget) -> list[str]:
    from yoyo import get_backend, read_migrations  # type: ignore[import-untyped]

    parts = urlsplit(target.conninfo)
    query = dict(parse_qsl(parts.query))
    if target.schema:
        query["schema"] = target.schema
    backend = get_backend(urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), "")))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()


def open_pool(url: str, *, max_size: int = 4, connect_timeout_s: float = 5.0) -> ConnectionPool:
    """A started pool; fails fast (ConfigError) when the server does not answer.

    `connect_timeout_s` bounds both a new connection (libpq `connect_timeout`, whole seconds, 2 at least) and
    the wait for a pooled one, so a down server fails a batch fast and the writer spools it.
    """
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout

    target = PgTarget.parse(url)
    kwargs: dict[str, Any] = {**target.options, "connect_timeout": max(2, math.ceil(connect_timeout_s))}
    pool: ConnectionPool = ConnectionPool(target.conninfo, min_size=1, max_size=max_size, kwargs=kwargs,
                                          open=False, name="gearshift-store", timeout=connect_timeout_s)
    try:
        pool.open(wait=True, timeout=max(10.0, 2 * connect_timeout_s))
    except (PoolTimeout, psycopg.Error) as exc:
        pool.close()
        raise ConfigError(f"PostgreSQL store {redact(url)}: cannot connect ({_scrubbed(url, exc)})") from exc
    return pool


class _Deadline:
    """Severs a connection's socket if the work on it outlasts `timeout_s`.

    A hung server (frozen process, black-holed route whose peer still ACKs) never answers, and neither
    `statement_timeout` (the server never sees the query) nor TCP keepalive notices; libpq would block the
    writer thread forever. Shutting the socket down wakes the blocked read with an error, the pool discards
    the broken connection, and the writer spools the batch.
    """

    def __init__(self, conn: psycopg.Connection[Any], timeout_s: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(timeout_s, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:  # after this the timer cannot touch a connection the pool may hand to someone else
            self._done = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            with suppress(OSError, ValueError), socket.socket(fileno=os.dup(self._conn.pgconn.socket)) as s:
                s.shutdown(socket.SHUT_RDWR)  # acts on the shared socket, not only the dup'd descriptor
        log.warning("PostgreSQL store: no answer within the store timeout; dropped the connection")


@contextmanager
def bounded_connection(pool: ConnectionPool, timeout_s: float) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection whose whole transaction (reads included) must finish within `timeout_s`: a hung
    server then costs a caller an error after `timeout_s`, never a thread blocked forever."""
    import psycopg
    from psycopg_pool import PoolTimeout

    deadline: _Deadline | None = None
    try:
        with pool.connection() as conn:  # commits on success, rolls back on error
            deadline = _Deadline(conn, timeout_s)
            with deadline:
                yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        fired = deadline is not None and deadline.fired
        why = f"no answer within {timeout_s:g} s" if fired else (str(exc).strip() or type(exc).__name__)
        raise StoreUnavailableError(f"PostgreSQL store unavailable: {why}") from exc


def to_json(record: Mapping[str, Any]) -> str:
    """JSON text for a JSONB column; NUL is the one character JSONB refuses, so it becomes U+FFFD."""
    return record_json(record).replace("\\u0000", "\\ufffd")


class PostgresTables:
    """What every PostgreSQL store shares: migrations at open, a connection pool, and transactions bounded by
    `timeout_s` (a client-side deadline, see `bounded_connection`), reads and writes alike."""

    def __init__(self, url: str, *, pool_size: int = 2, run_migrations: bool = True, connect_timeout_s: float = 5.0,
                 timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        if run_migrations:
            migrate(url)
        self._pool = open_pool(url, max_size=pool_size, connect_timeout_s=connect_timeout_s)

    def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return bounded_connection(self._pool, self.timeout_s)  # one transaction, bounded in time

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self._pool.close()


class PostgresDecisionStore(PostgresTables):
    """The `DecisionStore` protocol on PostgreSQL; thread-safe (the writer thread and readers share it)."""

    def __init__(self, url: str, *, pool_size: int = 4, run_migrations: bool = True, connect_timeout_s: float = 5.0,
                 timeout_s: float = 30.0) -> None:
        super().__init__(url, pool_size=pool_size, run_migrations=run_migrations,
                         connect_timeout_s=connect_timeout_s, timeout_s=timeout_s)

    @contextmanager
    def _write_conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection whose whole transaction, commit included, must finish within `timeout_s`."""
        with bounded_connection(self._pool, self.timeout_s) as conn, conn.transaction():
            yield conn

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> int:
        rows = [(*column_values(r), to_json(r)) for r in records]
        if not rows:
            return 0
        with self._write_conn() as conn, conn.cursor() as cur:
            cur.executemany(_UPSERT, rows)
        return len(rows)

    def append_one(self, record: Mapping[str, Any]) -> int:
        """One row, one transaction: the unbatched baseline the write-rate benchmark compares against."""
        with self._write_conn() as conn:
            conn.execute(_UPSERT_RECORD, (*column_values(record), to_json(record)))
        return 1

    @staticmethod
    def _where(q: DecisionQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("time >=", q.since), ("tier =", q.tier), ("status =", q.status)):
            if value is not None:
                clauses.append(f"{column} %s")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(self, q: DecisionQuery) -> list[dict[str, Any]]:
        where, params = self._where(q)
        sql = f"SELECT record FROM decisions{where} ORDER BY time DESC"
        if q.limit is not None:
            sql += " LIMIT %s"
            params.append(int(q.limit))
        return [dict(r[0]) for r in self._rows(sql, params)]

    def count(self, q: DecisionQuery | None = None) -> int:
        where, params = self._where(q or DecisionQuery(limit=None))
        rows = self._rows(f"SELECT COUNT(*) FROM decisions{where}", params)
        return int(rows[0][0]) if rows else 0
