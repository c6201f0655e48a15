"""Live decisions against a router's reference: PSI/KS on p_strong, tier shares, segment mix, and the reading rule."""

from __future__ import annotations

from typing import Any

import numpy as np

from gearshift.closed_loop.alerts import Alert
from gearshift.closed_loop.drift_report import DriftRules, categorical_psi, compare
from gearshift.closed_loop.drift_watch import DriftWatch
from gearshift.closed_loop.loop_settings import DriftSettings
from gearshift.routers.reference import build_reference

TIERS = ("cheap", "strong")
PRICE = {"cheap": 0.001, "strong": 0.01}


def _rows(scores: np.ndarray, *, language: str = "en", t0: float = 1000.0) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(scores):
        tier = "strong" if s >= 0.5 else "cheap"
        out.append({"request_id": f"r{i}", "time": t0 + i * 0.01, "tier": tier, "route": "auto", "status": "ok",
                    "score": float(s), "cost_usd": PRICE[tier], "thresholds": [0.5],
                    "segment": {"language": language, "length_bucket": "short", "has_code": False}})
    return out


def _reference(rng: np.random.Generator) -> Any:
    cal = rng.beta(2, 4, 3000)  # ~19% above 0.5
    return build_reference(cal, [0.5], TIERS, segments=[{"language": "en", "length_bucket": "short",
                                                          "has_code": "no"}] * 3000, quality_loss_rate=0.02)


def test_categorical_psi_is_zero_on_the_same_shares_and_grows_with_the_move() -> None:
    assert categorical_psi({"a": 0.7, "b": 0.3}, {"a": 70, "b": 30}) == 0.0
    small = categorical_psi({"a": 0.7, "b": 0.3}, {"a": 65, "b": 35})
    big = categorical_psi({"a": 0.7, "b": 0.3}, {"a": 30, "b": 70})
    assert 0 < small < 0.02 < 0.2 < big


def test_control_traffic_reads_stable() -> None:
    rng = np.random.default_rng(1)
    ref = _reference(rng)
    report = compare(ref, _rows(rng.beta(2, 4, 600)), DriftRules(min_samples=200))
    assert report.enough and report.reading is None and report.what == []
    assert report.scores is not None and report.scores.psi < 0.1


def test_strong_share_up_with_cost_reads_drift() -> None:
    rng = np.random.default_rng(2)
    ref = _reference(rng)
    report = compare(ref, _rows(rng.beta(5, 2, 600)), DriftRules(min_samples=200))
    assert report.reading == "drift"
    assert {"p_strong", "tier_shares"} <= set(report.what)
    assert report.strong_share is not None and report.strong_share > 0.6 > ref.strong_share
    assert report.cost_per_request is not None and report.cost_at_reference_shares is not None
    assert report.cost_per_request > 2 * report.cost_at_reference_shares
    assert report.summary().startswith("reading=drift")


def test_cheap_share_up_with_quality_down_reads_collapse_and_without_quality_shift() -> None:
    rng = np.random.default_rng(3)
    ref = _reference(rng)
    rows = _rows(rng.beta(1, 12, 600))  # almost everything cheap
    assert compare(ref, rows, DriftRules(min_samples=200)).reading == "shift"  # no quality evidence: not collapse
    bad = {r["request_id"] for r in rows[:120] if r["tier"] == "cheap"}  # 20% of decisions: cheap and bad
    report = compare(ref, rows, DriftRules(min_samples=200), bad)
    assert report.reading == "collapse"
    assert report.quality_loss_rate is not None and report.quality_loss_rate > 0.15


def test_a_new_input_mix_with_scores_held_reads_shift_and_few_decisions_nothing() -> None:
    rng = np.random.default_rng(4)
    ref = _reference(rng)
    report = compare(ref, _rows(rng.beta(2, 4, 600), language="de"), DriftRules(min_samples=200))
    assert report.reading == "shift" and report.what == ["segment_mix:language"]
    few = compare(ref, _rows(rng.beta(5, 2, 50)), DriftRules(min_samples=200))
    assert not few.enough and few.reading is None


class _Sink:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alerts: list[Alert]) -> None:
        self.alerts.extend(alerts)


