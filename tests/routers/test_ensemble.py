"""The stack router and the array-exported trees it relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import RouterError
from gearshift.routers.ensemble import SHAPE_FEATURES, StackRouter, shape_features
from gearshift.routers.trees import TreeEnsemble

from .conftest import mmlu_slice


def test_exported_trees_predict_what_sklearn_predicts() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] * x[:, 1] > 0).astype(float)
    model = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=7, random_state=0).fit(x, y)
    trees = TreeEnsemble.from_sklearn(model)
    np.testing.assert_allclose(trees.predict(x), model.predict(x), atol=1e-9)
    again = TreeEnsemble.from_arrays(trees.arrays("t."), "t.")
    np.testing.assert_allclose(again.predict(x[:7]), model.predict(x[:7]), atol=1e-9)


def test_shape_features_see_options_and_numbers() -> None:
    mc = dict(zip(SHAPE_FEATURES, shape_features("Pick one?\nA. 12\nB. a much longer option here\nC. 3\nD. 4"),
                  strict=True))
    story = dict(zip(SHAPE_FEATURES, shape_features("Tom has 3 apples and buys 2.5 kg more for $4."), strict=True))
    assert mc["n_options"] == 4 and story["n_options"] == 0
    assert mc["option_spread"] > 0 and story["log_numbers"] > 0 and story["decimal_share"] > 0


def test_stack_learns_real_mmlu_signal_and_round_trips(tmp_path: Path) -> None:
    prompts, gaps = mmlu_slice(60)
    n = len(prompts)
    idx = np.random.default_rng(0).permutation(n)
    tr, te = idx[: int(0.7 * n)], idx[int(0.7 * n):]
    router = StackRouter(folds=3, trees=30).fit([prompts[i] for i in tr], gaps[tr])
    test = [prompts[i] for i in te]
    p = router.p_strong(test)
    assert np.all((p > 0) & (p < 1)) and p.std() > 0.01
    # Prompts the strong model rescued score higher than prompts where it did not help, on average.
    assert p[gaps[te] > 0].mean() > p[gaps[te] <= 0].mean()
    loaded = StackRouter.load(router.save(tmp_path / "stack"))
    np.testing.assert_allclose(loaded.p_strong(test), p, atol=1e-9)
    s = loaded.score(test[0])
    assert s.ood is not None and s.ood > 0 and set(s.features) == {"ngram_logit", "shape_trees"}


def test_stack_rejects_too_few_prompts() -> None:
    with pytest.raises(RouterError):
        StackRouter(folds=5).fit(["a", "b", "c"], [1.0, -1.0, 0.0])
