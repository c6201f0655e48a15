"""Live decisions against a router's reference distribution (`routers.reference`), and what the movement means.

Three comparisons over one window of decision records: p_strong (PSI on reference deciles, two-sample KS;
`closed_loop.drift`), the tier shares (PSI over tiers and a chi-square goodness-of-fit test against the
reference's shares) and the segment mix (the same per segment name: language, length bucket, code). A categorical
comparison drifts when PSI exceeds `psi_threshold` *and* the chi-square p-value is under `alpha`, so a small
window cannot page on noise and a huge one cannot page on a negligible move.

The reading rule, applied when anything drifted:

* **drift**: the strong share went up and the cost per request went up with it (against the cost the same traffic
  would have had at the reference's tier shares, at live per-tier prices): the router spends more;
* **collapse**: the cheap share went up and quality went down (the share of decisions served cheap with a bad-answer
  signal or a shadow label saying a stronger tier was needed is above the reference's quality-loss rate plus
  `quality_margin`): the router is saving money by giving worse answers;
* **shift**: the inputs or scores moved without either of those (e.g. a new language's traffic, shares held): worth
  a look, not yet a cost or quality problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from gearshift.closed_loop.drift import DriftConfig, DriftResult, psi
from gearshift.closed_loop.signals import segment_labels
from gearshift.routers.reference import MIX_SEGMENTS, ScoreReference

_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftRules:
    """`min_samples` routed decisions before anything is compared; see the module docstring for the rest."""

    psi_threshold: float = 0.2
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.1
    alpha: float = 0.01
    min_samples: int = 200
    quality_margin: float = 0.05
    cost_ratio: float = 1.05

    def score_config(self) -> DriftConfig:
        return DriftConfig(self.psi_threshold, self.ks_alpha, self.ks_min_statistic)


def categorical_psi(reference: Mapping[str, float], counts: Mapping[str, int]) -> float:
    """PSI of observed `counts` against reference shares, over the union of categories (floored like `drift.psi`)."""
    n = sum(counts.values())
    keys = sorted(set(reference) | set(counts))
    p = np.maximum(np.array([reference.get(k, 0.0) for k in keys], dtype=np.float64), _FLOOR)
    q = np.maximum(np.array([counts.get(k, 0) / n for k in keys], dtype=np.float64), _FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def goodness_of_fit(reference: Mapping[str, float], counts: Mapping[str, int]) -> float:
    """Chi-square p-value of `counts` under the reference shares (categories the reference never saw are pooled
    into one floor-probability cell, so a brand-new value is evidence, not a division by zero)."""
    from scipy.stats import chisquare

    n = sum(counts.values())
    keys = sorted(set(reference) | set(counts))
    expected = np.maximum(np.array([reference.get(k, 0.0) for k in keys], dtype=np.float64), _FLOOR)
    expected = expected / expected.sum() * n
    observed = np.array([counts.get(k, 0) for k in keys], dtype=np.float64)
    if len(keys) < 2:
        return 1.0
    return float(chisquare(observed, expected).pvalue)


def score_shift(reference: ScoreReference, scores: np.ndarray, rules: DriftRules) -> DriftResult:
    """PSI and KS of live p_strong against the reference's quantile sketch. The KS p-value is taken at the
    reference's true size `n` (not the sketch's length), so a small calibration set cannot make noise significant."""
    from scipy.stats import kstwo

    ref = reference.sample()
    value = psi(ref, scores)
    grid = np.concatenate([ref, scores])
    cdf_ref = np.searchsorted(np.sort(ref), grid, side="right") / ref.size
    cdf_cur = np.searchsorted(np.sort(scores), grid, side="right") / scores.size
    stat = float(np.max(np.abs(cdf_ref - cdf_cur)))
    m, k = reference.n, scores.size
    p_value = float(kstwo.sf(stat, max(1, round(m * k / (m + k)))))
    cfg = rules.score_config()
    return DriftResult(value, stat, p_value, m, int(k), value > cfg.psi_threshold,
                       p_value < cfg.ks_alpha and stat >= cfg.ks_min_statistic)


@dataclass(frozen=True)
class Shift:
    """One categorical comparison: `live`/`reference` shares per category."""

    psi: float
    p_value: float
    live: dict[str, float]
    reference: dict[str, float]
    drifted: bool

    def to_json(self) -> dict[str, Any]:
        return {"psi": round(self.psi, 6), "p_value": self.p_value, "drifted": self.drifted,
                "live": {k: round(v, 6) for k, v in self.live.items()}, "reference": dict(self.reference)}


def _shift(reference: Mapping[str, float], counts: Mapping[str, int], rules: DriftRules) -> Shift:
    n = sum(counts.values())
    psi = categorical_psi(reference, counts)
    p = goodness_of_fit(reference, counts)
    return Shift(psi, p, {k: c / n for k, c in sorted(counts.items())}, dict(reference),
                 psi > rules.psi_threshold and p < rules.alpha)


@dataclass(frozen=True)
class DriftReport:
    """A window compared with the reference. `reading` is None when nothing drifted (or too few decisions)."""

    n: int
    enough: bool
    scores: DriftResult | None = None
    tiers: Shift | None = None
    mix: dict[str, Shift] = field(default_factory=dict)
    strong_share: float | None = None
    reference_strong_share: float | None = None
    cost_per_request: float | None = None
    cost_at_reference_shares: float | None = None
    quality_loss_rate: float | None = None
    reference_quality_loss_rate: float | None = None
    reading: str | None = None

    @property
    def drifted(self) -> bool:
        return self.reading is not None

    @property
    def what(self) -> list[str]:
        """What moved: "p_strong", "tier_shares", "segment_mix:<name>"."""
        out = ["p_strong"] if self.scores is not None and self.scores.drifted else []
        if self.tiers is not None and self.tiers.drifted:
            out.append("tier_shares")
        out += [f"segment_mix:{k}" for k, s in self.mix.items() if s.drifted]
        return out

    def summary(self) -> str:
        if not self.enough:
            return f"{self.n} routed decisions: too few to compare"
        parts = [f"reading={self.reading or 'stable'}"]
        if self.strong_share is not None and self.reference_strong_share is not None:
            parts.append(f"strong share {self.strong_share:.1%} vs reference {self.reference_strong_share:.1%}")
        if self.cost_per_request is not None and self.cost_at_reference_shares:
            parts.append(f"cost/request ${self.cost_per_request:.6f} vs ${self.cost_at_reference_shares:.6f} at "
                         "the reference's tier shares")
        if self.quality_loss_rate is not None:
            ref = self.reference_quality_loss_rate
            parts.append(f"cheap-and-bad rate {self.quality_loss_rate:.1%}"
                         + (f" vs reference {ref:.1%}" if ref is not None else ""))
        if self.scores is not None:
            parts.append(f"p_strong PSI {self.scores.psi:.3f}, KS {self.scores.ks_statistic:.3f} "
                         f"(p={self.scores.ks_p_value:.2g})")
        if self.tiers is not None:
            parts.append(f"tier-share PSI {self.tiers.psi:.3f}")
        for name, s in self.mix.items():
            if s.drifted:
                parts.append(f"{name} mix PSI {s.psi:.3f}")
        moved = self.what
        parts.append("moved: " + (", ".join(moved) if moved else "nothing"))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "enough": self.enough, "reading": self.reading, "drifted": self.drifted,
                "moved": self.what, "strong_share": self.strong_share,
                "reference_strong_share": self.reference_strong_share, "cost_per_request": self.cost_per_request,
                "cost_at_reference_shares": self.cost_at_reference_shares,
                "quality_loss_rate": self.quality_loss_rate,
                "reference_quality_loss_rate": self.reference_quality_loss_rate,
                "p_strong": None if self.scores is None else {
                    "psi": round(self.scores.psi, 6), "ks_statistic": round(self.scores.ks_statistic, 6),
                    "ks_p_value": self.scores.ks_p_value, "drifted": self.scores.drifted,
                    "n_reference": self.scores.n_reference, "n_current": self.scores.n_current},
                "tier_shares": None if self.tiers is None else self.tiers.to_json(),
                "segment_mix": {k: s.to_json() for k, s in self.mix.items()}, "summary": self.summary()}


def decided_tier(row: Mapping[str, Any]) -> Any:
    """The tier the routing decision chose: a cascade's first rung, not the tier it escalated to."""
    steps = row.get("cascade") or []
    first = steps[0] if steps and isinstance(steps[0], Mapping) else None
    return first.get("tier") if first is not None and first.get("tier") is not None else row.get("tier")


