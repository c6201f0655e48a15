"""Classifier router: calibrated, honours sample weights, saves as arrays, reports ood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import NotFittedError, RouterError
from gearshift.routers.classifier import FEATURE_NAMES, ClassifierRouter, prompt_features

from ._synthetic import synthetic

INTEGRAL = "what is the integral of x^5 from 0 to 3"
TRIVIA = "what colour is the sky on day 4 of 7"


def fitted(**params: object) -> ClassifierRouter:
    prompts, gaps = synthetic()
    return ClassifierRouter(**{"embedder": "hashing:dim=256", "folds": 3, **params}).fit(  # type: ignore[arg-type]
        prompts, gaps)


@pytest.mark.parametrize("params", [{}, {"target": "hard"}, {"model": "mlp", "hidden": 8},
                                    {"embedder": "tfidf:dim=16", "tune_C": True}, {"scalar_features": False}])
def test_learns_a_separable_signal(params: dict[str, object]) -> None:
    r = fitted(**params)
    hi, lo = r.score_batch([INTEGRAL, TRIVIA])
    assert hi.p_strong > 0.5 > lo.p_strong
    assert hi.confidence >= 0.5 and lo.confidence >= 0.5


def test_tuning_picks_c_from_the_grid() -> None:
    r = fitted(tune_C=True)
    assert r.C_ in (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@pytest.mark.parametrize("params", [{}, {"model": "mlp", "hidden": 8}, {"embedder": "tfidf:dim=16+hashing:dim=64"}])
def test_save_load_gives_identical_scores(tmp_path: Path, params: dict[str, object]) -> None:
    r = fitted(**params)
    loaded = ClassifierRouter.load(r.save(tmp_path / "r"))
    probe = [INTEGRAL, TRIVIA, "12 + 7 = ? def f(x): return x"]
    np.testing.assert_array_equal(loaded.p_strong(probe), r.p_strong(probe))
    assert [s.ood for s in loaded.score_batch(probe)] == [s.ood for s in r.score_batch(probe)]
    with np.load(tmp_path / "r" / "state.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_ood_is_larger_for_unrelated_text() -> None:
    familiar, strange = fitted().score_batch([INTEGRAL, "Bonjour, où se trouve la gare routière ?"])
    assert familiar.ood is not None and strange.ood is not None
    assert strange.ood > 1.5 * familiar.ood


def test_sample_weight_changes_the_fit() -> None:
    prompts, gaps = synthetic()
    w = np.where(gaps > 0, 0.1, 1.0)
    base = ClassifierRouter(embedder="hashing:dim=256", folds=3).fit(prompts, gaps)
    weighted = ClassifierRouter(embedder="hashing:dim=256", folds=3).fit(prompts, gaps, sample_weight=w)
    assert weighted.score(INTEGRAL).p_strong < base.score(INTEGRAL).p_strong


def test_scalar_features_see_code_math_and_length() -> None:
    f = dict(zip(FEATURE_NAMES, prompt_features("```python\ndef f(x):\n    return x**2\n```\nWhy? 2+2=?"), strict=True))
    g = dict(zip(FEATURE_NAMES, prompt_features("Tell me a story"), strict=True))
    assert f["has_code"] == 1.0 and g["has_code"] == 0.0
    assert f["math_ratio"] > g["math_ratio"] == 0.0
    assert f["log_questions"] > 0 and f["log_chars"] > g["log_chars"]


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        ClassifierRouter().score("x")
    prompts, gaps = synthetic(16)
    with pytest.raises(RouterError):
        ClassifierRouter(embedder="hashing", model="forest", folds=2).fit(prompts, gaps)
    with pytest.raises(RouterError):
        ClassifierRouter(embedder="hashing", folds=2).fit(prompts, np.zeros(16) - 1)
