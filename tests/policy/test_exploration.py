"""Exploration: propensities are the true probabilities of the chosen tier under the whole policy."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.policy.exploration import ExplorationPolicy, request_rng
from gearshift.routers.base import RoutingScore
from gearshift.routers.policy import TierPolicy

THREE = TierPolicy(tiers=("small", "medium", "large"), thresholds=(0.3, 0.7))


@pytest.mark.parametrize("mode", ["uniform", "matching"])
def test_probabilities_sum_to_one_and_match_draw_frequencies(mode: str) -> None:
    pol = ExplorationPolicy(THREE, epsilon=0.3, mode=mode, min_propensity=0.02)  # type: ignore[arg-type]
    score = RoutingScore(p_strong=0.45, confidence=0.9, reason="")
    pi = pol.probabilities(score)
    assert pi.sum() == pytest.approx(1.0) and np.all(pi >= 0.02 - 1e-12)
    rng = np.random.default_rng(1)
    draws = [pol.decide(score, rng) for _ in range(20000)]
    counts = np.bincount([d.tier_index for d in draws], minlength=3) / len(draws)
    assert np.all(np.abs(counts - pi) < 4 * np.sqrt(pi * (1 - pi) / len(draws)) + 1e-9)
    assert all(d.propensity == pytest.approx(pi[d.tier_index]) for d in draws[:200])
    explored = np.mean([d.explored for d in draws])
    assert explored == pytest.approx(3 * 0.02 + (1 - 3 * 0.02) * 0.3, abs=0.015)


def test_matching_sends_strong_with_probability_p_strong() -> None:
    pol = ExplorationPolicy(TierPolicy(), epsilon=1.0, mode="matching")
    p = np.array([0.0, 0.2, 0.9, 1.0])
    assert np.allclose(pol.probabilities_batch(p)[:, 1], p)


def test_per_segment_budget_and_batch_agree_with_single_decisions() -> None:
    pol = ExplorationPolicy(TierPolicy(), epsilon=0.1, epsilon_by_segment={"code": 0.5})
    batch = pol.probabilities_batch([0.8, 0.8], segments=["code", "chat"])
    assert batch[0, 0] == pytest.approx(0.25) and batch[1, 0] == pytest.approx(0.05)
    one = pol.probabilities(RoutingScore(p_strong=0.8, confidence=1.0, reason=""), segment="code")
    assert np.allclose(one, batch[0])


def test_escalated_base_tier_keeps_exploration_mass() -> None:
    pol = ExplorationPolicy(TierPolicy(ood_escalate=2.0), epsilon=0.2)
    score = RoutingScore(p_strong=0.1, confidence=0.9, reason="", ood=5.0)
    assert np.allclose(pol.probabilities(score), [0.1, 0.9])


def test_request_rng_replays_a_request() -> None:
    pol = ExplorationPolicy(TierPolicy(), epsilon=0.5)
    score = RoutingScore(p_strong=0.5, confidence=0.5, reason="")
    a = [pol.decide(score, request_rng(3, f"req-{i}")).tier_index for i in range(50)]
    b = [pol.decide(score, request_rng(3, f"req-{i}")).tier_index for i in range(50)]
    assert a == b and len(set(a)) == 2


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ConfigError):
        ExplorationPolicy(TierPolicy(), epsilon=1.5)
    with pytest.raises(ConfigError):
        ExplorationPolicy(TierPolicy(), epsilon_by_segment={"x": -0.1})
    with pytest.raises(ConfigError):
        ExplorationPolicy(TierPolicy(), min_propensity=0.6)
