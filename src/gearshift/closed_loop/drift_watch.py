"""Drift, live: the gateway's routed decisions over the last `window_s` against the serving router's reference.

Fed by the SLO monitor (`observe` per finished decision, `observe_bad` per bad-answer signal or shadow label that
needed a stronger tier) and checked on the monitor's timer. A reading (`drift_report`: drift, collapse, shift) is
raised once through the monitor's sinks (log, Prometheus, webhook) when it appears, and again only after a check
in which it cleared, as the SLIs do. `reference` is asked at every check, so a router reload brings its own
reference; when it gives none, the first `min_samples` routed decisions after start become the baseline.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gearshift.closed_loop.alerts import Alert, AlertSink
from gearshift.closed_loop.drift_report import Decided, DriftReport, DriftRules, compare_decided, decided
from gearshift.closed_loop.loop_settings import DriftSettings
from gearshift.routers.reference import MIX_SEGMENTS, ScoreReference, build_reference
from gearshift.tracing.metrics import DriftMetrics

log = logging.getLogger(__name__)

READINGS = ("drift", "collapse", "shift", "stable")
#: the newest decisions a window keeps: enough for PSI/KS to see a few-percent move, bounded at any request rate
MAX_ROWS = 20_000


def rules_of(settings: DriftSettings) -> DriftRules:
    return DriftRules(psi_threshold=settings.psi_threshold, ks_alpha=settings.ks_alpha,
                      ks_min_statistic=settings.ks_min_statistic, alpha=settings.alpha,
                      min_samples=settings.min_samples, quality_margin=settings.quality_margin,
                      cost_ratio=settings.cost_ratio)


def alert_of(report: DriftReport, start: float, end: float, psi_threshold: float,
             source: str = "the router's reference") -> Alert | None:
    """The alert a report raises: kind "drift" (reading drift: strong share and cost up, direction "high"; reading
    shift: direction None) or "collapse" (cheap share up, quality down: direction "low"); the detail says which."""
    if report.reading is None:
        return None
    value = report.scores.psi if report.scores is not None else (report.tiers.psi if report.tiers else 0.0)
    kind, way = {"drift": ("drift", "high"), "collapse": ("collapse", "low")}.get(report.reading, ("drift", None))
    return Alert(kind, "*", value, (0.0, psi_threshold), start, end, report.n, way,
                 f"{report.summary()} (reference: {source})")


class DriftWatch:
    def __init__(self, settings: DriftSettings, tier_names: Sequence[str],
                 reference: Callable[[], ScoreReference | None], sinks: Sequence[AlertSink],
                 metrics: DriftMetrics | None = None) -> None:
        self.settings = settings
        self.rules = rules_of(settings)
        self.tier_names = list(tier_names)
        self.reference = reference
        self.sinks = list(sinks)
        self.metrics = metrics
        self.baseline: ScoreReference | None = None
        self.last: DriftReport | None = None
        self.source: str | None = None
        self._rows: deque[Decided] = deque(maxlen=MAX_ROWS)
        self._bad: dict[str, float] = {}
        self._active: str | None = None

    def observe(self, record: Mapping[str, Any]) -> None:
        d = decided(record)
        if d is not None:
            self._rows.append(d)

    def observe_bad(self, request_id: str, when: float) -> None:
        """A bad answer (implicit signal, feedback) or a shadow label saying a stronger tier was needed."""
        self._bad[request_id] = when
        if len(self._bad) > MAX_ROWS:  # oldest first (insertion order): bounded like the window
            del self._bad[next(iter(self._bad))]

    def current_reference(self) -> ScoreReference | None:
        try:
            ref = self.reference()
        except Exception:  # a missing or unreadable reference file must not stop the monitor
            log.exception("could not read the router's score reference")
            ref = None
        if ref is not None and len(ref.tiers) == len(self.tier_names):  # tiers match by position, cheap to strong
            self.source = ref.source or "the router's saved reference"
            return ref if list(ref.tiers) == self.tier_names else replace(ref, tiers=tuple(self.tier_names))
        return self._warm_up()

    def _warm_up(self) -> ScoreReference | None:
        """The first `min_samples` routed decisions after start, as the baseline (kept until restart)."""
        if self.baseline is None:
            first = [d for d in self._rows if d.tier in self.tier_names][: self.settings.min_samples]
            if len(first) < self.settings.min_samples or len(first[-1].thresholds) != len(self.tier_names) - 1:
                return None
            self.baseline = build_reference([d.score for d in first], first[-1].thresholds, self.tier_names,
                                            segments=[dict(zip(MIX_SEGMENTS, d.mix, strict=True)) for d in first],
                                            source=f"the first {len(first)} routed decisions since start")
            self._rows = deque((d for d in self._rows if d.time > first[-1].time), maxlen=MAX_ROWS)
        self.source = self.baseline.source
        return self.baseline

    def check(self, now: float, emit: bool = True) -> list[Alert]:
        """The fresh alert (a reading that just appeared), emitted through the sinks unless `emit` is False (a
        fleet's monitor claims it first, so the fleet pages once)."""
        start = now - self.settings.window_s
        while self._rows and self._rows[0].time < start:
            self._rows.popleft()
        self._bad = {k: t for k, t in self._bad.items() if t >= start}
        ref = self.current_reference()
        if ref is None:
            return []
        window = [d for d in self._rows if d.time <= now]
        report = compare_decided(ref, window, self.rules, self._bad.keys())
        self.last = report
        self._export(report)
        alert = alert_of(report, start, now, self.settings.psi_threshold, self.source or "the router's reference")
        quiet = report.reading == "shift" and not self.settings.page_shift
        fresh = [alert] if alert is not None and report.reading != self._active and not quiet else []
        self._active = report.reading
        if fresh and emit:
            self.emit(fresh)
        return fresh

    def emit(self, alerts: list[Alert]) -> None:
        for sink in self.sinks:
            sink.emit(alerts)

    def _export(self, report: DriftReport) -> None:
        m = self.metrics
        if m is None or not report.enough:
            return
        m.decisions.set(report.n)
        if report.scores is not None:
            m.psi.labels(what="p_strong").set(report.scores.psi)
        if report.tiers is not None:
            m.psi.labels(what="tier_shares").set(report.tiers.psi)
        for name, s in report.mix.items():
            m.psi.labels(what=f"segment_mix:{name}").set(s.psi)
        for r in READINGS:
            m.reading.labels(reading=r).set(1.0 if (report.reading or "stable") == r else 0.0)
