"""Gateway seams: endpoint scopes, the OpenAPI document, the strong-share cap under exploration, streaming
finish reasons and the `serve` banner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from closed_loop.shadow_harness import KeywordRouter
from closed_loop.shadow_harness import settings as loop_settings
from gateway.harness import GatewayServer, deployment
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import hash_key, parse_settings
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour, FakeUpstream
from support.serve_process import two_tier_toml

KEYS = {"infer": ("sk-infer-0001", ["inference"]), "fb": ("sk-feedback-0002", ["inference", "feedback"]),
        "admin": ("sk-admin-0003", ["admin"])}


def _auth(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[name][0]}"}


def _keys(**caps: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [{"id": kid, "sha256": hash_key(raw), "scopes": scopes, **caps.get(kid, {})}
                     for kid, (raw, scopes) in KEYS.items()]}


def _rows(gw: GatewayServer) -> dict[str, dict[str, Any]]:
    gw.flush()
    store = gw.gateway.store
    assert store is not None
    return {r["request_id"]: r for r in store.query(DecisionQuery(limit=None))}


def test_feedback_needs_the_feedback_scope_and_triage_the_admin_scope(tmp_path: Path) -> None:
    with FakeUpstream(answer="cheap") as cheap, FakeUpstream(answer="strong") as strong:
        cfg = loop_settings(cheap, strong, tmp_path / "gw.sqlite", auth=_keys())
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            r = c.post("/v1/chat/completions", headers=_auth("fb"),
                       json={"model": "gearshift/auto", "messages": [{"role": "user", "content": "hi"}]})
            rid = r.headers["x-gearshift-request-id"]
            fb = {"request_id": rid, "signal": "thumbs_up"}
            denied = c.post("/v1/feedback", json=fb, headers=_auth("infer"))
            assert denied.status_code == 403 and "feedback" in denied.json()["error"]["message"]
            assert c.post("/v1/feedback", json=fb).status_code == 401
            assert c.post("/v1/feedback", json=fb, headers=_auth("fb")).status_code == 201
            for name in ("infer", "fb"):
                assert c.get("/v1/triage", headers=_auth(name)).status_code == 403
                assert c.post("/v1/triage/1/label", json={"label": "skip"}, headers=_auth(name)).status_code == 403
            assert c.get("/v1/triage", headers=_auth("admin")).status_code == 200
            assert c.post("/v1/triage/1/label", json={"label": "skip"}, headers=_auth("admin")).status_code == 404


def test_openapi_documents_closed_loop_and_dashboard_and_survives_fuzzing(tmp_path: Path) -> None:
    with FakeUpstream(answer="cheap") as cheap, FakeUpstream(answer="strong") as strong:
        cfg = loop_settings(cheap, strong, tmp_path / "gw.sqlite")
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw:
            doc = httpx.get(gw.root + "/openapi.json", timeout=5).json()
            assert {"/v1/feedback", "/v1/triage", "/v1/triage/{item_id}/label", "/dashboard",
                    "/dashboard/api/summary", "/metrics", "/healthz"} <= set(doc["paths"])
            schema = schemathesis.openapi.from_url(gw.root + "/openapi.json")
            ops = [r.ok() for r in schema.get_all_operations()]
            fuzzed = [op for op in ops if op.path.startswith(("/v1/feedback", "/v1/triage", "/dashboard"))]
            assert len(fuzzed) == 5
            for op in fuzzed:
                @given(case=op.as_strategy())
                @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
                def run(case: Any) -> None:
                    case.call_and_validate(base_url=gw.root, additional_checks=[not_a_server_error],
                                           excluded_checks=[positive_data_acceptance])

                run()
    # without a closed loop or dashboard the document does not promise their routes
    with FakeUpstream() as up:
        plain = parse_settings({"tiers": [{"name": n, "deployments": [deployment(n, up)]} for n in ("a", "b")],
                                "store": {"enabled": False}, "dashboard": {"enabled": False},
                                "signals": {"enabled": False}, "slo": {"enabled": False}}, "test")
        with GatewayServer(create_app(plain)) as gw:
            paths = set(httpx.get(gw.root + "/openapi.json", timeout=5).json()["paths"])
            assert "/v1/feedback" not in paths and "/dashboard" not in paths and "/healthz" in paths


def _three_tiers(up: FakeUpstream, db: Path, **sections: Any) -> Any:
    data: dict[str, Any] = {
        "tiers": [{"name": n, "deployments": [deployment(n, up)]} for n in ("cheap", "mid", "strong")],
        "router": {"name": "heuristic", "thresholds": [0.3, 0.6], "min_confidence": 0.0},
        "store": {"path": str(db)}, "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "signals": {"enabled": False}, "slo": {"enabled": False}, "shadow": {"enabled": False},
    }
    data.update(sections)
    return parse_settings(data, "test")


def test_strong_share_cap_keeps_the_logged_propensity_of_the_served_tier(tmp_path: Path) -> None:
    eps = 0.3
    with FakeUpstream(answer="ok") as up:
        cfg = _three_tiers(up, tmp_path / "gw.sqlite", exploration={"epsilon": eps, "seed": 7},
                           auth=_keys(fb={"max_strong_share": 0.5, "strong_share_window": 4}))
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            ids = [c.post("/v1/chat/completions", headers=_auth("fb"), json={
                "model": "gearshift/auto", "messages": [{"role": "user", "content": f"HARD question {i}"}]}
            ).headers["x-gearshift-request-id"] for i in range(12)]
            rows = _rows(gw)
    served = [rows[i] for i in ids]
    capped = [r for r in served if "strong-tier share cap" in r["reason"]]
    assert capped, "the key's cap never moved a request"
    for r in served:
        probs = r["tier_probabilities"]
        assert probs is not None and sum(probs) == pytest.approx(1.0)
        idx = ["cheap", "mid", "strong"].index(r["tier"])
        assert r["propensity"] == pytest.approx(probs[idx])  # the probability of the tier actually served
    for r in capped:  # the draw's strong mass (1 - 2 eps/3) moved to "mid", cheap keeps eps/3
        assert r["tier"] == "mid"
        assert r["tier_probabilities"] == pytest.approx([eps / 3, 1 - eps / 3, 0.0])
        assert r["propensity"] == pytest.approx(1 - eps / 3)
    uncapped_strong = [r for r in served if r["tier"] == "strong"]
    assert uncapped_strong and all(r["propensity"] == pytest.approx(1 - 2 * eps / 3) for r in uncapped_strong)


def test_streamed_answers_record_the_finish_reason(tmp_path: Path) -> None:
    with FakeUpstream(answer="a long answer cut short") as up:
        up.script(Behaviour(finish_reason="length"))
        cfg = _three_tiers(up, tmp_path / "gw.sqlite")
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw, gw.client() as c:
            r = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "stream": True,
                                                       "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200 and "[DONE]" in r.text
            r2 = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "stream": True,
                                                        "messages": [{"role": "user", "content": "again"}]})
            rows = _rows(gw)
    assert rows[r.headers["x-gearshift-request-id"]]["finish_reason"] == "length"
    assert rows[r2.headers["x-gearshift-request-id"]]["finish_reason"] == "stop"


def test_serve_banner_shows_the_deployments_of_each_tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    from gearshift.cli import main

    with FakeUpstream() as up:
        cfg = tmp_path / "gw.toml"
        cfg.write_text(two_tier_toml(up.base_url, up.base_url, names=("small-a", "big-b"), model="m") + """
[store]
enabled = false
""", encoding="utf-8")
        monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: None)  # the banner, not the server
        assert main(["serve", "--config", str(cfg), "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "cheap=[small-a]" in err and "strong=[big-b]" in err, err