def test_watch_pages_once_per_reading_and_warms_up_a_baseline_without_a_reference() -> None:
    rng = np.random.default_rng(5)
    sink = _Sink()
    watch = DriftWatch(DriftSettings(min_samples=100, window_s=1e6), TIERS, lambda: None, [sink])
    for r in _rows(rng.beta(2, 4, 100)):  # the first 100 routed decisions become the baseline
        watch.observe(r)
    assert watch.check(2000.0) == [] and watch.baseline is not None and "first 100" in (watch.source or "")
    for r in _rows(rng.beta(2, 4, 300), t0=2000.0):  # same distribution: quiet
        watch.observe(r)
    assert watch.check(2010.0) == []
    for r in _rows(rng.beta(6, 2, 900), t0=2010.0):  # strong share and cost up
        watch.observe(r)
    fired = watch.check(2030.0)
    assert [(a.kind, a.direction) for a in fired] == [("drift", "high")]
    assert "reading=drift" in fired[0].detail
    assert "reference: the first 100 routed decisions since start" in fired[0].detail
    assert watch.check(2031.0) == [] and len(sink.alerts) == 1  # still drifting: paged once


def test_a_shift_can_be_kept_off_the_pager() -> None:
    rng = np.random.default_rng(8)
    ref = _reference(rng)
    for page, expected in ((True, 1), (False, 0)):
        sink = _Sink()
        watch = DriftWatch(DriftSettings(min_samples=100, window_s=1e6, page_shift=page), TIERS, lambda: ref, [sink])
        for r in _rows(rng.beta(2, 4, 400), language="de"):
            watch.observe(r)
        watch.check(2000.0)
        assert watch.last is not None and watch.last.reading == "shift" and len(sink.alerts) == expected


def test_a_config_that_moves_the_thresholds_moves_the_expected_shares_not_a_drift() -> None:
    rng = np.random.default_rng(6)
    ref = _reference(rng)  # calibrated at 0.5
    live = rng.beta(2, 4, 600)
    rows = _rows(live)
    for r in rows:  # the gateway serves threshold 0.3 instead: more strong, as the reference's scores predict
        r["thresholds"] = [0.3]
        r["tier"] = "strong" if r["score"] >= 0.3 else "cheap"
        r["cost_usd"] = PRICE[r["tier"]]
    report = compare(ref, rows, DriftRules(min_samples=200))
    assert report.reading is None
    assert report.reference_strong_share is not None and report.reference_strong_share > 0.4


def test_the_decision_is_compared_not_what_a_cascade_or_a_category_route_made_of_it() -> None:
    rng = np.random.default_rng(7)
    ref = _reference(rng)
    rows = _rows(rng.beta(2, 4, 600))
    for r in rows[::2]:  # half the cheap answers escalated by the cascade: served strong, decided cheap
        if r["tier"] == "cheap":
            r["tier"], r["cascade"] = "strong", [{"tier": "cheap", "shipped": False}, {"tier": "strong"}]
    category = [{**r, "request_id": f"c{i}", "score": None, "tier": "strong"} for i, r in enumerate(rows[:300])]
    report = compare(ref, rows + category, DriftRules(min_samples=200))
    assert report.n == 600 and report.reading is None
    assert report.strong_share is not None and report.strong_share < 0.3


def test_quality_evidence_reaching_the_watch_bad_signals_and_labels_that_needed_more() -> None:
    from prometheus_client import CollectorRegistry

    from gearshift.closed_loop.loop import ClosedLoop
    from gearshift.closed_loop.loop_settings import SLOSettings
    from gearshift.closed_loop.monitor import GatewayMonitor
    from gearshift.store.labels import SignalEvent, SQLiteLabelStore

    monitor = GatewayMonitor(SLOSettings(enabled=True, log=False), list(TIERS), CollectorRegistry())
    loop = ClosedLoop(SQLiteLabelStore(":memory:"), monitor=monitor)
    try:
        # shadow judgements reach the monitor as `observe_judgement` (the runner's on_judged)
        monitor.observe_judgement({"request_id": "under", "tier": "cheap", "time": 5.0}, "strong")
        monitor.observe_judgement({"request_id": "fine", "tier": "cheap", "time": 5.0}, "cheap")
        monitor.observe_judgement({"request_id": "over", "tier": "strong", "time": 5.0}, "cheap")
        loop.note_signals([SignalEvent("down", 6.0, "thumbs_down", "explicit"),
                           SignalEvent("up", 6.0, "thumbs_up", "explicit"),
                           SignalEvent("left", 6.0, "abandonment", "implicit")])
        assert monitor.drift is not None and set(monitor.drift._bad) == {"under", "down"}
    finally:
        loop.store.close()
