from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import RouterError
from gearshift.evaluation.curves import aiq, apgr_cpt, build_curve, curve_aiq
from gearshift.evaluation.metrics import Outcomes, references


def test_router_ranks_between_random_and_oracle(outcomes_10k: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    hard, ss, sw = outcomes_10k
    rng = np.random.default_rng(7)
    random_apgr, _ = apgr_cpt(rng.random(len(hard)), ss, sw)
    router_apgr, _ = apgr_cpt(hard + rng.normal(0, 0.3, len(hard)), ss, sw)
    oracle_apgr, _ = apgr_cpt(ss - sw, ss, sw)
    assert abs(random_apgr - 0.5) < 0.03
    assert 0.55 < router_apgr < oracle_apgr
    assert oracle_apgr > 0.9


def test_constant_scores_are_exactly_the_random_line(outcomes_10k: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, ss, sw = outcomes_10k
    apgr, cpt = apgr_cpt(np.full(len(ss), 0.3), ss, sw)
    assert apgr == pytest.approx(0.5)
    assert cpt == pytest.approx({0.5: 0.5, 0.8: 0.8, 0.95: 0.95})


def test_cpt_is_monotone_in_the_level(outcomes_10k: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    hard, ss, sw = outcomes_10k
    p = hard + np.random.default_rng(3).normal(0, 0.5, len(hard))
    _, cpt = apgr_cpt(p, ss, sw, levels=(0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0))
    values = list(cpt.values())
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values)
    assert values[-1] <= 1.0 and values[0] > 0.0


def test_ties_are_averaged_so_input_order_does_not_matter() -> None:
    rng = np.random.default_rng(5)
    n = 500
    p = rng.integers(0, 4, n) / 4.0  # only 4 distinct scores: large tie groups
    ss = (rng.random(n) < 0.8).astype(float)
    sw = (rng.random(n) < 0.5).astype(float)
    base = apgr_cpt(p, ss, sw)
    base_curve = build_curve(p, ss, sw)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(n)
        apgr, cpt = apgr_cpt(p[perm], ss[perm], sw[perm])
        assert apgr == pytest.approx(base[0], abs=1e-12)
        assert cpt == pytest.approx(base[1], abs=1e-12)
        curve = build_curve(p[perm], ss[perm], sw[perm])
        np.testing.assert_allclose(curve.quality, base_curve.quality, atol=1e-12)


def test_curve_runs_from_all_cheap_to_all_strong(outcomes_10k: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    hard, ss, sw = outcomes_10k
    curve = build_curve(hard, ss, sw)
    assert curve.share[0] == 0.0 and curve.share[-1] == 1.0
    assert curve.q_weak == pytest.approx(sw.mean())
    assert curve.q_strong == pytest.approx(ss.mean())
    assert curve.pgr()[0] == 0.0 and curve.pgr()[-1] == pytest.approx(1.0)


def test_aiq_lies_between_all_cheap_and_oracle(outcomes_10k: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    hard, ss, sw = outcomes_10k
    n = len(hard)
    cs, cw = np.full(n, 0.02), np.full(n, 0.001)
    out = Outcomes(ss, sw, cs, cw)
    refs = references(out)
    value, axis = curve_aiq(out.curve(hard + np.random.default_rng(0).normal(0, 0.3, n)))
    assert axis == "cost"
    assert refs["all_cheap"].quality < refs["random"].aiq < value < refs["oracle"].aiq <= refs["oracle"].quality


def test_aiq_of_a_dominated_curve_uses_the_non_decreasing_hull() -> None:
    # quality peaks at mid cost then falls: the hull stays at the peak for higher budgets
    cost = np.array([0.0, 0.5, 1.0])
    quality = np.array([0.2, 0.8, 0.4])
    assert aiq(cost, quality) == pytest.approx((0.5 * (0.2 + 0.8) / 2 + 0.5 * 0.8) / 1.0)


def test_aiq_falls_back_to_strong_share_without_costs(outcomes_10k: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    hard, ss, sw = outcomes_10k
    nan = np.full(len(ss), np.nan)
    value, axis = curve_aiq(Outcomes(ss, sw, nan, nan).curve(hard))
    assert axis == "strong_share"
    assert sw.mean() < value <= np.maximum(ss, sw).mean()


def test_undefined_when_strong_is_not_better() -> None:
    s = np.array([1.0, 0.0, 1.0, 0.0])
    apgr, cpt = apgr_cpt(np.array([0.1, 0.2, 0.3, 0.4]), s, s)
    assert np.isnan(apgr) and all(np.isnan(v) for v in cpt.values())


def test_non_finite_scores_are_rejected() -> None:
    with pytest.raises(RouterError):
        apgr_cpt(np.array([0.1, np.nan]), np.ones(2), np.zeros(2))