class Decided(NamedTuple):
    """One routing decision as the comparison needs it (what the live watch keeps per request)."""

    time: float
    request_id: str
    tier: str
    score: float
    cost: float
    mix: tuple[str, ...]  # values of MIX_SEGMENTS, in that order
    thresholds: tuple[float, ...]


def decided(row: Mapping[str, Any]) -> Decided | None:
    """A decision record as a `Decided`, or None when it is no routing decision of the router: an error, a concrete
    model, or no score (a category route's request was never scored); the SLO monitor's rule, plus the score."""
    score, tier = row.get("score"), decided_tier(row)
    if score is None or tier is None or row.get("route") == "concrete" or row.get("status") == "error":
        return None
    labels = segment_labels(row.get("segment"))
    return Decided(float(row["time"]), str(row.get("request_id")), str(tier), float(score),
                   float(row.get("cost_usd") or 0.0), tuple(labels.get(n, "") for n in MIX_SEGMENTS),
                   tuple(float(t) for t in row.get("thresholds") or ()))


def compare(reference: ScoreReference, rows: Sequence[Mapping[str, Any]], rules: DriftRules | None = None,
            bad: Collection[str] = ()) -> DriftReport:
    """`rows` (decision records) against `reference`; `bad`: request ids with a bad-answer signal or a shadow label
    that needed a stronger tier than they got."""
    return compare_decided(reference, [d for d in map(decided, rows) if d is not None], rules, bad)


