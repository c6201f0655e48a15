from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pytest

from evaluation.eval_synthetic import STRONG, WEAK, make_dataset
from gearshift.config import default_data_dir
from gearshift.data.registry import load_dataset
from gearshift.errors import RouterError
from gearshift.evaluation.protocols import fixed_split, group_kfold
from gearshift.evaluation.runner import evaluate, evaluate_folds
from gearshift.routers.base import PromptLike, RoutingScore, TrainableRouter, prompt_text
from gearshift.routers.registry import make_router


class LengthRouter(TrainableRouter):
    """Learns which direction prompt length points: enough to tell whether fit saw the gaps."""

    name = "length-test"

    def __init__(self, scale: float = 100.0) -> None:
        self.scale = scale

    def fit(self, prompts: Sequence[PromptLike], gaps: np.ndarray | Sequence[float],
            sample_weight: np.ndarray | Sequence[float] | None = None) -> Self:
        lengths = np.array([len(prompt_text(p)) for p in prompts], dtype=float)
        self.sign_ = float(np.sign(np.corrcoef(lengths, np.asarray(gaps, dtype=float))[0, 1]))
        return self

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        self._check_fitted()
        return [RoutingScore(p_strong=float(1 / (1 + np.exp(-self.sign_ * (len(prompt_text(p)) - 200) / self.scale))),
                             confidence=1.0, reason="length") for p in prompts]

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"sign": self.sign_}, {}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.sign_ = meta["sign"]


def test_trainable_router_is_fitted_on_train_gaps_and_beats_random() -> None:
    ds = make_dataset(600)
    fold = fixed_split(ds.ids)
    train, test = ds.subset(fold.train), ds.subset(fold.test)
    res = evaluate(LengthRouter(), train, test, STRONG, WEAK, n_boot=200, progress=False)
    rand = evaluate(make_router("random"), None, test, STRONG, WEAK, n_boot=200, progress=False)
    assert res.n_test == len(test)
    assert res.metrics.apgr > rand.metrics.apgr
    assert res.ci is not None and res.ci.intervals["apgr"].lo > 0.5
    assert res.references["oracle"].apgr > res.metrics.apgr


def test_unfitted_trainable_router_without_train_data_is_an_error() -> None:
    with pytest.raises(RouterError):
        evaluate(LengthRouter(), None, make_dataset(50), STRONG, WEAK, progress=False)


def test_to_json_has_stable_keys_and_is_strict_json() -> None:
    ds = make_dataset(300)
    res = evaluate(make_router("random"), None, ds, STRONG, WEAK, n_boot=100, progress=False)
    j = res.to_json()
    for key in ("apgr", "cpt50", "cpt80", "cpt95", "aiq", "confusion", "references", "ci", "segments", "n_test",
                "router", "strong", "weak", "notes"):
        assert key in j
    assert set(j["references"]) == {"all_cheap", "all_strong", "oracle", "random"}
    assert set(j["segments"]) == {"subject", "language", "script", "length_bucket", "has_code"}
    assert j["segments"]["subject"]["algebra"]["n"] == 150
    assert "apgr" in j["segments"]["subject"]["algebra"]
    assert "costs are synthetic" in j["notes"]
    json.dumps(j, allow_nan=False)


def test_group_folds_pool_out_of_fold_scores_over_every_prompt() -> None:
    ds = make_dataset(400)
    folds = group_kfold(ds.segment("subject"), k=2)
    res = evaluate_folds(LengthRouter, ds, folds, STRONG, WEAK, protocol="group:subject", progress=False,
                         n_boot=50)
    assert res.n_test == 400 and sorted(res.ids) == sorted(ds.ids)
    assert res.metrics.apgr > 0.55


def test_real_gsm8k_slice_orders_oracle_above_random() -> None:
    ds = load_dataset("gsm8k", default_data_dir())
    part = ds.subset(range(400))
    strong, weak = part.model_names()[-1], part.model_names()[0]
    res = evaluate(make_router("random"), None, part, strong, weak, n_boot=300, progress=False)
    assert res.ci is not None and res.ci.intervals["apgr"].contains(0.5)
    assert res.references["oracle"].apgr > 0.9
    assert res.metrics.aiq_axis == "cost"  # the loader estimates costs from text
