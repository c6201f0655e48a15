"""Quality vs strong-call share: the curve a router traces as its threshold sweeps, and its summaries.

Routing the top-k prompts by p_strong to the strong model, k = 0..n, gives n+1 operating points. Prompts
with equal p_strong form a tie group: any order inside it is equally valid, so the curve is the expected
value over orders, which is linear inside the group. The curve is therefore stored only at group
boundaries and read by linear interpolation — results do not depend on input order, and the same code
serves bootstrap resamples (a resampled prompt repeated m times is a tie group of weight m).

- PGR(x) = (q(x) - q_weak) / (q_strong - q_weak), the performance gap recovered.
- APGR = ∫₀¹ PGR(x) dx (trapezoid). A random router scores exactly 0.5 in expectation.
- CPT(t) = smallest strong-call share with PGR >= t (linear interpolation between points).
- AIQ (RouterBench) = average quality under the non-decreasing convex hull of the cost-quality
  points, over the cost range of those points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gearshift.errors import RouterError

CPT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)


def check_scores(p_strong: np.ndarray | Sequence[float], n: int) -> np.ndarray:
    p = np.asarray(p_strong, dtype=np.float64)
    if p.shape != (n,):
        raise RouterError(f"expected {n} p_strong values, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise RouterError("router returned non-finite p_strong values")
    return p


@dataclass(frozen=True)
class TieGroups:
    """Prompts sorted by p_strong descending, cut into runs of equal p_strong."""

    order: np.ndarray  # permutation: sorted position -> original index
    starts: np.ndarray  # first sorted position of each group

    @classmethod
    def from_scores(cls, p_strong: np.ndarray) -> TieGroups:
        order = np.argsort(-p_strong, kind="stable")
        ps = p_strong[order]
        starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]]) if len(ps) else np.zeros(0, np.int64)
        return cls(order=order, starts=starts)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-group sums of `values` (last axis indexed by original prompt); works on 2-D batches."""
        return np.add.reduceat(values[..., self.order], self.starts, axis=-1)


@dataclass(frozen=True)
class Curve:
    """Operating points at tie-group boundaries; linear in between. Costs are mean USD per prompt."""

    share: np.ndarray
    quality: np.ndarray
    cost: np.ndarray  # NaN when the dataset has no costs

    @property
    def q_weak(self) -> float:
        return float(self.quality[0])

    @property
    def q_strong(self) -> float:
        return float(self.quality[-1])

    def pgr(self) -> np.ndarray:
        gain = self.q_strong - self.q_weak
        if not gain > 0:
            return np.full_like(self.quality, np.nan)
        out: np.ndarray = (self.quality - self.q_weak) / gain
        return out

    def has_costs(self) -> bool:
        return bool(np.all(np.isfinite(self.cost)))


def build_curve(
    p_strong: np.ndarray,
    s_strong: np.ndarray,
    s_weak: np.ndarray,
    c_strong: np.ndarray | None = None,
    c_weak: np.ndarray | None = None,
) -> Curve:
    n = len(s_strong)
    p = check_scores(p_strong, n)
    if n == 0:
        z = np.zeros(1)
        return Curve(share=z, quality=z, cost=np.full(1, np.nan))
    groups = TieGroups.from_scores(p)
    sizes = np.diff(np.r_[groups.starts, n])
    share = np.r_[0.0, np.cumsum(sizes)] / n
    quality = s_weak.mean() + np.r_[0.0, np.cumsum(groups.sums(s_strong - s_weak))] / n
    if c_strong is None or c_weak is None:
        cost = np.full_like(share, np.nan)
    else:
        cost = c_weak.sum() / n + np.r_[0.0, np.cumsum(groups.sums(c_strong - c_weak))] / n
    share[-1] = 1.0
    return Curve(share=share, quality=quality, cost=cost)


