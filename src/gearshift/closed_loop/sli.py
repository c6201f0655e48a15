"""Escalation SLIs over rolling windows of routing decisions, and the alerts they raise.

Per window and per segment value: the strong-tier share and the cascade escalation rate, each held
to a target band (an excursion either way alerts: too low is as suspicious as too high, e.g. a
broken router sending everything cheap). Over all traffic: routing collapse (normalised decision
entropy near zero: one tier for everything) and p_strong drift against a reference (PSI, KS).

Segment outliers use the offline flag rule (`gearshift.evaluation.slices.FlagRule`): a segment is
flagged when its escalation or quality-loss rate exceeds `ratio` (2) times the overall rate, it has
at least `min_n` (30) decisions, and the excess is significant at z >= 3 under a binomial null at
the overall rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from gearshift.closed_loop.alerts import Alert, AlertSink
from gearshift.closed_loop.drift import DriftConfig, check_drift
from gearshift.errors import ConfigError
from gearshift.evaluation.slices import FlagRule

ALL = "*"


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One routing decision as the gateway records it. `quality_loss` arrives later, if ever (None)."""

    timestamp: float
    tier_index: int
    segments: Mapping[str, str] = field(default_factory=dict)
    escalated: bool = False
    p_strong: float | None = None
    quality_loss: bool | None = None


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ConfigError(f"a target band needs 0 <= low <= high <= 1, got [{self.low}, {self.high}]")

    def direction(self, value: float) -> str | None:
        return "low" if value < self.low else "high" if value > self.high else None


@dataclass(frozen=True)
class SLIConfig:
    """`segment_bands` overrides `strong_share` per "name=value" (code prompts may go strong more)."""

    window_s: float = 300.0
    n_tiers: int = 2
    strong_share: Band = Band(0.05, 0.6)
    escalation_rate: Band = Band(0.0, 0.2)
    segment_bands: Mapping[str, Band] = field(default_factory=dict)
    min_events: int = 30
    collapse_entropy: float = 0.05
    drift: DriftConfig = field(default_factory=DriftConfig)
    flag_rule: FlagRule = field(default_factory=FlagRule)
    segment_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.n_tiers < 2 or self.min_events < 1:
            raise ConfigError("SLI config needs window_s > 0, n_tiers >= 2 and min_events >= 1")


def decision_entropy(tiers: np.ndarray, n_tiers: int) -> float:
    """Shannon entropy of the tier mix divided by log(n_tiers): 0 = one tier for everything, 1 = uniform."""
    if tiers.size == 0:
        return 0.0
    p = np.bincount(tiers, minlength=n_tiers) / tiers.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(n_tiers))


def _groups(events: Sequence[DecisionEvent], names: tuple[str, ...] | None) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        for name, value in e.segments.items():
            if names is None or name in names:
                groups.setdefault(f"{name}={value}", []).append(i)
    return groups


def window_alerts(events: Sequence[DecisionEvent], start: float, end: float, config: SLIConfig,
                  reference: np.ndarray | None = None) -> list[Alert]:
    """Alerts for one window of events (all assumed inside [start, end])."""
    if len(events) < config.min_events:
        return []
    top = config.n_tiers - 1
    tiers = np.array([min(max(e.tier_index, 0), top) for e in events], dtype=np.int64)
    strong = tiers == top
    esc = np.array([e.escalated for e in events], dtype=bool)
    out: list[Alert] = []

    def banded(kind: str, segment: str, values: np.ndarray, band: Band) -> None:
        value = float(values.mean())
        way = band.direction(value)
        if way is not None:
            out.append(Alert(kind, segment, value, (band.low, band.high), start, end, int(values.size), way))

    banded("strong_share", ALL, strong, config.strong_share)
    banded("escalation_rate", ALL, esc, config.escalation_rate)
    entropy = decision_entropy(tiers, config.n_tiers)
    if entropy <= config.collapse_entropy:
        only = int(np.bincount(tiers, minlength=config.n_tiers).argmax())
        out.append(Alert("collapse", ALL, entropy, (config.collapse_entropy, 1.0), start, end, len(events), "low",
                         f"tier {only} for {np.mean(tiers == only):.1%} of decisions"))
    groups = _groups(events, config.segment_names)
    for seg, idx in sorted(groups.items()):
        if len(idx) < config.min_events:
            continue
        ix = np.asarray(idx)
        banded("strong_share", seg, strong[ix], config.segment_bands.get(seg, config.strong_share))
        banded("escalation_rate", seg, esc[ix], config.escalation_rate)
    out.extend(_outliers(events, esc, groups, config.flag_rule, start, end))
    scores = np.array([e.p_strong for e in events if e.p_strong is not None], dtype=np.float64)
    if reference is not None and reference.size >= config.min_events and scores.size >= config.min_events:
        d = check_drift(reference, scores, config.drift)
        if d.psi_drift:
            out.append(Alert("drift", ALL, d.psi, (0.0, config.drift.psi_threshold), start, end, d.n_current,
                             "high", "psi of p_strong against the reference"))
        if d.ks_drift:
            out.append(Alert("drift", ALL, d.ks_statistic, (0.0, config.drift.ks_min_statistic), start, end,
                             d.n_current, "high", f"ks of p_strong against the reference (p={d.ks_p_value:.2g})"))
    return out


