"""The evaluation fit cache: a rerun on the same training data loads the fitted router instead of refitting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.data.records import Dataset, write_jsonl
from gearshift.data.registry import load_dataset
from gearshift.evaluation.labels import default_pair
from gearshift.evaluation.protocols import fixed_split
from gearshift.evaluation.runner import EvalResult, evaluate
from gearshift.routers.ensemble import StackRouter


@pytest.fixture(scope="module")
def gsm8k_small() -> tuple[Dataset, Dataset, str, str]:
    """300 real GSM8K prompts, split by the fixed 80/20 protocol."""
    ds = load_dataset("gsm8k")
    ds = ds.subset(range(300), name="gsm8k-300")
    fold = fixed_split(ds.ids)
    strong, weak = default_pair(ds)
    return ds.subset(fold.train, name="train"), ds.subset(fold.test, name="test"), strong, weak


@pytest.fixture
def fit_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts StackRouter.fit calls (one entry per call, holding the number of training prompts)."""
    calls: list[int] = []
    original = StackRouter.fit

    def counting(self: StackRouter, prompts: Sequence[Any], gaps: Any, sample_weight: Any = None) -> StackRouter:
        calls.append(len(prompts))
        return original(self, prompts, gaps, sample_weight)

    monkeypatch.setattr(StackRouter, "fit", counting)
    return calls


def _run(train: Dataset, test: Dataset, strong: str, weak: str, cache: Path | None, **params: Any) -> EvalResult:
    router = StackRouter(folds=3, trees=20, **params)
    return evaluate(router, train, test, strong, weak, n_boot=0, progress=False, with_segments=False,
                    fit_cache=cache)


def test_second_evaluate_loads_the_fit_and_scores_identically(tmp_path: Path, fit_calls: list[int],
                                                              gsm8k_small: tuple[Dataset, Dataset, str, str]) -> None:
    train, test, strong, weak = gsm8k_small
    first = _run(train, test, strong, weak, tmp_path)
    second = _run(train, test, strong, weak, tmp_path)
    assert fit_calls == [len(train)]
    np.testing.assert_array_equal(second.p_strong, first.p_strong)
    assert second.metrics.apgr == first.metrics.apgr
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file() and entries[0].name.startswith("stack-")


def test_different_training_data_or_settings_refit(tmp_path: Path, fit_calls: list[int],
                                                   gsm8k_small: tuple[Dataset, Dataset, str, str]) -> None:
    train, test, strong, weak = gsm8k_small
    _run(train, test, strong, weak, tmp_path)
    fewer = train.subset(range(len(train) - 1))
    _run(fewer, test, strong, weak, tmp_path)
    _run(train, test, strong, weak, tmp_path, C=1.0)
    _run(train, test, strong, weak, tmp_path)  # the first fit again: cached
    assert fit_calls == [len(train), len(train) - 1, len(train)]
    assert len(list(tmp_path.iterdir())) == 3


def test_without_a_cache_every_evaluate_fits(tmp_path: Path, fit_calls: list[int],
                                             gsm8k_small: tuple[Dataset, Dataset, str, str]) -> None:
    train, test, strong, weak = gsm8k_small
    _run(train, test, strong, weak, None)
    _run(train, test, strong, weak, None)
    assert len(fit_calls) == 2


def test_unreadable_cached_fit_is_refitted_and_replaced(tmp_path: Path, fit_calls: list[int],
                                                        gsm8k_small: tuple[Dataset, Dataset, str, str]) -> None:
    train, test, strong, weak = gsm8k_small
    first = _run(train, test, strong, weak, tmp_path)
    (entry,) = tmp_path.iterdir()
    (entry / "state.npz").write_bytes(b"not an npz")
    again = _run(train, test, strong, weak, tmp_path)
    third = _run(train, test, strong, weak, tmp_path)
    assert len(fit_calls) == 2
    np.testing.assert_array_equal(again.p_strong, first.p_strong)
    np.testing.assert_array_equal(third.p_strong, first.p_strong)


def test_cli_caches_fits_and_no_cache_bypasses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               fit_calls: list[int],
                                               gsm8k_small: tuple[Dataset, Dataset, str, str]) -> None:
    train, test, _, _ = gsm8k_small
    data = write_jsonl(Dataset("gsm8k-small", train.records + test.records, train.models, train.notes),
                       tmp_path / "gsm8k.jsonl")
    monkeypatch.setenv("GEARSHIFT_CACHE_DIR", str(tmp_path / "cache"))
    args = ["eval", "--test", str(data), "--router", "stack:folds=3,trees=20", "--n-boot", "0", "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0
    assert len(fit_calls) == 1 and len(list((tmp_path / "cache" / "fits").iterdir())) == 1
    assert main([*args, "--no-cache"]) == 0
    assert len(fit_calls) == 2
