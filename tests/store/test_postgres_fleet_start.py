"""A fleet starts at once: stores and `gearshift serve` processes opening one PostgreSQL schema together, on a
database where it does not exist yet or where an older gateway version left it half migrated, all start (the
schema creation and the migrations run under one advisory lock) and each migration is applied once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gearshift.store.postgres import MIGRATIONS_DIR, PgTarget, PostgresDecisionStore
from gearshift.store.postgres_labels import PostgresLabelStore
from gearshift.store.postgres_versions import PostgresVersionRegistry
from support.fake_upstream import FakeUpstream, closed_port
from support.serve_process import start_serve, stop_serve, two_tier_toml, wait_healthy
from support.services import pg_schema

pytestmark = pytest.mark.services
OPENERS: list[Callable[[str], Any]] = [PostgresDecisionStore, PostgresLabelStore, PostgresVersionRegistry]


def _all_at_once(url: str, n: int) -> list[BaseException]:
    """Open `n` stores (the three kinds, in turn) in threads released together; the errors raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        barrier.wait()
        try:
            OPENERS[i % len(OPENERS)](url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def _applied(url: str) -> list[str]:
    import psycopg

    target = PgTarget.parse(url)
    with psycopg.connect(target.conninfo, **target.options) as conn:
        rows = conn.execute(f'SELECT migration_id FROM "{target.schema}"._yoyo_migration '
                            "ORDER BY migration_id").fetchall()
    return [r[0] for r in rows]


def _all_migrations() -> list[str]:
    return sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql") if not p.stem.endswith(".rollback"))


@pytest.mark.parametrize("round_", range(5))
def test_stores_opened_together_on_a_schema_that_does_not_exist_all_start(round_: int) -> None:
    with pg_schema("gs_fleet", create=False) as url:
        errors = _all_at_once(url, 12)
        assert errors == []
        assert _applied(url) == _all_migrations()


def test_stores_opened_together_on_a_half_migrated_schema_finish_it_once() -> None:
    from yoyo import get_backend, read_migrations  # type: ignore[import-untyped]

    with pg_schema("gs_fleet") as url:
        target = PgTarget.parse(url)
        backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://", 1))
        first = read_migrations(str(MIGRATIONS_DIR)).filter(lambda m: m.id == _all_migrations()[0])
        with backend.lock():
            backend.apply_migrations(backend.to_apply(first))  # what an older gateway version had applied
        backend.connection.close()
        assert _applied(url) == _all_migrations()[:1] and target.schema
        errors = _all_at_once(url, 8)
        assert errors == []
        assert _applied(url) == _all_migrations()


@pytest.mark.slow
def test_three_gateways_started_together_on_a_new_schema_all_serve(tmp_path: Path) -> None:
    with pg_schema("gs_fleet", create=False) as url, FakeUpstream(answer="fleet answer") as up:
        procs, ports = [], []
        try:
            for i in range(3):
                cfg = tmp_path / f"g{i}.toml"
                cfg.write_text(two_tier_toml(up.base_url, up.base_url) + f'\n[store]\nurl = "{url}"\n'
                               f'spool_path = "{tmp_path / f"spool{i}.jsonl"}"\n')
                ports.append(closed_port())
                procs.append(start_serve(cfg, ports[-1]))
            for proc, port in zip(procs, ports, strict=True):
                wait_healthy(proc, f"http://127.0.0.1:{port}", 60,
                             lambda p=proc: (stop_serve(p), p.stderr.read().decode())[1])  # type: ignore[union-attr]
            for port in ports:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                               json={"model": "gearshift/auto", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 200, r.text
        finally:
            for proc in procs:
                stop_serve(proc)
        store = PostgresDecisionStore(url)
        try:
            from gearshift.store.base import DecisionQuery

            assert len(store.query(DecisionQuery(limit=None))) == 3
        finally:
            store.close()
