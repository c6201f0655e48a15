"""The dashboard behind the `admin` scope when the gateway has API keys, and open (saying so) when it has none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.harness import GatewayServer, deployment, serve
from gearshift.gateway.settings import hash_key, parse_settings
from support.fake_upstream import FakeUpstream

KEYS = [{"id": "ops", "sha256": hash_key("ops-secret"), "scopes": ["admin"]},
        {"id": "app", "sha256": hash_key("app-secret"), "scopes": ["inference"]}]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="hello") as up:
        yield up


def _serve(up: FakeUpstream, db: Path, **sections: object) -> GatewayServer:
    return serve(parse_settings({
        "tiers": [{"name": "cheap", "deployments": [deployment("cheap-a", up)]},
                  {"name": "strong", "deployments": [deployment("strong", up)]}],
        "store": {"path": str(db)}, **sections}, "test"))


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/api/summary?since=1h"])
def test_keys_configured_needs_an_admin_key(upstream: FakeUpstream, tmp_path: Path, path: str) -> None:
    server = _serve(upstream, tmp_path / "gw.sqlite", auth={"keys": KEYS})
    try:
        with httpx.Client(base_url=server.root, timeout=10) as c:
            none = c.get(path)
            wrong = c.get(path, headers={"authorization": "Bearer nope"})
            app = c.get(path, headers={"authorization": "Bearer app-secret"})
            ops = c.get(path, headers={"authorization": "Bearer ops-secret"})
    finally:
        server.stop()
    assert none.status_code == 401 and wrong.status_code == 401
    assert none.json()["error"]["type"] == "authentication_error"
    assert app.status_code == 403 and "admin" in app.json()["error"]["message"]
    assert ops.status_code == 200
    if path == "/dashboard":
        assert "admin</code> scope" in ops.text and "no API keys" not in ops.text
        assert "script-src 'self'" in ops.headers["content-security-policy"]


def test_open_gateway_serves_the_page_and_says_it_is_open(upstream: FakeUpstream, tmp_path: Path) -> None:
    server = _serve(upstream, tmp_path / "gw.sqlite")
    try:
        with httpx.Client(base_url=server.root, timeout=10) as c:
            page = c.get("/dashboard")
            js = c.get("/dashboard/static/chart.umd.js")
            bad = c.get("/dashboard/api/summary?since=yesterday")
    finally:
        server.stop()
    assert page.status_code == 200 and "dashboard is <b>open</b>" in page.text
    # empty stores: every section degrades to "none yet" instead of failing
    assert page.text.count("none yet") >= 6
    assert js.status_code == 200 and js.text.startswith("/*!\n * Chart.js v4.4.9")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"


def test_dashboard_can_be_turned_off(upstream: FakeUpstream, tmp_path: Path) -> None:
    server = _serve(upstream, tmp_path / "gw.sqlite", dashboard={"enabled": False})
    try:
        status = httpx.get(f"{server.root}/dashboard", timeout=10).status_code
    finally:
        server.stop()
    assert status == 404
