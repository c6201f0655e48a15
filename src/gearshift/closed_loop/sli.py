"""Routing and quality SLIs over rolling windows of routing decisions, and the alerts they raise.

Per window and per segment value ("language=de", "client=<key id>", ...): the strong-tier share and
the cascade escalation rate, each held to a target band (an excursion either way alerts: too low is as
suspicious as too high, e.g. a broken router sending everything cheap), and the shadow-judged quality
loss rate (the share of judged decisions served by a tier below the cheapest one the judge found good
enough) over its own, longer window, since only a sample is judged. Every band can be set per segment
(`SegmentSLO`). Over all traffic: routing collapse (normalised decision entropy near zero: one tier for
everything) and p_strong drift against a reference (PSI, KS).

Band checks work on counts (`Tally`: segment -> field -> count), so the same rules run on one process's
events and on the fleet's summed counters (`closed_loop.fleet`). A segment needs `min_events` decisions
(`min_judged` judged samples for quality loss) in the window before it can alert.

Segment outliers use the offline flag rule (`gearshift.evaluation.slices.FlagRule`): a segment is
flagged when its escalation or quality-loss rate exceeds `ratio` (2) times the overall rate, it has
at least `min_n` (30) decisions, and the excess is significant at z >= 3 under a binomial null at
the overall rate.
"""

from __future__ import annotations

import math
from collections import Counter, deque
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
class QualityEvent:
    """One shadow judgement of a served decision: `loss` when the served tier was below the judge's minimum."""

    timestamp: float
    loss: bool
    segments: Mapping[str, str] = field(default_factory=dict)


#: segment ("*" or "name=value") -> field -> count. Fields: n, strong, esc, t<tier index> (decisions);
#: judged, loss (shadow judgements).
Tally = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ConfigError(f"a target band needs 0 <= low <= high <= 1, got [{self.low}, {self.high}]")

    def direction(self, value: float) -> str | None:
        return "low" if value < self.low else "high" if value > self.high else None


@dataclass(frozen=True, slots=True)
class SegmentSLO:
    """Bands for one "name=value" segment; None keeps the global band."""

    strong_share: Band | None = None
    escalation_rate: Band | None = None
    quality_loss: Band | None = None


@dataclass(frozen=True)
class SLIConfig:
    """`segment_bands` overrides `strong_share` per "name=value" (code prompts may go strong more);
    `segments` overrides any band per "name=value" (and wins over `segment_bands`)."""

    window_s: float = 300.0
    n_tiers: int = 2
    strong_share: Band = Band(0.05, 0.6)
    escalation_rate: Band = Band(0.0, 0.2)
    quality_loss: Band = Band(0.0, 0.2)
    segment_bands: Mapping[str, Band] = field(default_factory=dict)
    segments: Mapping[str, SegmentSLO] = field(default_factory=dict)
    min_events: int = 30
    min_judged: int = 20
    quality_window_s: float = 3600.0
    collapse_entropy: float = 0.05
    drift: DriftConfig = field(default_factory=DriftConfig)
    flag_rule: FlagRule = field(default_factory=FlagRule)
    segment_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.quality_window_s <= 0 or self.n_tiers < 2 or min(self.min_events,
                                                                                        self.min_judged) < 1:
            raise ConfigError("SLI config needs window_s, quality_window_s > 0, n_tiers >= 2 and min_events, "
                              "min_judged >= 1")

    def band(self, kind: str, segment: str) -> Band:
        """The band `kind` ("strong_share", "escalation_rate", "quality_loss") is held to on `segment`."""
        own = self.segments.get(segment)
        band = getattr(own, kind) if own is not None else None
        if band is None and kind == "strong_share":
            band = self.segment_bands.get(segment)
        return band if band is not None else getattr(self, kind)  # type: ignore[no-any-return]

    def wanted(self, name: str) -> bool:
        return self.segment_names is None or name in self.segment_names


def decision_entropy(tiers: np.ndarray, n_tiers: int) -> float:
    """Shannon entropy of the tier mix divided by log(n_tiers): 0 = one tier for everything, 1 = uniform."""
    if tiers.size == 0:
        return 0.0
    p = np.bincount(tiers, minlength=n_tiers) / tiers.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(n_tiers))


def _keys(segments: Mapping[str, str], config: SLIConfig) -> list[str]:
    return [ALL, *(f"{k}={v}" for k, v in segments.items() if config.wanted(k))]


