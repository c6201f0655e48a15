"""Router hot reload: promote/rollback in the registry reach a running gateway without a restart.

Two registered heuristic versions: v1 (bias -8, threshold 0.5) sends everything to the cheap tier, v2
(bias +8, threshold 0.6) everything to the strong one, so the tier, the `x-gearshift-router` header and the
decision record's router_version/thresholds all show which version served a request.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.conftest import Upstreams
from gateway.harness import GatewayServer, deployment, serve
from gearshift.errors import ConfigError
from gearshift.gateway.settings import GatewaySettings, hash_key, parse_settings
from gearshift.routers.registry import make_router
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from gearshift.store.versions import SQLiteVersionRegistry, versions_dir
from support.fake_upstream import FakeUpstream, closed_port
from support.serve_process import start_serve, stop_serve, two_tier_toml, wait_healthy

ADMIN, APP = "sk-admin-reload", "sk-app-reload"
OPS = {"authorization": f"Bearer {ADMIN}"}  # with keys configured, health details, metrics and openapi need one
KEYS = [{"id": "ops", "sha256": hash_key(ADMIN), "scopes": ["inference", "admin"]},
        {"id": "app", "sha256": hash_key(APP), "scopes": ["inference"]}]
PROMPT = "Prove that there are infinitely many primes, step by step."


def _register(db: Path) -> tuple[str, str]:
    """v1 (always cheap) is the champion, v2 (always strong) a challenger; returns their refs."""
    reg = SQLiteVersionRegistry(db)
    try:
        d = versions_dir(db)
        v1 = reg.register("h", "heuristic", make_router("heuristic", bias=-8.0).save(d / "h1"),  # type: ignore[attr-defined]
                          thresholds=[0.5])
        v2 = reg.register("h", "heuristic", make_router("heuristic", bias=8.0).save(d / "h2"),  # type: ignore[attr-defined]
                          thresholds=[0.6])
        reg.promote(v1.ref)
        return v1.ref, v2.ref
    finally:
        reg.close()


def _registry_do(db: Path, op: str, ref: str | None = None) -> None:
    reg = SQLiteVersionRegistry(db)
    try:
        reg.promote(ref) if op == "promote" else reg.rollback()  # type: ignore[arg-type]
    finally:
        reg.close()


def _settings(ups: Upstreams, db: Path, **router: Any) -> GatewaySettings:
    return parse_settings({
        "tiers": [{"name": "cheap", "deployments": [deployment("cheap-a", ups.cheap_a)]},
                  {"name": "strong", "deployments": [deployment("strong", ups.strong)]}],
        "router": {"version": "champion", **router}, "store": {"path": str(db)}, "auth": {"keys": KEYS},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0}}, "test")


def _chat(c: httpx.Client) -> httpx.Response:
    r = c.post("/v1/chat/completions", headers={"authorization": f"Bearer {APP}"},
               json={"model": "gearshift/auto", "messages": [{"role": "user", "content": PROMPT}]})
    assert r.status_code == 200, r.text
    return r


def _served(c: httpx.Client) -> tuple[str, str]:
    """(tier answer, x-gearshift-router) of one request."""
    r = _chat(c)
    return r.json()["choices"][0]["message"]["content"], r.headers["x-gearshift-router"]


def _reload(c: httpx.Client, key: str = ADMIN) -> httpx.Response:
    return c.post("/v1/admin/router/reload", headers={"authorization": f"Bearer {key}"})


def _records(server: GatewayServer, db: Path) -> list[dict[str, Any]]:
    server.flush()
    store = SQLiteDecisionStore(db)
    try:
        return sorted(store.query(DecisionQuery(limit=None)), key=lambda r: r["time"])
    finally:
        store.close()


def test_reload_endpoint_follows_promote_and_rollback(upstreams: Upstreams, tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    v1, v2 = _register(db)
    server = serve(_settings(upstreams, db))
    try:
        with server.client() as c:
            assert _served(c) == ("cheap a answer", f"heuristic@{v1}")
            assert c.get("/healthz", headers=OPS).json()["router_version"] == v1
            _registry_do(db, "promote", v2)
            assert _served(c)[1] == f"heuristic@{v1}"  # nothing changes until the gateway is told
            r = _reload(c)
            assert r.status_code == 200, r.text
            assert r.json() == {"old": v1, "new": v2, "changed": True, "router": "heuristic", "thresholds": [0.6]}
            assert _served(c) == ("strong answer here", f"heuristic@{v2}")
            _registry_do(db, "rollback")
            assert _reload(c).json()["new"] == v1
            assert _served(c) == ("cheap a answer", f"heuristic@{v1}")
        rows = _records(server, db)
    finally:
        server.stop()
    seen = [(r["router_version"], r["thresholds"], r["tier"]) for r in rows]
    assert seen == [(v1, [0.5], "cheap"), (v1, [0.5], "cheap"), (v2, [0.6], "strong"), (v1, [0.5], "cheap")]


def test_reload_swaps_the_router_behind_routing_rules(upstreams: Upstreams, tmp_path: Path) -> None:
    """With a gate in front (gateway/rules_wiring.py) the reload reaches the router the rules call too."""
    db = tmp_path / "gw.sqlite"
    v1, v2 = _register(db)
    server = serve(_settings(upstreams, db, gate={"name": "heuristic", "low": 0.0, "high": 1.0}))
    try:
        with server.client() as c:
            r = _chat(c)
            assert (r.headers["x-gearshift-rule"], r.headers["x-gearshift-router"]) == ("router", f"heuristic@{v1}")
            _registry_do(db, "promote", v2)
            assert _reload(c).status_code == 200
            assert _served(c) == ("strong answer here", f"heuristic@{v2}")
        rows = _records(server, db)
    finally:
        server.stop()
    assert [(r["rule"], r["router_version"], r["thresholds"]) for r in rows] == [
        ("router", v1, [0.5]), ("router", v2, [0.6])]


def test_a_broken_champion_keeps_the_old_router_and_needs_the_admin_scope(upstreams: Upstreams,
                                                                           tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    v1, v2 = _register(db)
    server = serve(_settings(upstreams, db))
    try:
        with server.client() as c:
            for key, status, code in ((None, 401, "invalid_api_key"), (APP, 403, "insufficient_scope")):
                r = (c.post("/v1/admin/router/reload") if key is None else _reload(c, key))
                assert r.status_code == status and r.json()["error"]["code"] == code
            _registry_do(db, "promote", v2)
            shutil.rmtree(versions_dir(db) / "h2")
            r = _reload(c)
            assert r.status_code == 500, r.text
            err = r.json()["error"]
            assert set(err) == {"message", "type", "param", "code"} and err["code"] == "router_reload_failed"
            assert f"still serving {v1}" in err["message"] and "manifest.json" in err["message"]
            assert _served(c) == ("cheap a answer", f"heuristic@{v1}")
            assert c.get("/healthz", headers=OPS).json()["router_version"] == v1
            assert 'gearshift_router_reloads_total{result="error"} 1.0' in c.get("/metrics", headers=OPS).text
    finally:
        server.stop()


def test_reload_without_a_registered_version_is_a_400(upstreams: Upstreams, tmp_path: Path) -> None:
    settings = parse_settings({
        "tiers": [{"name": "cheap", "deployments": [deployment("cheap-a", upstreams.cheap_a)]},
                  {"name": "strong", "deployments": [deployment("strong", upstreams.strong)]}],
        "store": {"path": str(tmp_path / "gw.sqlite")}}, "test")
    server = serve(settings)
    try:
        with server.client() as c:
            r = c.post("/v1/admin/router/reload", headers={"content-type": "application/json"})  # keyless: JSON
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
            assert "/v1/admin/router/reload" not in c.get("/openapi.json", headers=OPS).json()["paths"]
    finally:
        server.stop()
    with pytest.raises(ConfigError, match="reload_interval_s"):
        parse_settings({**settings.model_dump(mode="json"), "router": {"reload_interval_s": 5}}, "test")


def test_polling_picks_up_a_promotion_without_any_call(upstreams: Upstreams, tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    v1, v2 = _register(db)
    server = serve(_settings(upstreams, db, reload_interval_s=0.1))
    try:
        with server.client() as c:
            assert _served(c)[1] == f"heuristic@{v1}"
            assert "/v1/admin/router/reload" in c.get("/openapi.json", headers=OPS).json()["paths"]
            _registry_do(db, "promote", v2)
            deadline = time.monotonic() + 10
            while _served(c)[1] != f"heuristic@{v2}":
                assert time.monotonic() < deadline, "polling never picked up the promotion"
                time.sleep(0.05)
            assert _served(c)[0] == "strong answer here"
            reloader = server.gateway.reloader
            assert reloader is not None and reloader.reloads == 1  # unchanged polls load nothing
    finally:
        server.stop()


def test_sighup_reloads_a_real_gearshift_serve(tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    v1, v2 = _register(db)
    with FakeUpstream(answer="cheap") as cheap, FakeUpstream(answer="strong") as strong:
        port = closed_port()  # after the upstreams took their ports
        cfg = tmp_path / "gearshift.toml"
        cfg.write_text(two_tier_toml(cheap.base_url, strong.base_url) + f"""
[router]
version = "champion"

[store]
path = "{db}"
""")
        proc = start_serve(cfg, port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(proc, url, 30, lambda: proc.stderr.read().decode())  # type: ignore[union-attr]
            with httpx.Client(base_url=url, timeout=10) as c:
                assert c.get("/healthz", headers=OPS).json()["router_version"] == v1
                _registry_do(db, "promote", v2)
                proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 30
                while c.get("/healthz", headers=OPS).json()["router_version"] != v2:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        stop_serve(proc)
                        raise AssertionError(f"no reload on SIGHUP (exit code {proc.returncode}):\n"
                                             f"{proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
                    time.sleep(0.1)
                r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                         "messages": [{"role": "user", "content": PROMPT}]})
                assert r.status_code == 200 and r.headers["x-gearshift-router"] == f"heuristic@{v2}"
                assert r.json()["choices"][0]["message"]["content"] == "strong"
        finally:
            stop_serve(proc)
