"""Fixtures: three fake upstreams (cheap-a, cheap-b, strong) shared per module, reset for every test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.harness import GatewayServer, make_settings, serve
from support.fake_upstream import FakeUpstream


@dataclass
class Upstreams:
    cheap_a: FakeUpstream
    cheap_b: FakeUpstream
    strong: FakeUpstream

    def all(self) -> list[FakeUpstream]:
        return [self.cheap_a, self.cheap_b, self.strong]


@pytest.fixture(scope="module")
def _upstreams() -> Iterator[Upstreams]:
    ups = Upstreams(FakeUpstream(answer="cheap a answer"), FakeUpstream(answer="cheap b answer"),
                    FakeUpstream(answer="strong answer here"))
    for up in ups.all():
        up.start()
    yield ups
    for up in ups.all():
        up.stop()


@pytest.fixture
def upstreams(_upstreams: Upstreams) -> Upstreams:
    for up in _upstreams.all():
        up.reset()
    return _upstreams


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "decisions.sqlite"


@pytest.fixture
def gateway(upstreams: Upstreams, db: Path) -> Iterator[GatewayServer]:
    server = serve(make_settings([upstreams.cheap_a, upstreams.cheap_b], upstreams.strong, db))
    yield server
    server.stop()
