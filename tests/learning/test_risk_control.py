"""Risk-controlled thresholds hold their promise on held-out recorded outcomes (MMLU, GPT-4 vs Mixtral)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from gearshift.config import default_data_dir
from gearshift.data.registry import load_dataset
from gearshift.errors import ConfigError
from gearshift.learning.risk_control import calibrate_risk, cheap_losses
from gearshift.routers.registry import make_router

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
N_SPLITS = 60


@pytest.fixture(scope="module")
def mmlu() -> tuple[np.ndarray, np.ndarray]:
    """Scores of a router trained on 2,500 MMLU prompts, and cheap-routing losses on 6,000 others."""
    ds = load_dataset("mmlu", default_data_dir())
    perm = np.random.default_rng(7).permutation(len(ds))
    train, held = ds.subset(np.sort(perm[:2500])), ds.subset(np.sort(perm[2500:8500]))
    router = make_router("classifier", embedder="hashing:dim=32", folds=2, C=0.3)
    router.fit(train.prompts, train.scores(STRONG) - train.scores(WEAK))  # type: ignore[attr-defined]
    p = router.p_strong(held.prompts)
    return p, cheap_losses(held.scores(STRONG), held.scores(WEAK))


def _splits(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.argsort(rng.random((N_SPLITS, n)), axis=1)  # each row: a random permutation


def _run(p: np.ndarray, loss: np.ndarray, alpha: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(realised test loss, calibration strong share) per split: calibrate on one half, test on the other."""
    perms = _splits(len(p))
    half = len(p) // 2
    test_loss, share = np.empty(N_SPLITS), np.empty(N_SPLITS)
    for i, perm in enumerate(perms):
        cal, test = perm[:half], perm[half:]
        res = calibrate_risk(p[cal], loss[cal], max_quality_loss=alpha, confidence=0.9, method=method)  # type: ignore[arg-type]
        test_loss[i] = np.mean(loss[test] * (p[test] < res.threshold))
        share[i] = res.strong_share
        assert res.loss_bound <= alpha + 1e-12
    return test_loss, share


def test_ltt_bound_holds_on_held_out_halves(mmlu: tuple[np.ndarray, np.ndarray]) -> None:
    p, loss = mmlu
    assert loss.mean() > 0.1  # routing everything cheap would lose far more than the bound
    test_loss, share = _run(p, loss, 0.03, "ltt")
    # promised: loss <= 0.03 with probability >= 0.9; allow the binomial slack of 60 splits
    allowed = binom.ppf(0.99, N_SPLITS, 0.1)
    assert np.sum(test_loss > 0.03) <= allowed
    assert share.max() < 1.0  # it does send some traffic cheap


def test_looser_bound_buys_a_lower_strong_share(mmlu: tuple[np.ndarray, np.ndarray]) -> None:
    p, loss = mmlu
    _, tight = _run(p, loss, 0.02, "ltt")
    loose_loss, loose = _run(p, loss, 0.05, "ltt")
    assert np.all(loose <= tight)
    assert loose.mean() < tight.mean() - 0.05
    assert np.sum(loose_loss > 0.05) <= binom.ppf(0.99, N_SPLITS, 0.1)


def test_crc_controls_the_expected_loss(mmlu: tuple[np.ndarray, np.ndarray]) -> None:
    p, loss = mmlu
    test_loss, share = _run(p, loss, 0.03, "crc")
    # CRC promises E[loss] <= alpha: the mean over splits stays under it up to sampling error
    assert test_loss.mean() <= 0.03 + 3 * test_loss.std() / np.sqrt(N_SPLITS)
    # and, promising less than LTT, it routes at least as much traffic cheap
    _, ltt_share = _run(p, loss, 0.03, "ltt")
    assert share.mean() <= ltt_share.mean()


def test_small_calibration_set_falls_back_to_all_strong() -> None:
    p = np.linspace(0, 1, 50)
    res = calibrate_risk(p, np.ones(50), max_quality_loss=0.02, confidence=0.95)
    assert res.threshold == 0.0 and res.strong_share == 1.0 and res.empirical_loss == 0.0


def test_binomial_p_value_refuses_graded_losses() -> None:
    with pytest.raises(ConfigError):
        calibrate_risk([0.1, 0.9], [0.5, 0.0], p_value_kind="binomial")
