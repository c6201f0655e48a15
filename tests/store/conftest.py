"""Store fixtures: the same tests run against SQLite and the real local PostgreSQL (see support/services.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.services import pg_schema, redis_prefix


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL for each backend; the contract suite runs once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        with pg_schema() as url:
            yield url


@pytest.fixture
def redis_target() -> Iterator[tuple[str, str]]:
    with redis_prefix() as target:
        yield target
