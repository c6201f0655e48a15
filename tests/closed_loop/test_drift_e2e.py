"""Drift, live, through a real gateway: a saved score reference, control traffic that stays quiet, shifted traffic
that pages `drift` (strong share and cost up) or `collapse` (cheap share up, thumbs down) on webhook and /metrics."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from closed_loop.shadow_harness import WebhookReceiver, settings, wait_until
from gateway.harness import GatewayServer, deployment
from gearshift.gateway.app import create_app
from gearshift.routers.base import PromptLike, Router, RoutingScore, prompt_text
from gearshift.routers.reference import build_reference, save_reference
from support.fake_upstream import FakeUpstream
from support.services import redis_prefix

_LEVEL = re.compile(r"level (\d+)")


class LevelRouter(Router):
    """p_strong = N/100 for a prompt saying "level N": traffic whose score distribution a test sets exactly."""

    name = "level"
    version = "1"

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        return [RoutingScore(p_strong=int(_LEVEL.search(prompt_text(p)).group(1)) / 100,  # type: ignore[union-attr]
                             confidence=0.9, reason="level") for p in prompts]


def _levels(strong_share: float, n: int) -> list[int]:
    """n levels, evenly spread: `strong_share` of them in [50, 99] (strong at threshold 0.5), the rest in [1, 49]."""
    k = round(strong_share * n)
    return [50 + (i * 37) % 50 for i in range(k)] + [1 + (i * 29) % 49 for i in range(n - k)]


def _interleave(levels: list[int]) -> list[int]:
    hi, lo = [x for x in levels if x >= 50], [x for x in levels if x < 50]
    out: list[int] = []
    while hi or lo:
        if lo:
            out.append(lo.pop())
        if hi and (not lo or len(hi) / (len(hi) + len(lo)) >= 0.5 or len(out) % 3 == 0):
            out.append(hi.pop())
    return out


def _config(cheap: FakeUpstream, strong: FakeUpstream, db: Path, hook: WebhookReceiver, ref: Path) -> Any:
    cfg = settings(cheap, strong, db, slo={
        "enabled": True, "window_s": 600.0, "check_interval_s": 0.1, "min_events": 10, "strong_share": [0.0, 1.0],
        "escalation_rate": [0.0, 1.0], "webhook_url": hook.url,
        "drift": {"reference": str(ref), "min_samples": 120, "window_s": 600.0}})
    data = cfg.model_dump()
    data["tiers"][1]["deployments"] = [deployment("strong", strong, input_price_per_m=20.0, output_price_per_m=40.0)]
    from gearshift.gateway.settings import parse_settings

    return parse_settings(data, "test")


def _send(gw: GatewayServer, levels: list[int]) -> list[tuple[str, str]]:
    out = []
    with gw.client() as c:
        for i, lv in enumerate(levels):
            r = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [
                {"role": "user", "content": f"Question {i} at level {lv}: what is the answer?"}]})
            assert r.status_code == 200
            out.append((r.headers["x-gearshift-request-id"], r.headers["x-gearshift-tier"]))
    return out


def _reference(tmp_path: Path) -> Path:
    """What the router was calibrated on: 30% strong, English, short prompts like the control traffic."""
    levels = _levels(0.3, 1000)
    prompts = [f"Question {i} at level {lv}: what is the answer?" for i, lv in enumerate(levels)]
    ref = build_reference([lv / 100 for lv in levels], [0.5], ("cheap", "strong"), prompts=prompts,
                          quality_loss_rate=0.02, source="calibration set of the level router")
    return save_reference(tmp_path / "score_reference.json", ref)


def _drift_alerts(hook: WebhookReceiver) -> list[dict[str, Any]]:
    return [a for a in hook.alerts() if "reading=" in a["detail"]]


def test_control_traffic_is_quiet_and_a_strong_shift_with_cost_pages_drift(tmp_path: Path) -> None:
    ref = _reference(tmp_path)
    with FakeUpstream() as cheap, FakeUpstream() as strong, WebhookReceiver() as hook:
        with GatewayServer(create_app(_config(cheap, strong, tmp_path / "a.sqlite", hook, ref),
                                      router=LevelRouter())) as gw:
            _send(gw, _interleave(_levels(0.3, 200)))
            monitor = gw.gateway.closed_loop.monitor
            assert wait_until(lambda: monitor.drift.last is not None and monitor.drift.last.n == 200)
            monitor.check()
            assert monitor.drift.last.enough and monitor.drift.last.reading is None
            assert _drift_alerts(hook) == [] and monitor.alerts == []
            with gw.client() as c:
                assert 'gearshift_drift_reading{reading="stable"} 1.0' in c.get("/metrics").text

        with GatewayServer(create_app(_config(cheap, strong, tmp_path / "b.sqlite", hook, ref),
                                      router=LevelRouter())) as gw:
            _send(gw, _interleave(_levels(0.8, 200)))
            assert wait_until(lambda: any(a["kind"] == "drift" for a in _drift_alerts(hook)), 5.0)
            with gw.client() as c:
                metrics = c.get("/metrics").text
                board = c.get("/dashboard/api/summary").json()["drift"]
    assert board["reading"] == "drift" and board["reference"] == "calibration set of the level router"
    alert = next(a for a in _drift_alerts(hook) if a["kind"] == "drift")
    assert alert["direction"] == "high" and alert["segment"] == "*"
    assert alert["detail"].startswith("reading=drift")
    assert "reference: calibration set of the level router" in alert["detail"]
    assert alert["value"] > 0.2  # p_strong PSI
    assert 'gearshift_alerts_total{direction="high",kind="drift",segment="*"} 1.0' in metrics
    assert 'gearshift_drift_reading{reading="drift"} 1.0' in metrics
    psi = float(re.search(r'gearshift_drift_psi\{what="p_strong"\} (\S+)', metrics).group(1))  # type: ignore[union-attr]
    assert psi > 0.2


def test_cheap_shift_with_thumbs_down_pages_collapse(tmp_path: Path) -> None:
    ref = _reference(tmp_path)
    with FakeUpstream() as cheap, FakeUpstream() as strong, WebhookReceiver() as hook, GatewayServer(
            create_app(_config(cheap, strong, tmp_path / "c.sqlite", hook, ref), router=LevelRouter())) as gw:
        served = _send(gw, _interleave(_levels(0.03, 200)))
        # cheap share up, no quality evidence yet: a shift, not (yet) a collapse
        assert wait_until(lambda: any(a["detail"].startswith("reading=shift") for a in _drift_alerts(hook)))
        assert not any(a["kind"] == "collapse" for a in _drift_alerts(hook))
        with gw.client() as c:
            for rid, tier in served[::4]:  # a quarter of the answers get a thumbs down
                if tier == "cheap":
                    r = c.post("/v1/feedback", json={"request_id": rid, "signal": "thumbs_down"})
                    assert r.status_code == 201
        assert wait_until(lambda: any(a["kind"] == "collapse" for a in _drift_alerts(hook)), 5.0)
        with gw.client() as c:
            metrics = c.get("/metrics").text
    alert = next(a for a in _drift_alerts(hook) if a["kind"] == "collapse")
    assert alert["direction"] == "low" and alert["detail"].startswith("reading=collapse")
    assert "cheap-and-bad rate" in alert["detail"]
    assert 'gearshift_alerts_total{direction="low",kind="collapse",segment="*"} 1.0' in metrics
    assert 'gearshift_drift_reading{reading="collapse"} 1.0' in metrics


def _fleet_config(cheap: FakeUpstream, strong: FakeUpstream, db: Path, hook: WebhookReceiver, ref: Path,
                  redis: dict[str, Any] | None) -> Any:
    data = _config(cheap, strong, db, hook, ref).model_dump()
    if redis is not None:
        data["redis"] = redis
    from gearshift.gateway.settings import parse_settings

    return parse_settings(data, "test")


@pytest.mark.services
@pytest.mark.parametrize("shared", [True, False])
def test_a_fleet_reads_the_same_drift_and_pages_it_once(tmp_path: Path, shared: bool) -> None:
    """Two gateways each see the same strong shift. Sharing Redis, the one that claims the drift alert pages it
    (one webhook alert, one counter); the control without Redis pages once per gateway."""
    ref = _reference(tmp_path)
    with contextlib.ExitStack() as stack:
        redis = None
        if shared:
            url, prefix = stack.enter_context(redis_prefix())
            redis = {"url": url, "prefix": prefix}
        cheap, strong = stack.enter_context(FakeUpstream()), stack.enter_context(FakeUpstream())
        hook = stack.enter_context(WebhookReceiver())
        gateways = [stack.enter_context(GatewayServer(create_app(
            _fleet_config(cheap, strong, tmp_path / f"{n}.sqlite", hook, ref, redis), router=LevelRouter())))
            for n in ("a", "b")]
        for gw in gateways:
            _send(gw, _interleave(_levels(0.8, 150)))
        monitors = [gw.gateway.closed_loop.monitor for gw in gateways]
        assert wait_until(lambda: all(m.drift.last is not None and m.drift.last.reading == "drift"
                                      for m in monitors), 5.0)
        time.sleep(0.5)  # a few more checks: nothing else may page
        counts = []
        for gw in gateways:
            with gw.client() as c:
                found = re.search(r'gearshift_alerts_total\{direction="high",kind="drift",segment="\*"\} (\S+)',
                                  c.get("/metrics").text)
                counts.append(float(found.group(1)) if found else 0.0)
    drift = [a for a in _drift_alerts(hook) if a["kind"] == "drift"]
    if shared:
        assert len(drift) == 1 and sorted(counts) == [0.0, 1.0]
    else:
        assert len(drift) == 2 and counts == [1.0, 1.0]
