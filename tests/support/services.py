"""The local PostgreSQL and Redis servers for the store and scale-out tests: reach them, isolate, clean up.

Each test run gets its own PostgreSQL schema (created, then dropped with CASCADE) and its own Redis key
prefix (keys deleted afterwards). Without the servers the tests skip with a message naming the command
that starts them; under CI (`CI=true`, set by .ci/run, which starts both first) a missing server fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gearshift.config import get_env

PG_BASE = get_env("GEARSHIFT_TEST_PG", "postgresql://root@127.0.0.1:5432/test") or ""
REDIS_URL = get_env("GEARSHIFT_TEST_REDIS", "redis://127.0.0.1:6379/0") or ""
_PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
_REDIS_START = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no"


def _unavailable(what: str, exc: BaseException, start: str) -> None:
    msg = f"{what} is not reachable ({exc}); start it with: {start}"
    if get_env("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@contextmanager
def pg_schema(prefix: str = "gs_test", *, create: bool = True) -> Iterator[str]:
    """A store URL pointing at a fresh schema (`create=False`: a name no schema has yet), dropped on exit."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        conn = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL at {PG_BASE}", exc, _PG_START)
        raise
    try:
        if create:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{PG_BASE}?schema={schema}"
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


@contextmanager
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(redis url, unique key prefix); every key under the prefix is deleted on exit."""
    import redis

    prefix = f"gs-test-{uuid.uuid4().hex[:10]}:"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        _unavailable(f"Redis at {REDIS_URL}", exc, _REDIS_START)
        raise
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()