def _bump(tally: Tally, keys: Sequence[str], fields: Mapping[str, int]) -> None:
    for key in keys:
        slot = tally.setdefault(key, {})
        for f, by in fields.items():
            slot[f] = slot.get(f, 0) + by


def decision_fields(tier_index: int, escalated: bool, n_tiers: int) -> dict[str, int]:
    """What one decision adds to each of its segments' counts."""
    tier = min(max(tier_index, 0), n_tiers - 1)
    return {"n": 1, "strong": int(tier == n_tiers - 1), "esc": int(escalated), f"t{tier}": 1}


def quality_fields(loss: bool) -> dict[str, int]:
    return {"judged": 1, "loss": int(loss)}


def tally(events: Iterable[DecisionEvent | QualityEvent], config: SLIConfig) -> Tally:
    """Counts per segment; a `DecisionEvent` with a known `quality_loss` also counts as a judgement.

    Events are first counted by what they are (tier, escalated, loss, segments): a window of many decisions
    holds few distinct ones, so the per-segment work is done once per kind, not once per decision."""
    kinds: Counter[tuple[int, bool, bool | None, tuple[tuple[str, str], ...]]] = Counter()
    judged: Counter[tuple[bool, tuple[tuple[str, str], ...]]] = Counter()
    for e in events:
        if isinstance(e, QualityEvent):
            judged[(e.loss, tuple(e.segments.items()))] += 1
        else:
            kinds[(e.tier_index, e.escalated, e.quality_loss, tuple(e.segments.items()))] += 1
    out: Tally = {}
    for (tier, escalated, loss, segments), k in kinds.items():
        keys = _keys(dict(segments), config)
        _bump(out, keys, {f: k * by for f, by in decision_fields(tier, escalated, config.n_tiers).items()})
        if loss is not None:
            judged[(loss, segments)] += k
    for (loss, segments), k in judged.items():
        _bump(out, _keys(dict(segments), config), {"judged": k, "loss": k * int(loss)})
    return out


def count_alerts(decisions: Tally, quality: Tally, start: float, end: float, config: SLIConfig,
                 quality_start: float | None = None) -> list[Alert]:
    """Band, collapse and outlier alerts from counts: decisions over [start, end], judgements over
    [quality_start (default: start), end]."""
    out: list[Alert] = []

    def banded(kind: str, segment: str, hits: int, n: int, t0: float = start) -> None:
        band = config.band(kind, segment)
        value = hits / n
        way = band.direction(value)
        if way is not None:
            out.append(Alert(kind, segment, value, (band.low, band.high), t0, end, n, way))

    total = decisions.get(ALL, {})
    n_all = total.get("n", 0)
    if n_all >= config.min_events:
        banded("strong_share", ALL, total.get("strong", 0), n_all)
        banded("escalation_rate", ALL, total.get("esc", 0), n_all)
        counts = np.array([total.get(f"t{i}", 0) for i in range(config.n_tiers)], dtype=np.int64)
        p = counts[counts > 0] / n_all
        entropy = max(0.0, float(-(p * np.log(p)).sum() / math.log(config.n_tiers)))
        if entropy <= config.collapse_entropy:
            only = int(counts.argmax())
            out.append(Alert("collapse", ALL, entropy, (config.collapse_entropy, 1.0), start, end, n_all, "low",
                             f"tier {only} for {counts[only] / n_all:.1%} of decisions"))
        for seg, c in sorted(decisions.items()):
            if seg == ALL or c.get("n", 0) < config.min_events:
                continue
            banded("strong_share", seg, c.get("strong", 0), c["n"])
            banded("escalation_rate", seg, c.get("esc", 0), c["n"])
        out.extend(_outliers("escalation", decisions, "esc", "n", config.flag_rule, start, end))
    q0 = start if quality_start is None else quality_start
    for seg, c in sorted(quality.items(), key=lambda kv: (kv[0] != ALL, kv[0])):
        if c.get("judged", 0) >= config.min_judged:
            banded("quality_loss", seg, c.get("loss", 0), c["judged"], q0)
    out.extend(_outliers("quality_loss", quality, "loss", "judged", config.flag_rule, q0, end))
    return out


def window_tallies(events: Sequence[DecisionEvent], quality: Sequence[QualityEvent], config: SLIConfig
                   ) -> tuple[Tally, Tally]:
    """(decision counts, judgement counts); without separate judgements, the decisions' own `quality_loss`."""
    decided = tally(events, config)
    return decided, tally(quality, config) if quality else decided


