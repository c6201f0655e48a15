"""The SLO monitor inside the real gateway: escalation excursions and collapse reach log, Prometheus and webhook."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from closed_loop.shadow_harness import KeywordRouter, WebhookReceiver, settings, wait_until
from gateway.harness import GatewayServer
from gearshift.errors import ConfigError
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import parse_settings
from support.fake_upstream import FakeUpstream


def _slo(url: str, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "window_s": 60.0, "check_interval_s": 0.1, "min_events": 6,
            "strong_share": [0.0, 1.0], "escalation_rate": [0.0, 0.2], "webhook_url": url, **extra}


def _send(gw: GatewayServer, prompts: list[str]) -> None:
    with gw.client() as c:
        for p in prompts:
            r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                     "messages": [{"role": "user", "content": p}]})
            assert r.status_code == 200


def test_escalation_excursion_and_collapse_alert(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gearshift.alerts")
    with FakeUpstream() as cheap, FakeUpstream() as strong, WebhookReceiver() as hook:
        # healthy mix: half HARD (strong), half easy (cheap), no escalations -> no alert
        cfg = settings(cheap, strong, tmp_path / "ok.sqlite", slo=_slo(hook.url))
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw:
            _send(gw, ["HARD one", "easy one"] * 4)
            assert wait_until(lambda gw=gw: gw.gateway.closed_loop.monitor.observed == 8)
            gw.gateway.closed_loop.monitor.check()
            assert gw.gateway.closed_loop.monitor.alerts == []

        # injected excursion: every prompt is one the router is unsure about -> escalated to strong
        cfg = settings(cheap, strong, tmp_path / "bad.sqlite", slo=_slo(hook.url))
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw:
            _send(gw, [f"UNSURE {i}" for i in range(8)])
            assert wait_until(lambda: {"escalation_rate", "collapse"} <= {a["kind"] for a in hook.alerts()}, 5.0)
            with gw.client() as c:
                metrics = c.get("/metrics").text
    kinds = {a["kind"]: a for a in hook.alerts() if a["segment"] == "*"}
    assert kinds["escalation_rate"]["direction"] == "high" and kinds["escalation_rate"]["value"] == 1.0
    assert any(a["segment"] == "length_bucket=short" and a["kind"] == "escalation_rate" for a in hook.alerts())
    assert kinds["collapse"]["value"] == 0.0 and "tier 1" in kinds["collapse"]["detail"]
    assert 'gearshift_alerts_total{direction="high",kind="escalation_rate",segment="*"} 1.0' in metrics
    assert any("escalation_rate" in r.getMessage() for r in caplog.records)
    # an excursion pages once, not on every check
    assert sum(1 for a in hook.alerts() if a["kind"] == "escalation_rate" and a["segment"] == "*") == 1


def test_collapse_onto_the_cheap_tier_alerts_without_escalations(tmp_path: Path) -> None:
    with FakeUpstream() as cheap, FakeUpstream() as strong, WebhookReceiver() as hook:
        cfg = settings(cheap, strong, tmp_path / "gw.sqlite", slo=_slo(hook.url))
        with GatewayServer(create_app(cfg, router=KeywordRouter())) as gw:
            _send(gw, [f"easy {i}" for i in range(8)])
            assert wait_until(lambda: any(a["kind"] == "collapse" for a in hook.alerts()), 5.0)
    assert "escalation_rate" not in {a["kind"] for a in hook.alerts()}
    assert "tier 0" in next(a for a in hook.alerts() if a["kind"] == "collapse")["detail"]


def test_slo_config_is_validated() -> None:
    base = {"tiers": [{"name": "a", "deployments": [{"model": "m", "base_url": "http://x"}]},
                      {"name": "b", "deployments": [{"model": "n", "base_url": "http://x"}]}]}
    with pytest.raises(ConfigError, match=r"slo\.strong_share"):
        parse_settings({**base, "slo": {"strong_share": [0.8, 0.2]}})
    with pytest.raises(ConfigError, match="webhook_url"):
        parse_settings({**base, "slo": {"webhook_url": "ftp://x"}})
    with pytest.raises(ConfigError, match="segment_rates"):
        parse_settings({**base, "shadow": {"segment_rates": {"fr": 0.5}}})
