"""Fixtures for the integration tests: a fresh PostgreSQL schema and Redis prefix per test (support/services.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.services import pg_schema, redis_prefix


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema("gs_integ") as url:
        yield url


@pytest.fixture
def redis_target() -> Iterator[tuple[str, str]]:
    with redis_prefix() as target:
        yield target
