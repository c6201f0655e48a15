from __future__ import annotations

import numpy as np

from gearshift.evaluation.bootstrap import bootstrap_ci
from gearshift.evaluation.curves import apgr_cpt


def test_intervals_contain_the_point_estimates(outcomes_10k: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    hard, ss, sw = outcomes_10k
    p = hard + np.random.default_rng(2).normal(0, 0.3, len(hard))
    apgr, cpt = apgr_cpt(p, ss, sw)
    res = bootstrap_ci(p, ss, sw, n_boot=300, seed=1)
    assert res.intervals["apgr"].contains(apgr)
    for level, key in ((0.5, "cpt50"), (0.8, "cpt80"), (0.95, "cpt95")):
        assert res.intervals[key].contains(cpt[level])
    width = res.intervals["apgr"].hi - res.intervals["apgr"].lo
    assert 0 < width < 0.1


def test_seeded_resamples_are_reproducible_and_narrow_with_more_data() -> None:
    rng = np.random.default_rng(0)
    p_small, p_big = rng.random(300), rng.random(5000)
    ss_small, sw_small = (rng.random(300) < 0.8) * 1.0, (rng.random(300) < 0.5) * 1.0
    ss_big, sw_big = (rng.random(5000) < 0.8) * 1.0, (rng.random(5000) < 0.5) * 1.0
    a = bootstrap_ci(p_small, ss_small, sw_small, n_boot=200, seed=4)
    b = bootstrap_ci(p_small, ss_small, sw_small, n_boot=200, seed=4)
    assert a.intervals == b.intervals
    big = bootstrap_ci(p_big, ss_big, sw_big, n_boot=200, seed=4)
    small_w = a.intervals["apgr"].hi - a.intervals["apgr"].lo
    big_w = big.intervals["apgr"].hi - big.intervals["apgr"].lo
    assert big_w < small_w
    assert big.intervals["apgr"].contains(0.5)  # a random router
