"""Thresholds from the user's own traffic: hit a strong-call share, per-tier shares, or an average cost.

Benchmark-calibrated thresholds rarely transfer: a router's scores shift with the traffic mix. So the
thresholds are fitted on scores of the traffic the policy will see. A threshold t sends p_strong >= t
up (`TierPolicy` semantics). With tied scores only some shares are achievable; we pick the nearest one
and fail clearly when it is further from the target than the tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gearshift.errors import ConfigError
from gearshift.routers.policy import TierPolicy

#: Threshold above every possible p_strong: "never go up".
NEVER = float(np.nextafter(1.0, 2.0))


@dataclass(frozen=True, slots=True)
class Calibration:
    """Thresholds and what they achieve on the calibration scores (`shares[i]`: fraction in tier i)."""

    tiers: tuple[str, ...]
    thresholds: tuple[float, ...]
    shares: tuple[float, ...]
    mean_cost: float | None
    n: int

    def policy(self, ood_escalate: float | None = None, min_confidence: float | None = None) -> TierPolicy:
        return TierPolicy(tiers=self.tiers, thresholds=self.thresholds,
                          ood_escalate=ood_escalate, min_confidence=min_confidence)


def _scores(scores: np.ndarray | Sequence[float]) -> np.ndarray:
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ConfigError("calibration needs a non-empty 1-D array of p_strong scores")
    if not np.all(np.isfinite(p)) or np.any((p < 0.0) | (p > 1.0)):
        raise ConfigError("calibration scores must be p_strong values within [0, 1]")
    return p


def _tier_names(tiers: Sequence[str] | None, count: int) -> tuple[str, ...]:
    if tiers is None:
        return ("cheap", "strong") if count == 2 else tuple(f"tier{i}" for i in range(count))
    if len(tiers) != count:
        raise ConfigError(f"{count} tiers expected, got names {list(tiers)}")
    return tuple(tiers)


def _achievable(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, share above each): every share a threshold can give, from 0 up to 1."""
    desc = np.unique(p)[::-1]  # distinct values, high to low
    counts = p.size - np.searchsorted(np.sort(p), desc, side="left")
    # the threshold for "the top group down to value v" is midway to the next lower value (0 below the last)
    lower = np.append(desc[1:], 0.0)
    mids = np.where(lower < desc, (desc + lower) / 2.0, desc)
    mids[-1] = 0.0
    thresholds = np.concatenate(([NEVER], mids))
    shares = np.concatenate(([0.0], counts / p.size))
    return thresholds, shares


def _threshold_for_top_share(p: np.ndarray, target: float, tolerance: float) -> float:
    if not 0.0 <= target <= 1.0:
        raise ConfigError(f"target share must be within [0, 1], got {target}")
    thresholds, shares = _achievable(p)
    best = int(np.argmin(np.abs(shares - target)))  # first minimum: the lower share on a tie
    if abs(shares[best] - target) > max(tolerance, 1.0 / p.size) + 1e-12:
        near = ", ".join(f"{s:.3f}" for s in shares[max(best - 2, 0): best + 3])
        raise ConfigError(
            f"no threshold sends {target:.3f} of these {p.size} scores up: tied scores allow only shares "
            f"such as {near}"
        )
    return float(thresholds[best])


def _result(p: np.ndarray, tiers: tuple[str, ...], thresholds: list[float],
            costs: np.ndarray | None) -> Calibration:
    policy = TierPolicy(tiers=tiers, thresholds=tuple(thresholds))
    idx = policy.tier_indices(p)
    shares = tuple(float(s) for s in np.bincount(idx, minlength=len(tiers)) / p.size)
    mean_cost = None if costs is None else float(costs[np.arange(p.size), idx].mean())
    return Calibration(tiers=tiers, thresholds=tuple(thresholds), shares=shares, mean_cost=mean_cost, n=p.size)


