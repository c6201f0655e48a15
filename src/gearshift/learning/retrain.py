"""Honest retraining from logged traffic, where only the chosen tier's outcome is observed.

A router wants the gap g(x) = E[score_strong - score_weak | x]. Shadow or judge labels give it directly.
A logged request gives one outcome r of the tier a it was sent to, with propensity π(a|x). Training on
those outcomes as if they were labels teaches the router the logging policy: prompts that were sent
strong look "strong needed" because the strong model mostly succeeded on them.

The fix is a pseudo-label with importance weight. Write the soft target as y = (g + 1) / 2. A request
sent strong contributes y = r with weight 1 / (2 π(strong|x)); one sent weak contributes y = 1 - r with
weight 1 / (2 π(weak|x)). Over the logging policy's draw the weighted positive and negative masses equal
exactly (g + 1) / 2 and (1 - g) / 2 with total weight 1: any loss linear in the target (cross-entropy
on soft targets, squared error up to a constant, weighted neighbour votes) is unbiased for the
full-information loss. In gap terms the pseudo-gap is +(2r - 1) for strong and -(2r - 1) for weak.

Those labels are unbiased but noisy: their level jumps with the tier drawn (r_strong averages far above
1 - r_weak). `centred=True` (default) subtracts each tier's mean score (a control variate):
y = 0.5 ± κ (r - mean_a), whose weighted expectation is 0.5 + κ/2 (gap - mean gap), an increasing affine
map of the gap. Rankings, which routing thresholds use, are kept; re-fit thresholds on traffic
(`routers.calibrate` or `learning.risk_control`) rather than reading p_strong as a probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gearshift.data.records import Dataset
from gearshift.errors import ConfigError, DataError, RouterError
from gearshift.policy.exploration import ExplorationMode, ExplorationPolicy
from gearshift.routers.base import TrainableRouter
from gearshift.routers.policy import TierPolicy

Weighting = Literal["ipw", "naive", "explored"]
WEIGHTINGS: tuple[str, ...] = ("ipw", "naive", "explored")
WEAK, STRONG = 0, 1


@dataclass(frozen=True)
class LoggedTraffic:
    """Two-tier logged requests. `actions`: 0 weak / 1 strong; `rewards`: the chosen tier's score in [0, 1];
    `explore_propensities`: probability of the chosen tier under the exploration branch alone (for the
    explored-only estimator); `label_gaps`: shadow/judge strong-minus-weak gaps, NaN where absent."""

    prompts: list[str]
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    explored: np.ndarray
    explore_propensities: np.ndarray | None = None
    label_gaps: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.prompts)
        arrays = {"actions": self.actions, "propensities": self.propensities, "rewards": self.rewards,
                  "explored": self.explored, "explore_propensities": self.explore_propensities,
                  "label_gaps": self.label_gaps}
        for name, arr in arrays.items():
            if arr is not None and arr.shape != (n,):
                raise DataError(f"logged traffic: {name} needs {n} values, got shape {arr.shape}")
        if np.any((self.actions != WEAK) & (self.actions != STRONG)):
            raise DataError("logged traffic: actions must be 0 (weak) or 1 (strong)")
        if np.any(~np.isfinite(self.propensities) | (self.propensities <= 0) | (self.propensities > 1)):
            raise DataError("logged traffic: propensities must lie within (0, 1]")
        if np.any(~np.isfinite(self.rewards) | (self.rewards < 0) | (self.rewards > 1)):
            raise DataError("logged traffic: rewards must lie within [0, 1]")

    def __len__(self) -> int:
        return len(self.prompts)


def simulate_logged_traffic(dataset: Dataset, strong: str, weak: str,
                            logging_policy_scores: np.ndarray | Sequence[float], epsilon: float, seed: int, *,
                            threshold: float = 0.5, mode: ExplorationMode = "uniform") -> LoggedTraffic:
    """Replay recorded outcomes through a logging policy: strong iff score >= `threshold`, with ε exploration.

    Only the chosen tier's recorded score is kept, as a live gateway would see it.
    """
    p = np.asarray(logging_policy_scores, dtype=np.float64)
    if p.shape != (len(dataset),):
        raise DataError(f"need one logging score per prompt ({len(dataset)}), got shape {p.shape}")
    policy = ExplorationPolicy(TierPolicy(thresholds=(threshold,)), epsilon=epsilon, mode=mode)
    pi = policy.probabilities_batch(p)
    q = policy.exploration_distribution(p)
    rng = np.random.default_rng(seed)
    explored = rng.random(p.size) < epsilon
    from_q = (rng.random(p.size) < q[:, STRONG]).astype(np.int64)
    actions = np.where(explored, from_q, policy.policy.tier_indices(p))
    rows = np.arange(p.size)
    outcome = np.where(actions == STRONG, dataset.scores(strong), dataset.scores(weak))
    return LoggedTraffic(prompts=dataset.prompts, actions=actions, propensities=pi[rows, actions],
                         rewards=outcome, explored=explored, explore_propensities=q[rows, actions])


def _tier_means(traffic: LoggedTraffic) -> np.ndarray:
    """Self-normalised IPS estimate of each tier's mean score over all traffic: the control variate."""
    out = np.full(2, 0.5)
    for a in (WEAK, STRONG):
        m = traffic.actions == a
        if m.any():
            w = 1.0 / traffic.propensities[m]
            out[a] = float(np.sum(w * traffic.rewards[m]) / np.sum(w))
    return out


