from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import DataError
from gearshift.evaluation.protocols import fixed_split, group_kfold, kfold


def test_fixed_split_is_stable_and_about_80_20() -> None:
    ids = [f"mmlu-{i}" for i in range(5000)]
    a = fixed_split(ids)
    b = fixed_split(list(ids))
    assert np.array_equal(a.test, b.test)
    assert 0.18 < len(a.test) / len(ids) < 0.22
    assert set(a.train.tolist()).isdisjoint(a.test.tolist())
    assert len(a.train) + len(a.test) == len(ids)


def test_fixed_split_depends_on_ids_not_on_order_or_neighbours() -> None:
    ids = [f"q{i}" for i in range(1000)]
    test_ids = {ids[i] for i in fixed_split(ids).test}
    shuffled = [*reversed(ids[300:]), "extra-1", "extra-2"]
    test_ids2 = {shuffled[i] for i in fixed_split(shuffled).test}
    assert test_ids2 - {"extra-1", "extra-2"} == test_ids & set(shuffled)


def test_kfold_covers_every_prompt_once() -> None:
    folds = kfold(103, k=5, seed=1)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(103))
    for f in folds:
        assert set(f.train.tolist()).isdisjoint(f.test.tolist())
        assert len(f.train) + len(f.test) == 103


def test_group_held_out_never_trains_on_a_test_group() -> None:
    rng = np.random.default_rng(0)
    groups = [f"subject{int(g)}" for g in rng.integers(0, 12, 600)]
    folds = group_kfold(groups, k=4, seed=0)
    seen_in_test: set[str] = set()
    for f in folds:
        train_groups = {groups[i] for i in f.train}
        test_groups = {groups[i] for i in f.test}
        assert train_groups.isdisjoint(test_groups)
        seen_in_test |= test_groups
    assert seen_in_test == set(groups)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) < 2 * min(sizes)


def test_protocols_reject_impossible_settings() -> None:
    with pytest.raises(DataError):
        group_kfold(["a", "a", "b"], k=3)
    with pytest.raises(DataError):
        kfold(3, k=5)
    with pytest.raises(DataError):
        fixed_split(["a"], test_fraction=1.5)


def test_copies_of_a_prompt_never_straddle_train_and_test() -> None:
    """MMLU records ~100 texts twice: a protocol given keys keeps each copy off the other side."""
    from gearshift.data.text import dedupe_key
    from gearshift.evaluation.protocols import fixed_split, group_kfold, kfold

    base = [f"Question number {i}: what is {i} squared?" for i in range(200)]
    prompts = base + [p.upper() + "  " for p in base[:60]]  # 60 copies, differently formatted
    ids = [f"q{i}" for i in range(len(prompts))]
    keys = [dedupe_key(p) for p in prompts]
    groups = [f"g{i % 7}" for i in range(len(prompts))]
    folds = [fixed_split(ids, keys=keys), *kfold(len(prompts), 5, 0, keys=keys),
             *group_kfold(groups, 5, 0, keys=keys)]
    without = fixed_split(ids)
    assert any(keys[i] in {keys[j] for j in without.train} for i in without.test)  # the copies do straddle
    for fold in folds:
        train_keys = {keys[i] for i in fold.train}
        assert not any(keys[i] in train_keys for i in fold.test), fold.name
        assert len(fold.test) > 0
    tested = np.concatenate([f.test for f in folds[1:6]])
    assert sorted(tested.tolist()) == list(range(len(prompts)))  # k-fold still tests every prompt once