def calibrate_share(
    scores: np.ndarray | Sequence[float], strong_share: float, *,
    tiers: Sequence[str] | None = None, tolerance: float = 0.02,
) -> Calibration:
    """Two tiers: the threshold sending `strong_share` of these scores to the strong tier."""
    return calibrate_shares(scores, [1.0 - strong_share, strong_share], tiers=tiers, tolerance=tolerance)


def calibrate_shares(
    scores: np.ndarray | Sequence[float], shares: Sequence[float], *,
    tiers: Sequence[str] | None = None, tolerance: float = 0.02,
) -> Calibration:
    """N tiers: `shares[i]` is the wanted fraction in tier i (cheap to strong), summing to 1."""
    p = _scores(scores)
    s = np.asarray(shares, dtype=np.float64)
    if s.ndim != 1 or s.size < 2 or np.any(s < 0) or abs(float(s.sum()) - 1.0) > 1e-6:
        raise ConfigError(f"shares must be >= 2 non-negative numbers summing to 1, got {list(shares)}")
    names = _tier_names(tiers, s.size)
    # fraction at or above tier i = sum of shares[i:], for i = 1..N-1 (non-increasing, so thresholds rise)
    above = np.clip(np.cumsum(s[::-1])[::-1][1:], 0.0, 1.0)
    thresholds = [_threshold_for_top_share(p, float(a), tolerance) for a in above]
    return _result(p, names, thresholds, None)


def _cost_matrix(tier_costs: np.ndarray | Sequence[float] | Sequence[Sequence[float]], n: int) -> np.ndarray:
    c = np.asarray(tier_costs, dtype=np.float64)
    if c.ndim == 1:
        c = np.broadcast_to(c, (n, c.size))
    if c.ndim != 2 or c.shape[0] != n or c.shape[1] < 2 or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ConfigError("tier_costs must be per-tier costs (N,) or per-prompt costs (n, N), finite and >= 0")
    if np.any(np.diff(c, axis=1) < 0):
        raise ConfigError("tier costs must not decrease from cheap to strong tier")
    return c


def calibrate_cost(
    scores: np.ndarray | Sequence[float],
    tier_costs: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    target_cost: float, *,
    tiers: Sequence[str] | None = None,
    upper_mix: Sequence[float] | None = None,
) -> Calibration:
    """Thresholds spending at most `target_cost` per request on average, sending as much up as that allows.

    `tier_costs` is a cost per tier or per prompt and tier. With more than two tiers the traffic sent above
    the cheapest tier is split in the ratio `upper_mix` (default equal) and only its total is searched:
    the mean cost then rises monotonically with it, so a bisection finds the budget's edge.
    """
    p = _scores(scores)
    c = _cost_matrix(tier_costs, p.size)
    n_tiers = c.shape[1]
    names = _tier_names(tiers, n_tiers)
    mix = np.ones(n_tiers - 1) if upper_mix is None else np.asarray(upper_mix, dtype=np.float64)
    if mix.shape != (n_tiers - 1,) or np.any(mix < 0) or mix.sum() <= 0:
        raise ConfigError(f"upper_mix needs {n_tiers - 1} non-negative weights, not all zero")
    mix = mix / mix.sum()
    above_unit = np.cumsum(mix[::-1])[::-1]  # fraction at or above tier i per unit of upper traffic

    def at(alpha: float) -> tuple[Calibration, float]:
        ths = [_threshold_for_top_share(p, float(min(a * alpha, 1.0)), tolerance=1.0) for a in above_unit]
        cal = _result(p, names, ths, c)
        return cal, cal.mean_cost if cal.mean_cost is not None else float("nan")

    (lo, lo_cost), (hi, hi_cost) = at(0.0), at(1.0)
    if lo_cost > target_cost + 1e-12:
        raise ConfigError(f"target cost {target_cost:g} is below the all-cheapest cost {lo_cost:g}")
    if hi_cost <= target_cost:
        return hi
    a, b, best = 0.0, 1.0, lo
    while b - a > 0.25 / p.size:
        mid = (a + b) / 2.0
        cand, cost = at(mid)
        if cost <= target_cost:
            best, a = cand, mid
        else:
            b = mid
    return best
