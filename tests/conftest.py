"""Shared pytest fixtures. Helpers add fixtures here additively."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fake_upstream import FakeUpstream


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started OpenAI-compatible fake upstream on 127.0.0.1 (see tests/support/fake_upstream.py)."""
    with FakeUpstream() as up:
        yield up


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's default decision store lives in the per-user data dir: keep tests out of the real one."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
