"""Escalation SLIs: band excursions both ways, collapse, drift, segment outliers, and alert delivery."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gearshift.closed_loop.alerts import Alert, LogSink, PrometheusSink, WebhookSink
from gearshift.closed_loop.drift import check_drift, psi
from gearshift.closed_loop.sli import Band, DecisionEvent, SLIConfig, SLIMonitor, evaluate_stream, window_alerts

CONFIG = SLIConfig(window_s=60.0, strong_share=Band(0.2, 0.6), escalation_rate=Band(0.0, 0.2), min_events=30)


def _events(n: int, strong_share: float, seed: int = 0, t0: float = 0.0, escalated: float = 0.05,
            language: str = "en", p_shift: float = 0.0) -> list[DecisionEvent]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        strong = bool(rng.random() < strong_share)
        p = float(np.clip(rng.beta(2, 3) + p_shift, 0, 1))
        out.append(DecisionEvent(t0 + i * 50.0 / n, int(strong), {"language": language},
                                 escalated=bool(rng.random() < escalated), p_strong=p))
    return out


def _kinds(alerts: list[Alert]) -> set[tuple[str, str, str | None]]:
    return {(a.kind, a.segment, a.direction) for a in alerts}


def test_in_band_traffic_raises_nothing() -> None:
    assert window_alerts(_events(200, 0.4), 0, 60, CONFIG) == []


@pytest.mark.parametrize(("share", "direction"), [(0.9, "high"), (0.05, "low")])
def test_strong_share_excursion_either_way_alerts(share: float, direction: str) -> None:
    alerts = window_alerts(_events(200, share), 0, 60, CONFIG)
    assert ("strong_share", "*", direction) in _kinds(alerts)
    assert ("strong_share", "language=en", direction) in _kinds(alerts)
    alert = next(a for a in alerts if a.kind == "strong_share" and a.segment == "*")
    assert alert.band == (0.2, 0.6) and alert.n == 200


def test_escalation_rate_excursion_alerts() -> None:
    assert ("escalation_rate", "*", "high") in _kinds(window_alerts(_events(200, 0.4, escalated=0.5), 0, 60, CONFIG))
    cfg = SLIConfig(window_s=60.0, escalation_rate=Band(0.1, 0.3), min_events=30)
    assert ("escalation_rate", "*", "low") in _kinds(window_alerts(_events(200, 0.4, escalated=0.0), 0, 60, cfg))


def test_collapse_fires_when_one_tier_takes_everything() -> None:
    everything_cheap = _events(200, 0.0)
    assert ("collapse", "*", "low") in _kinds(window_alerts(everything_cheap, 0, 60, CONFIG))
    assert "collapse" not in {a.kind for a in window_alerts(_events(200, 0.4), 0, 60, CONFIG)}


def test_drift_fires_on_a_shifted_distribution_only() -> None:
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 3, 2000)
    same = check_drift(reference, rng.beta(2, 3, 2000))
    shifted = check_drift(reference, np.clip(rng.beta(2, 3, 2000) + 0.15, 0, 1))
    assert not same.drifted and same.psi < 0.05
    assert shifted.psi_drift and shifted.ks_drift
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-9)


def test_stream_uses_the_first_window_as_drift_reference() -> None:
    calm = _events(300, 0.4, seed=1, t0=0.0)
    shifted = _events(300, 0.4, seed=2, t0=60.0, p_shift=0.25)
    alerts = evaluate_stream(calm + shifted, CONFIG, step_s=60.0)
    drift = [a for a in alerts if a.kind == "drift"]
    assert drift and all(a.window_start >= 60.0 for a in drift)
    assert not [a for a in evaluate_stream(calm + _events(300, 0.4, seed=3, t0=60.0), CONFIG, 60.0)
                if a.kind == "drift"]


def test_segment_with_far_higher_escalation_is_flagged() -> None:
    events = _events(600, 0.4, escalated=0.05, language="en") + _events(60, 0.4, seed=5, escalated=0.6,
                                                                        language="ko")
    cfg = SLIConfig(window_s=60.0, escalation_rate=Band(0.0, 1.0), min_events=30)
    flagged = [a for a in window_alerts(events, 0, 60, cfg) if a.kind == "segment_outlier"]
    assert [a.segment for a in flagged] == ["language=ko"]


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_url() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_monitor_delivers_alerts_once_per_excursion(webhook_url: str, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    hook = WebhookSink(webhook_url)
    monitor = SLIMonitor(CONFIG, [hook, PrometheusSink(registry), LogSink()])
    for e in _events(200, 0.95):
        monitor.observe(e)
    first = monitor.check(now=50.0)
    assert ("strong_share", "*", "high") in _kinds(first)
    assert monitor.check(now=55.0) == []  # still out of band: not paged again
    assert len(_Hook.received) == 1
    sent = _Hook.received[0]["alerts"]
    assert {a["kind"] for a in sent} >= {"strong_share"} and hook.delivered == len(first)
    value = registry.get_sample_value("gearshift_alerts_total",
                                      {"kind": "strong_share", "segment": "*", "direction": "high"})
    assert value == 1.0
    assert "strong_share (high)" in caplog.text


def test_unreachable_webhook_is_counted_not_raised() -> None:
    sink = WebhookSink("http://127.0.0.1:9/none", timeout_s=0.5)
    sink.emit([Alert("collapse", "*", 0.0, None, 0.0, 1.0, 10)])
    assert sink.failures == 1 and sink.delivered == 0


def test_flapping_alert_pages_once_per_cooldown() -> None:
    monitor = SLIMonitor(CONFIG, cooldown_s=100.0)

    def feed(n: int, share: float, t0: float = 0.0) -> None:
        for e in _events(n, share, seed=n, t0=t0):
            monitor.observe(e)

    feed(200, 0.95)
    assert ("strong_share", "*", "high") in _kinds(monitor.check(now=50.0))
    feed(2000, 0.4)  # diluted back into the band: cleared
    assert monitor.check(now=51.0) == []
    feed(5000, 0.95)  # out again 2 s after the page: inside the cooldown, no page
    assert monitor.check(now=52.0) == []
    assert monitor.check(now=140.0) == []  # window empty: cleared
    feed(200, 0.95, t0=150.0)  # out again 150 s after the page: pages
    assert ("strong_share", "*", "high") in _kinds(monitor.check(now=200.0))


def test_segment_bands_override_each_sli() -> None:
    from gearshift.closed_loop.sli import SegmentSLO

    cfg = SLIConfig(segment_bands={"has_code=yes": Band(0.0, 0.9)},
                    segments={"language=de": SegmentSLO(quality_loss=Band(0.0, 0.05)),
                              "has_code=yes": SegmentSLO(escalation_rate=Band(0.0, 0.5))})
    assert cfg.band("quality_loss", "language=de") == Band(0.0, 0.05)
    assert cfg.band("strong_share", "language=de") == cfg.strong_share  # unset: the global band
    assert cfg.band("strong_share", "has_code=yes") == Band(0.0, 0.9)  # the bare strong-share form still works
    assert cfg.band("escalation_rate", "has_code=yes") == Band(0.0, 0.5)


def test_quality_loss_alerts_need_min_judged_per_segment() -> None:
    from gearshift.closed_loop.sli import QualityEvent

    cfg = SLIConfig(min_judged=10, quality_loss=Band(0.0, 0.2))
    losses = [QualityEvent(float(i), True, {"language": "de"}) for i in range(9)]
    fine = [QualityEvent(float(i), False, {"language": "en"}) for i in range(40)]
    assert [a.segment for a in window_alerts([], 0, 60, cfg, quality=losses + fine)] == []
    alerts = window_alerts([], 0, 60, cfg, quality=[*losses, QualityEvent(9.0, True, {"language": "de"}), *fine])
    assert [(a.kind, a.segment, a.n, a.value) for a in alerts] == [("quality_loss", "language=de", 10, 1.0)]
