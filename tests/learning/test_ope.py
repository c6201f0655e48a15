"""Off-policy estimators on a synthetic two-tier bandit whose true values are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.learning.ope import (
    InsufficientSupportError,
    LoggedBandit,
    SupportWarning,
    combine_rewards,
    evaluate_policy,
    policy_probabilities,
)
from gearshift.policy.exploration import ExplorationPolicy
from gearshift.routers.policy import TierPolicy

LOGGER = ExplorationPolicy(TierPolicy(thresholds=(0.7,)), epsilon=0.3)
CANDIDATE = TierPolicy(thresholds=(0.4,))
# weak succeeds with probability 0.8 - 0.6x, strong with 0.85; costs 1 and 10. Candidate: strong iff x >= 0.4.
TRUE_QUALITY = (0.8 * 0.4 - 0.3 * 0.4**2) + 0.6 * 0.85
TRUE_COST = 0.4 * 1 + 0.6 * 10


def _log(seed: int, n: int = 2000, logger: ExplorationPolicy = LOGGER) -> tuple[LoggedBandit, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    pi = logger.probabilities_batch(x)
    a = (rng.random(n) < pi[:, 1]).astype(np.int64)
    success = np.where(a == 1, 0.85, 0.8 - 0.6 * x)
    r = (rng.random(n) < success).astype(np.float64)
    log = LoggedBandit.from_arrays(a, pi[np.arange(n), a], r, np.where(a == 1, 10.0, 1.0),
                                   features=x, logging_probs=pi)
    return log, policy_probabilities(CANDIDATE, x)


def test_estimates_cover_the_true_value_and_dr_has_lower_variance() -> None:
    covered = {"ips": 0, "snips": 0, "dr": 0}
    values: dict[str, list[float]] = {k: [] for k in covered}
    widths: dict[str, list[float]] = {k: [] for k in covered}
    reps, cost_covered = 40, 0
    for seed in range(reps):
        log, target = _log(seed)
        res = evaluate_policy(log, target, n_boot=300, confidence=0.9, seed=seed)
        for k, est in res.estimates.items():
            covered[k] += est.quality.lo <= TRUE_QUALITY <= est.quality.hi
            values[k].append(est.quality.value)
            widths[k].append(est.quality.hi - est.quality.lo)
        cost_covered += res.estimates["dr"].cost.lo <= TRUE_COST <= res.estimates["dr"].cost.hi
    for k in covered:  # promised 90%; 40 replicates leave binomial slack
        assert covered[k] >= 0.75 * reps, (k, covered[k])
        assert abs(np.mean(values[k]) - TRUE_QUALITY) < 0.01
    assert cost_covered >= 0.75 * reps
    assert np.std(values["dr"]) < 0.8 * np.std(values["ips"])
    assert np.mean(widths["dr"]) < np.mean(widths["ips"])


def test_no_support_is_refused() -> None:
    greedy = ExplorationPolicy(TierPolicy(thresholds=(0.7,)), epsilon=0.0)  # never tries strong below 0.7
    log, target = _log(0, logger=greedy)
    with pytest.raises(InsufficientSupportError, match="logging probability 0"):
        evaluate_policy(log, target, n_boot=50)
    with pytest.warns(SupportWarning):
        res = evaluate_policy(log, target, n_boot=50, on_violation="warn")
    assert res.unsupported_mass == pytest.approx(0.3, abs=0.03) and res.warnings


def test_low_effective_sample_size_is_refused_and_reported() -> None:
    log, target = _log(0, n=120)
    res = evaluate_policy(log, target, n_boot=50, min_ess=10)
    assert 10 < res.ess < len(log)
    with pytest.raises(InsufficientSupportError, match="effective sample size"):
        evaluate_policy(log, target, n_boot=50, min_ess=len(log) + 1)


def test_reward_combination() -> None:
    judge = np.array([1.0, np.nan, 0.0, np.nan])
    feedback = np.array([0.0, 1.0, np.nan, np.nan])
    both = combine_rewards(judge, feedback, "both", judge_weight=0.75)
    assert np.allclose(both[:3], [0.75, 1.0, 0.0]) and np.isnan(both[3])
    assert np.array_equal(combine_rewards(judge, feedback, "judge"), judge, equal_nan=True)


def test_counterfactuals_the_shadow_judge_observed_need_no_exploration() -> None:
    """A deterministic logger never tries the other tier, so pure IPS cannot evaluate a policy that does; but
    where the shadow judge scored both tiers, the counterfactual was observed and DR reads it exactly."""
    from gearshift.errors import GearshiftError

    rng = np.random.default_rng(3)
    n = 400
    known = np.column_stack([rng.random(n), rng.random(n)])  # every tier's judged reward on every request
    actions = np.zeros(n, dtype=np.int64)  # the logger always sent cheap
    logged = dict(actions=actions, propensities=np.ones(n), rewards=known[:, 0], n_actions=2,
                  features=rng.random(n), logging_probs=np.column_stack([np.ones(n), np.zeros(n)]))
    candidate = np.column_stack([known[:, 0] >= known[:, 1], known[:, 0] < known[:, 1]]).astype(float)
    truth = float(np.mean(np.where(candidate[:, 1] > 0, known[:, 1], known[:, 0])))
    with pytest.raises(GearshiftError):  # without the shadow labels: no support for the strong tier
        evaluate_policy(LoggedBandit.from_arrays(**logged), candidate, n_boot=50)
    full = evaluate_policy(LoggedBandit.from_arrays(**logged, known_rewards=known), candidate, n_boot=200)
    dr = full.estimates["dr"].quality
    assert dr.value == pytest.approx(truth, abs=1e-9) and dr.lo <= truth <= dr.hi
    assert full.ess == pytest.approx(n) and full.unsupported_mass == 0.0
    half = known.copy()
    half[n // 2:, 1] = np.nan  # the judge saw both tiers on half the requests only: support for those rows only
    part = LoggedBandit.from_arrays(**logged, known_rewards=half)
    assert part.fully_observed.sum() == n // 2
    with pytest.raises(GearshiftError):  # the other half still needs a strong-tier estimate it cannot have
        evaluate_policy(part, candidate, n_boot=50)