def _outliers(events: Sequence[DecisionEvent], esc: np.ndarray, groups: Mapping[str, list[int]], rule: FlagRule,
              start: float, end: float) -> list[Alert]:
    known = np.array([e.quality_loss is not None for e in events], dtype=bool)
    loss = np.array([bool(e.quality_loss) for e in events], dtype=bool)
    signals = [("escalation", esc, np.ones(len(events), dtype=bool)), ("quality_loss", loss, known)]
    out: list[Alert] = []
    for name, hits, mask in signals:
        if not mask.any():
            continue
        overall = float(hits[mask].mean())
        for seg, idx in sorted(groups.items()):
            ix = np.asarray(idx)
            ix = ix[mask[ix]]
            count = int(hits[ix].sum())
            if rule.flags(count, int(ix.size), overall):
                out.append(Alert("segment_outlier", seg, count / ix.size, (0.0, rule.ratio * overall), start, end,
                                 int(ix.size), "high", f"{name} rate vs overall {overall:.3f}"))
    return out


def evaluate_stream(events: Iterable[DecisionEvent], config: SLIConfig, step_s: float | None = None,
                    reference: np.ndarray | None = None) -> list[Alert]:
    """Roll a window of `config.window_s` over the events every `step_s` (default: half a window).

    Without a `reference`, the p_strong of the first window with enough decisions becomes it.
    """
    ordered = sorted(events, key=lambda e: e.timestamp)
    if not ordered:
        return []
    step = step_s or config.window_s / 2.0
    times = np.array([e.timestamp for e in ordered], dtype=np.float64)
    out: list[Alert] = []
    start = float(times[0])
    while start <= times[-1]:
        end = start + config.window_s
        lo, hi = np.searchsorted(times, start, side="left"), np.searchsorted(times, end, side="left")
        window = ordered[lo:hi]
        if reference is None and len(window) >= config.min_events:
            reference = np.array([e.p_strong for e in window if e.p_strong is not None], dtype=np.float64)
        out.extend(window_alerts(window, start, end, config, reference))
        start += step
    return out


class SLIMonitor:
    """Streaming form for the gateway: `observe` each decision, `check` every few seconds.

    An alert is emitted to the sinks when its (kind, segment, direction) becomes active, and again only
    after a check in which it cleared, so a long excursion pages once.
    """

    def __init__(self, config: SLIConfig, sinks: Sequence[AlertSink] = (),
                 reference: np.ndarray | Sequence[float] | None = None) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.reference = None if reference is None else np.asarray(reference, dtype=np.float64)
        self._events: deque[DecisionEvent] = deque()
        self._active: set[tuple[str, str, str | None]] = set()

    def observe(self, event: DecisionEvent) -> None:
        self._events.append(event)

    def check(self, now: float) -> list[Alert]:
        """Evaluate the window ending at `now`; returns (and emits) the newly active alerts."""
        start = now - self.config.window_s
        while self._events and self._events[0].timestamp < start:
            self._events.popleft()
        window = [e for e in self._events if e.timestamp <= now]
        alerts = window_alerts(window, start, now, self.config, self.reference)
        keys = {(a.kind, a.segment, a.direction) for a in alerts}
        fresh = [a for a in alerts if (a.kind, a.segment, a.direction) not in self._active]
        self._active = keys
        if fresh:
            for sink in self.sinks:
                sink.emit(fresh)
        return fresh
