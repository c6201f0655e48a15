"""Router versions: which saved routers exist, which one serves traffic (champion), and how it got there.

A version is a saved router directory (`TrainableRouter.save`) plus what we know about it: the
thresholds calibrated for it, training and off-policy metrics. Exactly one version is `champion`; new
ones start as `challenger`; a replaced champion becomes `retired`. Every promotion is kept in a history
table so `rollback` can undo the last one in one step. The tables live beside the decisions: in the
gateway's SQLite file, or on PostgreSQL (`store.postgres_versions`); `open_version_registry(url)` picks.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from gearshift.errors import ConfigError
from gearshift.store.sqlite import open_sqlite

if TYPE_CHECKING:
    pass

Status = Literal["champion", "challenger", "retired"]
CHAMPION = "champion"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS router_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    created REAL NOT NULL,
    router TEXT NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    thresholds TEXT,
    metrics TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS router_promotions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous_name TEXT,
    previous_version INTEGER,
    rolled_back INTEGER NOT NULL DEFAULT 0,
    note TEXT
);
"""


@dataclass(frozen=True, slots=True)
class RouterVersion:
    """One registered router. `ref` ("name/3") is how commands and the gateway name it."""

    name: str
    version: int
    created: float
    router: str
    path: str
    status: Status
    thresholds: tuple[float, ...] | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "name": self.name, "version": self.version, "created": self.created,
                "router": self.router, "path": self.path, "status": self.status,
                "thresholds": list(self.thresholds) if self.thresholds is not None else None,
                "metrics": dict(self.metrics)}


@dataclass(frozen=True, slots=True)
class Promotion:
    """One champion change: `previous` is None for the first champion."""

    time: float
    new: str
    previous: str | None
    rolled_back: bool
    note: str | None


def parse_ref(ref: str) -> tuple[str, int | None]:
    """"name" (its newest version), "name/3", or "champion" (name "champion", version None)."""
    name, slash, ver = ref.strip().partition("/")
    if not name or not _NAME.match(name):
        raise ConfigError(f"router version {ref!r}: expected NAME or NAME/VERSION")
    if not slash:
        return name, None
    try:
        number = int(ver.lstrip("v"))
    except ValueError:
        raise ConfigError(f"router version {ref!r}: VERSION must be a number") from None
    return name, number


# -- shared by the SQLite and PostgreSQL registries (only the SQL differs between them) ---------------
VERSION_COLS = "name, version, created, router, path, status, thresholds, metrics"


def version_from_row(row: Sequence[Any]) -> RouterVersion:
    """A `VERSION_COLS` row; thresholds and metrics are JSON text (SQLite) or already decoded (jsonb)."""
    name, version, created, router, path, status, thresholds, metrics = row
    if isinstance(thresholds, str):
        thresholds = json.loads(thresholds)
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    return RouterVersion(name=name, version=int(version), created=float(created), router=router, path=path,
                         status=status, metrics=dict(metrics or {}),
                         thresholds=tuple(float(t) for t in thresholds) if thresholds is not None else None)