def window_alerts(events: Sequence[DecisionEvent], start: float, end: float, config: SLIConfig,
                  reference: np.ndarray | None = None, quality: Sequence[QualityEvent] = (),
                  quality_start: float | None = None, tallies: tuple[Tally, Tally] | None = None) -> list[Alert]:
    """Alerts for one window of events (all assumed inside [start, end]) and of judgements (inside
    [quality_start, end]); `tallies`: their (decision, judgement) counts when the caller has them."""
    decided, judged = tallies or window_tallies(events, quality, config)
    out = count_alerts(decided, judged, start, end, config, quality_start)
    if len(events) < config.min_events:
        return out
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


def _outliers(name: str, tally: Tally, hits_field: str, n_field: str, rule: FlagRule, start: float,
              end: float) -> list[Alert]:
    total = tally.get(ALL, {})
    if not total.get(n_field, 0):
        return []
    overall = total.get(hits_field, 0) / total[n_field]
    out: list[Alert] = []
    for seg, c in sorted(tally.items()):
        n, count = c.get(n_field, 0), c.get(hits_field, 0)
        if seg != ALL and rule.flags(count, n, overall):
            out.append(Alert("segment_outlier", seg, count / n, (0.0, rule.ratio * overall), start, end, n,
                             "high", f"{name} rate vs overall {overall:.3f}"))
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
    """Streaming form for the gateway: `observe` each decision (and `observe_quality` each judgement),
    `check` every few seconds.

    Burst control: an alert is emitted to the sinks when its (kind, segment, direction) becomes active,
    and again only after a check in which it cleared and at least `cooldown_s` after it last paged, so a
    long or flapping excursion pages once per cooldown.
    """

    def __init__(self, config: SLIConfig, sinks: Sequence[AlertSink] = (),
                 reference: np.ndarray | Sequence[float] | None = None, cooldown_s: float = 0.0) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.reference = None if reference is None else np.asarray(reference, dtype=np.float64)
        self.cooldown_s = cooldown_s
        self._events: deque[DecisionEvent] = deque()
        self._quality: deque[QualityEvent] = deque()
        self._active: set[AlertKey] = set()
        self._paged: dict[AlertKey, float] = {}
        self.tallies: tuple[Tally, Tally] = ({}, {})  # the last `evaluate`'s (decision, judgement) counts

    def observe(self, event: DecisionEvent) -> None:
        self._events.append(event)

    def observe_quality(self, event: QualityEvent) -> None:
        self._quality.append(event)

    def window(self, now: float) -> tuple[list[DecisionEvent], list[QualityEvent]]:
        """This process's decisions and judgements inside their windows ending at `now` (older ones dropped)."""
        start, qstart = now - self.config.window_s, now - self.config.quality_window_s
        while self._events and self._events[0].timestamp < start:
            self._events.popleft()
        while self._quality and self._quality[0].timestamp < qstart:
            self._quality.popleft()
        return ([e for e in self._events if e.timestamp <= now], [q for q in self._quality if q.timestamp <= now])

    def evaluate(self, now: float) -> list[Alert]:
        """Every alert the window ending at `now` holds, active or not."""
        events, quality = self.window(now)
        self.tallies = window_tallies(events, quality, self.config)
        return window_alerts(events, now - self.config.window_s, now, self.config, self.reference, quality,
                             now - self.config.quality_window_s, self.tallies)

    def fresh(self, alerts: Sequence[Alert], now: float) -> list[Alert]:
        """The alerts that should page now: newly active and out of their cooldown; updates the active set."""
        keys = {alert_key(a) for a in alerts}
        out = [a for a in alerts if alert_key(a) not in self._active
               and now - self._paged.get(alert_key(a), -math.inf) >= self.cooldown_s]
        self._active = keys
        for a in out:
            self._paged[alert_key(a)] = now
        return out

    def emit(self, alerts: Sequence[Alert]) -> None:
        if alerts:
            for sink in self.sinks:
                sink.emit(alerts)

    def check(self, now: float) -> list[Alert]:
        """Evaluate the window ending at `now`; returns (and emits) the newly active alerts."""
        fresh = self.fresh(self.evaluate(now), now)
        self.emit(fresh)
        return fresh


AlertKey = tuple[str, str, str | None]


def alert_key(a: Alert) -> AlertKey:
    return (a.kind, a.segment, a.direction)
