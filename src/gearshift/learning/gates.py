"""Promotion gates: what a router version must show, on the gateway's own logged traffic, before it serves.

`promote` used to compare two off-policy *point* estimates of quality. A point estimate on a few hundred
labels moves by more than the gains it is asked to detect, so each gate here is decided on figures that carry
their uncertainty, and every figure is kept with the version:

- quality: the *paired* off-policy gain, candidate minus baseline, bootstrapped on the same resampled requests
  (the two estimates share most of their noise, so the paired interval is far narrower than two separate
  ones); the gate wants its lower bound at or above `margin`;
- cost: the candidate's estimated cost per request at most `max_cost_increase` above the baseline's;
- calibration: the expected calibration error of p_strong against judged hardness (the strong tier scored
  higher) no worse than the baseline's plus `ece_tolerance`; `min_confidence` escalation and the
  dashboard's confidence read p_strong as a probability, so a version that breaks that is refused;
- probes: the routing probes (run by the command, `evaluation`'s probe suite) pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gearshift.errors import ConfigError
from gearshift.evaluation.calibration import expected_calibration_error
from gearshift.learning.ope import ESTIMATORS, Estimate, LoggedBandit, reward_model
from gearshift.routers.embedders.space import soft_labels

_MIN_CALIBRATION_ROWS = 30


@dataclass(frozen=True)
class GateSettings:
    estimator: str = "dr"
    margin: float = 0.0  # lower bound of the paired quality gain must reach this (negative: non-inferiority)
    max_cost_increase: float = 0.05  # relative, on the estimated cost per request
    ece_tolerance: float = 0.02
    confidence: float = 0.95
    n_boot: int = 1000

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.max_cost_increase < 0 or self.ece_tolerance < 0:
            raise ConfigError("--max-cost-increase and --ece-tolerance must not be negative")


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool | None  # None: not decidable on this log (it then does not block; the reason says why)
    rule: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "rule": self.rule, "figures": self.figures}


@dataclass(frozen=True)
class Gain:
    quality: Estimate
    cost: Estimate
    baseline_cost: float


def paired_gain(log: LoggedBandit, candidate: np.ndarray, baseline: np.ndarray, *, estimator: str = "dr",
                n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Gain:
    """Off-policy (quality, cost) of `candidate` minus `baseline` (tier distributions per logged row), with a
    percentile bootstrap over requests that resamples both policies' terms together."""
    n, rows = len(log), np.arange(len(log))

    def terms(target: np.ndarray, q_hat: np.ndarray | None, c_hat: np.ndarray | None) -> list[np.ndarray]:
        w = target[rows, log.actions] / log.propensities
        if q_hat is None or c_hat is None:
            return [w, w * log.rewards, w * log.costs]
        w_dr = np.where(log.fully_observed, 0.0, w)  # an observed counterfactual needs no correction
        return [w, np.sum(target * q_hat, axis=1) + w_dr * (log.rewards - q_hat[rows, log.actions]),
                np.sum(target * c_hat, axis=1) + w * (log.costs - c_hat[rows, log.actions])]

    q_hat, c_hat = reward_model(log, seed=seed) if estimator == "dr" else (None, None)
    v = np.column_stack(terms(candidate, q_hat, c_hat) + terms(baseline, q_hat, c_hat))

    def values(sums: np.ndarray) -> np.ndarray:  # (b, 6) sums -> (b, 3): quality gain, cost gain, baseline cost
        denom = (sums[:, [0, 0]], sums[:, [3, 3]]) if estimator == "snips" else (n, n)
        new, old = sums[:, 1:3] / denom[0], sums[:, 4:6] / denom[1]
        return np.column_stack([new - old, old[:, 1]])

    point = values(v.sum(axis=0)[None, :])[0]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    boot = values(np.stack([v[d].sum(axis=0) for d in draws]))
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(boot, [tail, 1.0 - tail], axis=0)
    return Gain(Estimate(float(point[0]), float(lo[0]), float(hi[0])),
                Estimate(float(point[1]), float(lo[1]), float(hi[1])), float(point[2]))


def quality_and_cost_gates(gain: Gain, settings: GateSettings, baseline: str) -> list[Gate]:
    q, c = gain.quality, gain.cost
    pct = f"{settings.confidence:.0%}"
    quality = Gate("quality", q.lo >= settings.margin,
                   f"{pct} lower bound of the paired {settings.estimator} quality gain over {baseline} >= "
                   f"{settings.margin:+g}",
                   {"gain": q.value, "lo": q.lo, "hi": q.hi, "margin": settings.margin})
    allowed = max(gain.baseline_cost, 0.0) * settings.max_cost_increase
    cost = Gate("cost", c.value <= allowed + 1e-15,
                f"estimated cost per request at most {settings.max_cost_increase:.0%} above {baseline}'s",
                {"cost_gain_usd": c.value, "lo": c.lo, "hi": c.hi, "baseline_usd": gain.baseline_cost,
                 "allowed_increase_usd": allowed})
    return [quality, cost]


def hardness(gaps: np.ndarray, target: str) -> np.ndarray:
    """What a router's p_strong estimates, from judged gaps: the training target its router used
    (`soft_labels`): P(strong better) for "hard"-target routers, the expected gain (1 + gap) / 2 for "soft"-target
    ones (the default; scoring a tie 0 would call every soft router miscalibrated alike)."""
    return soft_labels(gaps, "hard" if target == "hard" else "soft", 0.0)


def calibration_gate(candidate_p: np.ndarray, baseline_p: np.ndarray, gaps: np.ndarray,
                     settings: GateSettings, baseline: str, targets: tuple[str, str] = ("soft", "soft")) -> Gate:
    """ECE of each policy's p_strong against judged hardness (in the sense its router was trained for) on the
    rows whose tiers were all judged."""
    rule = f"ECE of p_strong against judged hardness at most {baseline}'s + {settings.ece_tolerance:g}"
    known = np.isfinite(gaps)
    if known.sum() < _MIN_CALIBRATION_ROWS:
        return Gate("calibration", None, rule + f" (needs {_MIN_CALIBRATION_ROWS} rows with both tiers judged, "
                    f"has {int(known.sum())})", {"n": int(known.sum())})
    new = expected_calibration_error(candidate_p[known], hardness(gaps[known], targets[0]))
    old = expected_calibration_error(baseline_p[known], hardness(gaps[known], targets[1]))
    return Gate("calibration", new <= old + settings.ece_tolerance, rule,
                {"ece": new, "baseline_ece": old, "n": int(known.sum()), "targets": list(targets),
                 "strong_better": float(np.mean(gaps[known] > 0))})
