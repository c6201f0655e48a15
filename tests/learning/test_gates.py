"""Promotion gates (learning/gates.py): a paired gain that is sure of itself, cost and calibration checks."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.learning.gates import GateSettings, calibration_gate, paired_gain, quality_and_cost_gates
from gearshift.learning.ope import LoggedBandit, evaluate_policy


def _traffic(n: int, seed: int = 0) -> tuple[LoggedBandit, np.ndarray, np.ndarray, np.ndarray]:
    """Uniform logging over two tiers; hard prompts (x > 0.7) need the strong tier, the rest do not."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    actions = rng.integers(0, 2, n)
    hard = x > 0.7
    rewards = np.where(actions == 1, 0.9, np.where(hard, 0.2, 0.85)) + rng.normal(0, 0.05, n)
    costs = np.where(actions == 1, 0.01, 0.001)
    log = LoggedBandit.from_arrays(actions, np.full(n, 0.5), np.clip(rewards, 0, 1), costs, n_actions=2,
                                   features=x)
    good = np.column_stack([~hard, hard]).astype(float)  # strong exactly for hard prompts
    slightly_worse = good.copy()
    flip = np.flatnonzero(hard)[:30]  # thirty hard prompts (of ~180) sent cheap
    slightly_worse[flip] = [1.0, 0.0]
    return log, good, slightly_worse, x


def test_paired_gain_is_the_difference_of_the_two_estimates_with_a_narrower_interval() -> None:
    log, good, worse, _ = _traffic(600)
    gain = paired_gain(log, good, worse, n_boot=400)
    a = evaluate_policy(log, good, n_boot=400).estimates["dr"].quality
    b = evaluate_policy(log, worse, n_boot=400).estimates["dr"].quality
    assert gain.quality.value == pytest.approx(a.value - b.value, abs=1e-9)
    assert gain.quality.lo <= gain.quality.value <= gain.quality.hi
    # separate intervals overlap almost entirely; the paired one is much narrower than their combined width
    assert (gain.quality.hi - gain.quality.lo) < 0.5 * ((a.hi - a.lo) + (b.hi - b.lo))


def test_quality_gate_wants_the_lower_bound_and_cost_gate_the_budget() -> None:
    log, good, worse, _ = _traffic(600)
    better = quality_and_cost_gates(paired_gain(log, good, worse, n_boot=300), GateSettings(n_boot=300), "champ")
    same = quality_and_cost_gates(paired_gain(log, good, good, n_boot=300), GateSettings(n_boot=300), "champ")
    assert better[0].passed is True and better[0].figures["lo"] > 0
    assert same[0].passed is True and same[0].figures["gain"] == 0.0  # lower bound 0 >= margin 0
    stricter = quality_and_cost_gates(paired_gain(log, good, good, n_boot=300), GateSettings(margin=0.001), "c")
    assert stricter[0].passed is False
    all_strong = np.tile([0.0, 1.0], (len(log), 1))
    pricier = quality_and_cost_gates(paired_gain(log, all_strong, good, n_boot=300), GateSettings(), "champ")
    figures = pricier[1].figures
    assert pricier[1].passed is False and figures["cost_gain_usd"] > figures["allowed_increase_usd"]
    assert quality_and_cost_gates(paired_gain(log, all_strong, good, n_boot=300),
                                  GateSettings(max_cost_increase=10.0), "champ")[1].passed is True


def test_calibration_gate_refuses_a_p_strong_that_stopped_meaning_a_probability() -> None:
    rng = np.random.default_rng(1)
    gaps = rng.normal(0, 1, 400)
    needs = (gaps > 0).astype(float)
    calibrated = np.where(needs > 0, 0.95, 0.05)
    squashed = 0.5 + (calibrated - 0.5) * 0.1  # same ranking, probabilities near 0.5
    hard = ("hard", "hard")  # routers trained on "strong needed" labels: p_strong is P(strong better)
    assert calibration_gate(calibrated, squashed, gaps, GateSettings(), "champ", hard).passed is True
    refused = calibration_gate(squashed, calibrated, gaps, GateSettings(), "champ", hard)
    assert refused.passed is False and refused.figures["ece"] > refused.figures["baseline_ece"] + 0.02
    few = calibration_gate(squashed, calibrated, np.r_[gaps[:10], np.full(390, np.nan)], GateSettings(), "c")
    assert few.passed is None and few.figures["n"] == 10


def test_soft_routers_are_held_to_the_expected_gain_they_predict() -> None:
    """A soft-target router's p_strong estimates (1 + gap) / 2, so a tie (both tiers equally good) is 0.5, not 0:
    held to that, a calibrated soft router passes; one shifted by 0.2 fails."""
    rng = np.random.default_rng(2)
    gaps = rng.choice([-1.0, 0.0, 1.0], size=600, p=[0.1, 0.7, 0.2])
    soft = np.clip((1 + gaps) / 2 + rng.normal(0, 0.03, 600), 0, 1)
    shifted = np.clip(soft - 0.2, 0, 1)
    assert calibration_gate(soft, shifted, gaps, GateSettings(), "champ").passed is True
    assert calibration_gate(shifted, soft, gaps, GateSettings(), "champ").passed is False
