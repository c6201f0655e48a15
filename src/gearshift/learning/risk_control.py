"""Risk-controlled thresholds: the cheapest routing whose quality loss stays under a bound, with a guarantee.

Picking a threshold by eye on benchmark curves says nothing about tomorrow's traffic. Here the loss of a
threshold t on prompt i is `loss_i` (e.g. max(0, score_strong - score_weak)) when the prompt is routed
cheap (p_strong < t), else 0: the quality given up against sending everything strong. It grows with t,
so thresholds are ordered strict (t = 0, all strong, loss 0) to loose.

- "ltt", Learn-then-Test (Angelopoulos et al. 2021): test H_t: risk(t) > α at every cut with a
  Hoeffding-Bentkus (or, for 0/1 losses, exact binomial) p-value, in fixed sequence from strict to
  loose, and keep the loosest rejected cut. Then P(risk(t̂) <= α) >= confidence over calibration draws.
- "crc", conformal risk control (Angelopoulos et al. 2022): the loosest cut with
  (n·R̂(t) + 1) / (n + 1) <= α. Then E[loss on a new prompt] <= α (in expectation, not with probability).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gearshift.errors import ConfigError
from gearshift.routers.calibrate import NEVER
from gearshift.routers.policy import TierPolicy

RiskMethod = Literal["ltt", "crc"]
PValueKind = Literal["hb", "binomial"]


@dataclass(frozen=True, slots=True)
class RiskCalibration:
    """`threshold` (p_strong >= t goes strong) and what it does on the calibration prompts.

    `loss_bound`: for LTT the upper confidence bound (at `confidence`) on the quality loss at this
    threshold; for CRC the conformal-adjusted risk (n·R̂ + 1)/(n + 1). Either is <= `max_quality_loss`.
    """

    threshold: float
    strong_share: float
    empirical_loss: float
    loss_bound: float
    max_quality_loss: float
    confidence: float
    method: str
    n: int

    def policy(self, tiers: tuple[str, str] = ("cheap", "strong")) -> TierPolicy:
        return TierPolicy(tiers=tiers, thresholds=(self.threshold,))


def cheap_losses(s_strong: np.ndarray | Sequence[float], s_weak: np.ndarray | Sequence[float]) -> np.ndarray:
    """Per-prompt quality lost by routing cheap: max(0, score_strong - score_weak)."""
    out: np.ndarray = np.maximum(0.0, np.asarray(s_strong, dtype=np.float64) - np.asarray(s_weak, dtype=np.float64))
    return out


def _kl_bernoulli(a: float, b: float) -> float:
    """h1(a, b) = KL(Bernoulli(a) || Bernoulli(b)), with 0·log 0 = 0."""
    if b >= 1.0:
        return 0.0 if a >= 1.0 else math.inf
    out = 0.0
    if a > 0:
        out += a * math.log(a / b)
    if a < 1:
        out += (1 - a) * math.log((1 - a) / (1 - b))
    return out


def p_value(risk_hat: np.ndarray | float, n: int, alpha: float, kind: PValueKind = "hb") -> np.ndarray:
    """p-values of H: risk > alpha given empirical risks `risk_hat` of n losses in [0, 1].

    "hb": Hoeffding-Bentkus, min(exp(-n·h1(min(R̂, α), α)), e·P(Bin(n, α) <= ⌈n·R̂⌉)). "binomial": exact
    P(Bin(n, α) <= n·R̂), valid only for 0/1 losses.
    """
    from scipy.stats import binom

    r = np.atleast_1d(np.asarray(risk_hat, dtype=np.float64))
    if kind == "binomial":
        return np.asarray(binom.cdf(np.round(n * r), n, alpha), dtype=np.float64)
    hoeffding = np.exp(-n * np.array([_kl_bernoulli(min(float(x), alpha), alpha) for x in r]))
    bentkus = math.e * binom.cdf(np.ceil(n * r - 1e-9), n, alpha)
    return np.asarray(np.minimum(np.minimum(hoeffding, bentkus), 1.0), dtype=np.float64)


def _upper_bound(risk_hat: float, n: int, delta: float, kind: PValueKind) -> float:
    """Smallest α' whose test rejects risk > α' at level delta: a (1 - delta) upper confidence bound."""
    lo, hi = risk_hat, 1.0
    if float(p_value(risk_hat, n, hi, kind)[0]) > delta:
        return 1.0
    for _ in range(50):
        mid = (lo + hi) / 2.0
        if float(p_value(risk_hat, n, mid, kind)[0]) <= delta:
            hi = mid
        else:
            lo = mid
    return hi


def calibrate_risk(p_strong: np.ndarray | Sequence[float], losses: np.ndarray | Sequence[float], *,
                   max_quality_loss: float = 0.02, confidence: float = 0.95, method: RiskMethod = "ltt",
                   p_value_kind: PValueKind = "hb") -> RiskCalibration:
    """The loosest threshold whose quality loss vs all-strong stays within `max_quality_loss`.

    `losses`: per-prompt loss in [0, 1] when routed cheap: 0/1 "needed the strong model" labels, or
    `cheap_losses(s_strong, s_weak)`. Cuts fall between distinct scores, so tied prompts move together.
    """
    p = np.asarray(p_strong, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    n = p.size
    if p.ndim != 1 or n == 0 or loss.shape != p.shape:
        raise ConfigError("calibrate_risk needs equal-length, non-empty 1-D p_strong and losses")
    if not np.all(np.isfinite(p)) or not np.all(np.isfinite(loss)) or np.any((loss < 0) | (loss > 1)):
        raise ConfigError("p_strong must be finite and losses within [0, 1]")
    if not 0.0 < max_quality_loss < 1.0 or not 0.0 < confidence < 1.0:
        raise ConfigError("max_quality_loss and confidence must lie within (0, 1)")
    if method not in ("ltt", "crc"):
        raise ConfigError(f"risk control method must be 'ltt' or 'crc', got {method!r}")
    if p_value_kind == "binomial" and np.any((loss != 0) & (loss != 1)):
        raise ConfigError("the binomial p-value needs 0/1 losses; use p_value_kind='hb' for graded losses")
    alpha, delta = max_quality_loss, 1.0 - confidence

    order = np.argsort(p, kind="stable")
    ps = p[order]
    risk = np.r_[0.0, np.cumsum(loss[order])] / n  # risk[k]: the k lowest-scored prompts go cheap
    cuts = np.flatnonzero(np.r_[True, ps[1:] > ps[:-1], True])  # k where a threshold can separate
    if method == "ltt":
        pv = p_value(risk[cuts], n, alpha, p_value_kind)
        pv[0] = 0.0  # k = 0 sends everything strong: zero loss by definition, no test needed
        first_fail = np.flatnonzero(pv > delta)
        k = int(cuts[first_fail[0] - 1]) if first_fail.size else int(cuts[-1])
        bound = _upper_bound(float(risk[k]), n, delta, p_value_kind) if k > 0 else 0.0
    else:
        adjusted = (n * risk[cuts] + 1.0) / (n + 1.0)
        adjusted[0] = 0.0
        ok = adjusted <= alpha
        first_fail = np.flatnonzero(~ok)
        i = first_fail[0] - 1 if first_fail.size else len(cuts) - 1
        k, bound = int(cuts[i]), float(adjusted[i])
    if k == 0:
        threshold = 0.0
    elif k == n:
        threshold = NEVER
    else:
        threshold = float((ps[k - 1] + ps[k]) / 2.0)
    return RiskCalibration(threshold=threshold, strong_share=float(1.0 - k / n), empirical_loss=float(risk[k]),
                           loss_bound=bound, max_quality_loss=alpha, confidence=confidence, method=method, n=n)