def compare_decided(reference: ScoreReference, rows: Sequence[Decided], rules: DriftRules | None = None,
                    bad: Collection[str] = ()) -> DriftReport:
    cfg = rules or DriftRules()
    tiers = list(reference.tiers)
    position = {t: i for i, t in enumerate(tiers)}
    rows = [d for d in rows if d.tier in position]
    n = len(rows)
    if n < cfg.min_samples:
        return DriftReport(n, False)
    scores = np.fromiter((d.score for d in rows), dtype=np.float64, count=n)
    score_drift = score_shift(reference, scores, cfg)
    idx = np.fromiter((position[d.tier] for d in rows), dtype=np.int64, count=n)
    counts = np.bincount(idx, minlength=len(tiers))
    reference = at_live_thresholds(reference, rows[-1].thresholds)
    tier_shift = _shift(dict(zip(tiers, reference.tier_shares, strict=True)),
                        {t: int(c) for t, c in zip(tiers, counts, strict=True)}, cfg)
    mix: dict[str, Shift] = {}
    for k, name in enumerate(MIX_SEGMENTS):
        ref_mix = reference.segment_mix.get(name)
        seen = {v: c for v, c in Counter(d.mix[k] for d in rows).items() if v}
        if ref_mix and seen:
            mix[name] = _shift(ref_mix, seen, cfg)
    costs = np.fromiter((d.cost for d in rows), dtype=np.float64, count=n)
    per_tier = np.array([costs[idx == i].mean() if (idx == i).any() else np.nan for i in range(len(tiers))])
    per_tier = _fill_costs(per_tier)
    at_ref = float(np.dot(reference.tier_shares, per_tier)) if np.all(np.isfinite(per_tier)) else None
    loss = 0.0
    if bad:
        hit = np.fromiter((d.request_id in bad for d in rows), dtype=bool, count=n)
        loss = float(np.mean(hit & (idx < len(tiers) - 1)))
    report = DriftReport(n, True, score_drift, tier_shift, mix, float(counts[-1] / n), reference.strong_share,
                         float(costs.mean()), at_ref, loss, reference.quality_loss_rate)
    return _read(report, cfg)


def at_live_thresholds(reference: ScoreReference, live: Sequence[float]) -> ScoreReference:
    """The reference's tier shares at the thresholds the gateway serves now (the newest decision's), read off its
    score sketch: a config that moves the thresholds moves the expected shares, and that is not drift."""
    from dataclasses import replace

    if not live or len(live) != len(reference.tiers) - 1 or tuple(float(t) for t in live) == reference.thresholds:
        return reference
    idx = np.searchsorted(np.asarray(live, dtype=np.float64), reference.sample(), side="right")
    shares = np.bincount(idx, minlength=len(reference.tiers)) / idx.size
    return replace(reference, thresholds=tuple(float(t) for t in live), tier_shares=tuple(float(s) for s in shares))


def _fill_costs(per_tier: np.ndarray) -> np.ndarray:
    """A tier the window never served borrows its cheaper neighbour's mean (else the next dearer one's)."""
    out = per_tier.copy()
    for i in range(out.size):
        if not np.isfinite(out[i]):
            known = [j for j in range(out.size) if np.isfinite(per_tier[j])]
            if known:
                below = [j for j in known if j < i]
                out[i] = per_tier[below[-1]] if below else per_tier[known[0]]
    return out


def _read(r: DriftReport, cfg: DriftRules) -> DriftReport:
    if not r.what:
        return r
    from dataclasses import replace

    strong_up = r.strong_share is not None and r.reference_strong_share is not None and \
        r.strong_share > r.reference_strong_share
    cost_up = r.cost_per_request is not None and r.cost_at_reference_shares is not None and \
        r.cost_per_request > r.cost_at_reference_shares * cfg.cost_ratio
    quality_down = r.quality_loss_rate is not None and \
        r.quality_loss_rate > (r.reference_quality_loss_rate or 0.0) + cfg.quality_margin
    cheap_up = r.strong_share is not None and r.reference_strong_share is not None and \
        r.strong_share < r.reference_strong_share
    shares_moved = (r.tiers is not None and r.tiers.drifted) or (r.scores is not None and r.scores.drifted)
    if shares_moved and strong_up and cost_up:
        return replace(r, reading="drift")
    if shares_moved and cheap_up and quality_down:
        return replace(r, reading="collapse")
    return replace(r, reading="shift")