def version_values(thresholds: Sequence[float] | None, metrics: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """(thresholds, metrics) as the JSON text both registries store."""
    return (json.dumps([float(t) for t in thresholds]) if thresholds is not None else None,
            json.dumps(dict(metrics or {}), default=str))


def check_new_name(name: str) -> None:
    if name == CHAMPION or parse_ref(name)[1] is not None:
        raise ConfigError(f"version name {name!r} is reserved or contains '/'")


def require_version(found: RouterVersion | None, ref: str, where: str) -> RouterVersion:
    if found is None:
        what = "no champion has been promoted yet" if ref.strip() == CHAMPION else f"no router version {ref!r}"
        raise ConfigError(f"{what} in {where} (see `gearshift versions`)")
    return found


def last_promotion(rows: Sequence[Sequence[Any]]) -> tuple[int, str, str]:
    """(promotion id, its champion ref, the previous champion ref) from the newest not-rolled-back promotion."""
    if not rows:
        raise ConfigError("nothing to roll back: no promotion on record")
    pid, name, version, prev_name, prev_version = rows[0]
    if prev_name is None:
        raise ConfigError(f"{name}/{version} was the first champion: there is no previous one to restore")
    return int(pid), f"{name}/{version}", f"{prev_name}/{prev_version}"


PROMOTION_SQL = ("SELECT time, name, version, previous_name, previous_version, rolled_back, note "
                 "FROM router_promotions ORDER BY id")


def promotions_of(rows: Sequence[Sequence[Any]]) -> list[Promotion]:
    return [Promotion(time=float(t), new=f"{n}/{v}", previous=f"{pn}/{pv}" if pn is not None else None,
                      rolled_back=bool(rb), note=note) for t, n, v, pn, pv, rb, note in rows]


@runtime_checkable
class VersionRegistry(Protocol):
    def register(self, name: str, router: str, path: str | Path, *, thresholds: Sequence[float] | None = None,
                 metrics: Mapping[str, Any] | None = None, now: float | None = None) -> RouterVersion: ...

    def next_version(self, name: str) -> int: ...

    def get(self, ref: str) -> RouterVersion: ...

    def find(self, ref: str) -> RouterVersion | None: ...

    def all(self) -> list[RouterVersion]: ...

    def champion(self) -> RouterVersion | None: ...

    def update_metrics(self, ref: str, metrics: Mapping[str, Any]) -> RouterVersion: ...

    def promote(self, ref: str, *, note: str | None = None, now: float | None = None) -> RouterVersion: ...

    def rollback(self, *, now: float | None = None) -> RouterVersion: ...

    def history(self) -> list[Promotion]: ...

    def close(self) -> None: ...


class RegistryReads:
    """The registry's reads, shared by SQLite and PostgreSQL: only the parameter placeholder differs."""

    PH: ClassVar[str] = "?"  # "%s" for psycopg
    path: str

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def next_version(self, name: str) -> int:
        parse_ref(name)
        (top,) = self._rows(f"SELECT MAX(version) FROM router_versions WHERE name = {self.PH}", (name,))[0]
        return int(top or 0) + 1

    def find(self, ref: str) -> RouterVersion | None:
        name, version = parse_ref(ref)
        if name == CHAMPION and version is None:
            return self.champion()
        where, params = (f"name = {self.PH}", (name,)) if version is None else \
            (f"name = {self.PH} AND version = {self.PH}", (name, version))
        rows = self._rows(f"SELECT {VERSION_COLS} FROM router_versions WHERE {where} ORDER BY version DESC LIMIT 1",
                          params)
        return version_from_row(rows[0]) if rows else None

    def get(self, ref: str) -> RouterVersion:
        return require_version(self.find(ref), ref, self.path)

    def all(self) -> list[RouterVersion]:
        return [version_from_row(r) for r in self._rows(f"SELECT {VERSION_COLS} FROM router_versions "
                                                     "ORDER BY created, name, version")]

    def champion(self) -> RouterVersion | None:
        rows = self._rows(f"SELECT {VERSION_COLS} FROM router_versions WHERE status = 'champion' LIMIT 1")
        return version_from_row(rows[0]) if rows else None

    def history(self) -> list[Promotion]:
        return promotions_of(self._rows(PROMOTION_SQL))


class SQLiteVersionRegistry(RegistryReads):
    """Registry in the gateway's SQLite file (WAL, like the decision store); ":memory:" for tests."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = open_sqlite(self.path, _SCHEMA, "router version registry")
        self._lock = threading.RLock()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def register(self, name: str, router: str, path: str | Path, *, thresholds: Sequence[float] | None = None,
                 metrics: Mapping[str, Any] | None = None, now: float | None = None) -> RouterVersion:
        """A new challenger `name/<next number>`."""
        check_new_name(name)
        with self._lock:
            version = self.next_version(name)
            self._conn.execute(
                f"INSERT INTO router_versions({VERSION_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (name, version, time.time() if now is None else now, router, str(path), "challenger",
                 *version_values(thresholds, metrics)))
        return self.get(f"{name}/{version}")

    def update_metrics(self, ref: str, metrics: Mapping[str, Any]) -> RouterVersion:
        """Merge `metrics` into the version's metrics (top-level keys replaced)."""
        with self._lock:
            v = self.get(ref)
            merged = {**v.metrics, **metrics}
            self._conn.execute("UPDATE router_versions SET metrics = ? WHERE name = ? AND version = ?",
                               (json.dumps(merged, default=str), v.name, v.version))
        return self.get(v.ref)

    def _set_champion(self, new: RouterVersion, old: RouterVersion | None, old_status: Status) -> None:
        if old is not None:
            self._conn.execute("UPDATE router_versions SET status = ? WHERE name = ? AND version = ?",
                               (old_status, old.name, old.version))
        self._conn.execute("UPDATE router_versions SET status = 'champion' WHERE name = ? AND version = ?",
                           (new.name, new.version))

    def promote(self, ref: str, *, note: str | None = None, now: float | None = None) -> RouterVersion:
        """Make `ref` the champion; the old champion is retired. Checks (OPE margin) are the caller's."""
        with self._lock:
            new, old = self.get(ref), self.champion()
            if old is not None and old.ref == new.ref:
                raise ConfigError(f"{new.ref} is already the champion")
            self._conn.execute("BEGIN")
            try:
                self._set_champion(new, old, "retired")
                self._conn.execute(
                    "INSERT INTO router_promotions(time, name, version, previous_name, previous_version, note) "
                    "VALUES (?,?,?,?,?,?)", (time.time() if now is None else now, new.name, new.version,
                                             old.name if old else None, old.version if old else None, note))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.get(new.ref)

    def rollback(self, *, now: float | None = None) -> RouterVersion:
        """Undo the newest promotion not yet undone: its previous champion serves again. Returns it."""
        with self._lock:
            rows = self._rows("SELECT id, name, version, previous_name, previous_version FROM router_promotions "
                              "WHERE rolled_back = 0 ORDER BY id DESC LIMIT 1")
            pid, current_ref, previous_ref = last_promotion(rows)
            current, previous = self.get(current_ref), self.get(previous_ref)
            self._conn.execute("BEGIN")
            try:
                self._set_champion(previous, current, "retired")
                self._conn.execute("UPDATE router_promotions SET rolled_back = 1 WHERE id = ?", (pid,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.get(previous.ref)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def versions_dir(db_path: str | Path) -> Path:
    """Default home of saved versions: `<db stem>-versions/` next to the SQLite file."""
    p = Path(db_path)
    return p.parent / f"{p.stem}-versions"