def pgr_summaries(
    weights: np.ndarray, gains: np.ndarray, levels: Sequence[float] = CPT_LEVELS
) -> tuple[np.ndarray, np.ndarray]:
    """APGR and CPTs for a batch of curves given per-group weights and gain sums, shape (B, groups).

    Returns (apgr of shape (B,), cpt of shape (B, len(levels))); NaN where the strong model recovers no
    gap (q_strong <= q_weak), since PGR is undefined there.
    """
    w = np.atleast_2d(weights).astype(np.float64)
    g = np.atleast_2d(gains).astype(np.float64)
    b = w.shape[0]
    zeros = np.zeros((b, 1))
    x = np.cumsum(w, axis=1)
    x = np.hstack([zeros, x / x[:, -1:]])
    y = np.cumsum(g, axis=1)
    total = y[:, -1:].copy()
    valid = total[:, 0] > 1e-12
    total[~valid] = 1.0
    pgr = np.hstack([zeros, y / total])
    apgr = np.trapezoid(pgr, x, axis=1)
    cpt = np.empty((b, len(levels)))
    rows = np.arange(b)
    for li, t in enumerate(levels):
        hit = pgr >= t
        j = np.maximum(np.argmax(hit, axis=1), 1)  # pgr[:, 0] == 0 < t for t > 0
        x0, x1 = x[rows, j - 1], x[rows, j]
        p0, p1 = pgr[rows, j - 1], pgr[rows, j]
        step = p1 - p0
        frac = np.divide(t - p0, step, out=np.ones_like(step), where=step > 0)
        cpt[:, li] = x0 + np.clip(frac, 0.0, 1.0) * (x1 - x0)
    apgr[~valid] = np.nan
    cpt[~valid] = np.nan
    return apgr, cpt


def apgr_cpt(
    p_strong: np.ndarray, s_strong: np.ndarray, s_weak: np.ndarray, levels: Sequence[float] = CPT_LEVELS
) -> tuple[float, dict[float, float]]:
    """Point estimates of APGR and CPT(levels) for one router on one set of prompts."""
    p = check_scores(p_strong, len(s_strong))
    if len(p) == 0:
        return float("nan"), {t: float("nan") for t in levels}
    groups = TieGroups.from_scores(p)
    sizes = np.diff(np.r_[groups.starts, len(p)]).astype(np.float64)
    apgr, cpt = pgr_summaries(sizes, groups.sums(s_strong - s_weak), levels)
    return float(apgr[0]), {t: float(cpt[0, i]) for i, t in enumerate(levels)}


def _upper_hull(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper convex hull (Andrew's monotone chain), left to right."""
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    keep = np.r_[xs[1:] != xs[:-1], True]  # highest y per distinct x (sorted by y within x)
    xs, ys = xs[keep], ys[keep]
    hx: list[float] = []
    hy: list[float] = []
    for px, py in zip(xs.tolist(), ys.tolist(), strict=True):
        while len(hx) >= 2 and (hx[-1] - hx[-2]) * (py - hy[-2]) - (hy[-1] - hy[-2]) * (px - hx[-2]) >= 0:
            hx.pop()
            hy.pop()
        hx.append(px)
        hy.append(py)
    return np.array(hx), np.array(hy)


def aiq(cost: np.ndarray, quality: np.ndarray) -> float:
    """RouterBench's Average Improvement in Quality: mean of the non-decreasing convex hull over cost.

    Adding the point (max cost, max quality) makes the concave envelope non-decreasing: at any budget
    one can always fall back to a cheaper, better configuration.
    """
    c = np.asarray(cost, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if len(c) == 0 or not np.all(np.isfinite(c)):
        return float("nan")
    lo, hi = float(c.min()), float(c.max())
    if hi - lo <= 1e-15:
        return float(q.max())
    hx, hy = _upper_hull(np.r_[c, hi], np.r_[q, q.max()])
    return float(np.trapezoid(hy, hx) / (hi - lo))


def curve_aiq(curve: Curve) -> tuple[float, str]:
    """AIQ on the cost axis when costs are known, else on the strong-share axis; returns (aiq, axis)."""
    if curve.has_costs():
        return aiq(curve.cost, curve.quality), "cost"
    return aiq(curve.share, curve.quality), "strong_share"