def _centring_scale(traffic: LoggedTraffic) -> float:
    """Largest κ keeping 0.5 ± κ (r - mean) within [0, 1] for every reward in [0, 1]."""
    m = _tier_means(traffic)
    return float(0.5 / max(float(m.max()), float(1.0 - m.min()), 0.5))


def training_targets(traffic: LoggedTraffic, weighting: Weighting = "ipw",
                     clip: float | None = None, centred: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(prompts, gaps, sample_weight) for `TrainableRouter.fit`.

    "ipw": every logged request, pseudo-gap weighted by 1 / (2 π). "explored": only the exploration slice,
    weighted by the exploration branch's own propensity (unbiased whatever the router did; fewer rows).
    "naive": pseudo-gaps with weight 1, ignoring propensities (biased toward the logging policy; kept as
    the baseline that shows why weighting matters). Labelled rows (finite `label_gaps`) always use their
    gap with weight 1 (on the centred scale when `centred`). `clip` caps weights (less variance, some bias).
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if clip is not None and clip <= 0:
        raise ConfigError(f"weight clip must be positive, got {clip}")
    sign = np.where(traffic.actions == STRONG, 1.0, -1.0)
    # centring is a variance device for pseudo-labels (and puts labels on their scale); when every request
    # carries an observed gap (a shadow judge on all traffic) there is nothing to reconcile, and the raw gaps
    # keep p_strong on the scale the router was first trained on (the promotion gate checks its calibration)
    every_labelled = traffic.label_gaps is not None and bool(np.all(np.isfinite(traffic.label_gaps)))
    centre = centred and weighting != "naive" and not every_labelled
    kappa, means = _centring_scale(traffic), _tier_means(traffic)
    if centre:
        gaps = 2.0 * kappa * sign * (traffic.rewards - means[traffic.actions])
    else:
        gaps = sign * (2.0 * traffic.rewards - 1.0)
    if weighting == "naive":
        weights = np.ones(len(traffic))
    elif weighting == "ipw":
        weights = 1.0 / (2.0 * traffic.propensities)
    else:
        if traffic.explore_propensities is None:
            raise ConfigError("explored-only weighting needs the exploration branch's propensities")
        weights = np.where(traffic.explored, 1.0 / (2.0 * np.maximum(traffic.explore_propensities, 1e-12)), 0.0)
    if clip is not None:
        weights = np.minimum(weights, clip)
    if traffic.label_gaps is not None:
        labelled = np.isfinite(traffic.label_gaps)
        label = np.nan_to_num(traffic.label_gaps)
        if centre:  # onto the pseudo-labels' scale: 2y - 1 = κ (gap - mean gap)
            label = np.clip(kappa * (label - (means[STRONG] - means[WEAK])), -1.0, 1.0)
        gaps = np.where(labelled, label, gaps)
        weights = np.where(labelled, 1.0, weights)
    keep = weights > 0
    if not keep.any():
        raise DataError(f"no logged request carries weight under {weighting!r} (no exploration slice?)")
    prompts = [t for t, k in zip(traffic.prompts, keep, strict=True) if k]
    return prompts, gaps[keep], weights[keep]


def retrain(router: TrainableRouter | str, traffic: LoggedTraffic, *, weighting: Weighting = "ipw",
            clip: float | None = None, centred: bool = True, **params: Any) -> TrainableRouter:
    """A new router version fitted on logged traffic. `router`: an unfitted instance, or a registry name
    built with `params`. Uses the soft target semantics the pseudo-labels are unbiased for."""
    if isinstance(router, str):
        from gearshift.routers.registry import make_router

        built = make_router(router, **params)
        if not isinstance(built, TrainableRouter):
            raise RouterError(f"router {router!r} is not trainable")
        router = built
    elif params:
        raise ConfigError("params are only used when the router is given by name")
    prompts, gaps, weights = training_targets(traffic, weighting, clip, centred)
    return router.fit(prompts, gaps, sample_weight=weights)
