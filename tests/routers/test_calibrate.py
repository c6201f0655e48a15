"""Thresholds fitted on the user's own score distribution hit the share or budget they asked for."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.routers.calibrate import calibrate_cost, calibrate_share, calibrate_shares
from gearshift.routers.heuristic import HeuristicRouter
from gearshift.routers.random import RandomRouter

from .conftest import mmlu_prompts


@pytest.fixture(scope="module")
def traffic() -> np.ndarray:
    return RandomRouter(seed=5).p_strong(mmlu_prompts(997))


@pytest.mark.parametrize("target", [0.0, 0.013, 0.25, 0.5, 0.8, 1.0])
def test_share_within_one_over_n(traffic: np.ndarray, target: float) -> None:
    cal = calibrate_share(traffic, target)
    achieved = float((traffic >= cal.thresholds[0]).mean())
    assert abs(achieved - target) <= 1 / traffic.size
    assert cal.shares[1] == achieved and cal.n == traffic.size
    # the policy it produces routes the same traffic the same way
    assert cal.policy().tier_indices(traffic).mean() == pytest.approx(achieved)


def test_n_tier_shares(traffic: np.ndarray) -> None:
    wanted = [0.6, 0.25, 0.1, 0.05]
    cal = calibrate_shares(traffic, wanted, tiers=["nano", "mini", "base", "max"])
    assert cal.tiers == ("nano", "mini", "base", "max")
    assert list(cal.thresholds) == sorted(cal.thresholds)
    counts = np.bincount(cal.policy().tier_indices(traffic), minlength=4) / traffic.size
    np.testing.assert_allclose(counts, wanted, atol=2 / traffic.size)
    np.testing.assert_allclose(cal.shares, counts)


def test_ties_pick_the_nearest_achievable_share() -> None:
    scores = np.array([0.1] * 50 + [0.9] * 50)
    assert calibrate_share(scores, 0.5).shares == (0.5, 0.5)
    assert calibrate_share(scores, 0.51).shares == (0.5, 0.5)  # within tolerance
    with pytest.raises(ConfigError, match="tied scores allow only shares"):
        calibrate_share(scores, 0.3)


def test_heuristic_scores_have_ties_but_calibrate(traffic: np.ndarray) -> None:
    scores = HeuristicRouter().p_strong(mmlu_prompts(997))
    cal = calibrate_share(scores, 0.3, tolerance=0.05)
    assert abs(cal.shares[1] - 0.3) <= 0.05


def test_constant_scores() -> None:
    flat = np.full(100, 0.42)
    assert calibrate_share(flat, 0.0).shares == (1.0, 0.0)
    assert calibrate_share(flat, 1.0).shares == (0.0, 1.0)
    with pytest.raises(ConfigError):
        calibrate_share(flat, 0.5)


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError):
        calibrate_share([], 0.5)
    with pytest.raises(ConfigError):
        calibrate_share([0.2, 1.5], 0.5)
    with pytest.raises(ConfigError):
        calibrate_share([0.2, 0.5], 1.2)
    with pytest.raises(ConfigError, match="summing to 1"):
        calibrate_shares([0.2, 0.5], [0.5, 0.4])


def test_cost_target_two_tiers(traffic: np.ndarray) -> None:
    cheap, strong = 0.0002, 0.01
    cal = calibrate_cost(traffic, [cheap, strong], target_cost=0.003)
    assert cal.mean_cost is not None and cal.mean_cost <= 0.003
    # spending one more strong call would break the budget: the threshold is as generous as allowed
    assert cal.mean_cost + (strong - cheap) / traffic.size > 0.003
    expected_share = (0.003 - cheap) / (strong - cheap)
    assert abs(cal.shares[1] - expected_share) <= 1 / traffic.size


def test_cost_target_per_prompt_costs_and_three_tiers(traffic: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, traffic.size)
    costs = np.stack([base * 0.1, base * 1.0, base * 5.0], axis=1)
    cal = calibrate_cost(traffic, costs, target_cost=0.8, upper_mix=[2, 1])
    idx = cal.policy().tier_indices(traffic)
    spent = costs[np.arange(traffic.size), idx].mean()
    assert spent == pytest.approx(cal.mean_cost) and spent <= 0.8 and spent > 0.75
    assert cal.shares[1] == pytest.approx(2 * cal.shares[2], abs=2 / traffic.size)


def test_cost_edges(traffic: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="below the all-cheapest"):
        calibrate_cost(traffic, [1.0, 2.0], target_cost=0.5)
    assert calibrate_cost(traffic, [1.0, 2.0], target_cost=5.0).shares == (0.0, 1.0)
    with pytest.raises(ConfigError, match="must not decrease"):
        calibrate_cost(traffic, [2.0, 1.0], target_cost=1.5)
