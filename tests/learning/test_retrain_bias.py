"""Retraining on logged traffic: ignoring propensities learns the logging policy; weighting recovers the truth.

Recorded MMLU outcomes (GPT-4 vs Mixtral) replayed through a deliberately bad logging policy (short
prompts strong, long prompts weak, ε = 0.5 exploration): only the chosen tier's outcome is kept.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from gearshift.config import default_data_dir
from gearshift.data.registry import load_dataset
from gearshift.errors import ConfigError
from gearshift.evaluation.curves import apgr_cpt
from gearshift.evaluation.protocols import fixed_split
from gearshift.learning.retrain import retrain, simulate_logged_traffic, training_targets
from gearshift.routers.registry import make_router

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTER = {"embedder": "hashing:dim=32", "folds": 2, "C": 0.1}


def test_ipw_retrain_recovers_full_information_router_naive_drifts() -> None:
    ds = load_dataset("mmlu", default_data_dir())
    split = fixed_split(ds.ids)
    rng = np.random.default_rng(0)
    train = ds.subset(np.sort(rng.permutation(split.train)[:8000]))
    test = ds.subset(np.sort(rng.permutation(split.test)[:2000]))
    length = np.array([len(p) for p in train.prompts])
    logging_scores = 1.0 - np.argsort(np.argsort(length)) / len(length)  # shortest -> 1.0: sent strong
    log = simulate_logged_traffic(train, STRONG, WEAK, logging_scores, epsilon=0.5, seed=0)
    assert 0.45 < log.actions.mean() < 0.55

    def fitted(**kw: object) -> np.ndarray:
        return retrain("classifier", log, **ROUTER, **kw).p_strong(test.prompts)  # type: ignore[arg-type]

    full = make_router("classifier", **ROUTER)
    full.fit(train.prompts, train.scores(STRONG) - train.scores(WEAK))  # type: ignore[attr-defined]
    p_full, p_naive, p_ipw = full.p_strong(test.prompts), fitted(weighting="naive"), fitted(weighting="ipw")
    s, w = test.scores(STRONG), test.scores(WEAK)
    apgr = {k: apgr_cpt(p, s, w)[0] for k, p in (("full", p_full), ("naive", p_naive), ("ipw", p_ipw))}
    test_short = -np.array([len(t) for t in test.prompts], dtype=np.float64)
    rho_logging = {k: spearmanr(p, test_short)[0] for k, p in (("naive", p_naive), ("ipw", p_ipw))}
    rho_full = {k: spearmanr(p, p_full)[0] for k, p in (("naive", p_naive), ("ipw", p_ipw))}

    # naive: learns "short prompts need strong" (the logging rule) and routes worse than random
    assert rho_logging["naive"] > 0.5 and apgr["naive"] < 0.5, (apgr, rho_logging)
    # weighted: no pull toward the logging rule, ranks like the full-information router, same APGR within 0.05
    assert rho_logging["ipw"] < 0.0 and rho_full["ipw"] > 0.5, (rho_logging, rho_full)
    assert apgr["ipw"] >= apgr["full"] - 0.05 and apgr["ipw"] > apgr["naive"] + 0.05, apgr


def test_training_targets_are_unbiased_on_average() -> None:
    """Weighted pseudo-labels average to the full-information soft target in the prompts the logger sent
    strong (uncentred form); unweighted ones do not."""
    ds = load_dataset("gsm8k", default_data_dir())
    length = np.array([len(p) for p in ds.prompts], dtype=np.float64)
    scores = np.argsort(np.argsort(length)) / len(length)
    long = scores >= 0.5
    truth = np.mean((ds.scores(STRONG) - ds.scores(WEAK) + 1)[long] / 2)
    means = {"ipw": [], "naive": []}  # type: dict[str, list[float]]
    for seed in range(30):
        log = simulate_logged_traffic(ds, STRONG, WEAK, scores, epsilon=0.2, seed=seed)
        for k in means:
            _, gaps, weights = training_targets(log, k, centred=False)  # type: ignore[arg-type]
            means[k].append(float(np.sum((weights * (gaps + 1) / 2)[long]) / long.sum()))
    assert abs(np.mean(means["ipw"]) - truth) < 0.01
    assert np.mean(means["naive"]) - truth > 0.1


def test_explored_only_needs_exploration_data() -> None:
    ds = load_dataset("gsm8k", default_data_dir()).subset(range(100))
    log = simulate_logged_traffic(ds, STRONG, WEAK, np.full(100, 0.9), epsilon=0.0, seed=0)
    with pytest.raises(Exception, match="no logged request"):
        training_targets(log, "explored")
    with pytest.raises(ConfigError):
        training_targets(log, "bogus")  # type: ignore[arg-type]


def test_fully_shadowed_traffic_trains_on_the_observed_gaps() -> None:
    """With a judged gap on every request there are no pseudo-labels to reconcile: the targets are the gaps
    themselves (the scale offline training uses, so p_strong keeps its meaning); one unlabelled row brings the
    centred scale back."""
    from gearshift.learning.retrain import LoggedTraffic, training_targets

    gaps = np.array([1.0, 0.0, -1.0, 1.0, 0.0, 0.0])
    traffic = LoggedTraffic(prompts=[f"p{i}" for i in range(6)], actions=np.array([0, 1, 0, 1, 0, 0]),
                            propensities=np.full(6, 0.8), rewards=np.array([0.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
                            explored=np.zeros(6, dtype=bool), label_gaps=gaps)
    _, targets, weights = training_targets(traffic)
    assert np.array_equal(targets, gaps) and np.all(weights == 1.0)
    partial = LoggedTraffic(**{**traffic.__dict__, "label_gaps": np.r_[gaps[:-1], np.nan]})
    _, centred, _ = training_targets(partial)
    assert not np.allclose(centred[:-1], gaps[:-1])  # back on the pseudo-labels' centred scale
