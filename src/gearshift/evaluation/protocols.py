"""Evaluation protocols: which prompts a router learns from and which it is judged on.

- ``split``: the fixed 80/20 split by prompt id. A prompt is in the test part iff the SHA-256 of
  ``salt + id`` falls in the lowest 20% of the hash range, so the split is the same on every run and
  machine, stable when records are added or reordered; benchmarks rely on it.
- ``kfold``: k folds over prompts (seeded shuffle); predictions are pooled out-of-fold.
- ``group``: folds over the values of one segment (e.g. MMLU subject), so every test prompt's group
  was never seen in training; predictions are pooled out-of-fold.
- ``cross``: train on one dataset, test on another.

Copies of one prompt (the same `data.text.dedupe_key`: MMLU alone has ~100 texts recorded twice) never sit on
both sides: given `keys`, ``kfold`` keeps every copy in one fold, and ``fixed_split`` / ``group_kfold`` drop from
a fold's training side the copies of its test prompts (`without_shared`), so no test prompt was trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gearshift.errors import DataError

SPLIT_SALT = "gearshift-split-v1"


@dataclass(frozen=True)
class Fold:
    name: str
    train: np.ndarray  # indices into the dataset
    test: np.ndarray


def id_fraction(prompt_id: str, salt: str = SPLIT_SALT) -> float:
    """A stable pseudo-uniform number in [0, 1) for an id."""
    digest = hashlib.sha256((salt + prompt_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def without_shared(fold: Fold, keys: Sequence[str]) -> Fold:
    """`fold` with every training prompt removed whose key is also a test prompt's key."""
    test_keys = {keys[i] for i in fold.test}
    keep = np.array([keys[i] not in test_keys for i in fold.train], dtype=bool)
    return Fold(fold.name, fold.train[keep] if len(fold.train) else fold.train, fold.test)


def fixed_split(ids: Sequence[str], test_fraction: float = 0.2, salt: str = SPLIT_SALT,
                keys: Sequence[str] | None = None) -> Fold:
    """The deterministic train/test split by hashed id (see module docstring)."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be within (0, 1), got {test_fraction}")
    is_test = np.array([id_fraction(i, salt) < test_fraction for i in ids], dtype=bool)
    fold = Fold("split", np.flatnonzero(~is_test), np.flatnonzero(is_test))
    return fold if keys is None else without_shared(fold, _check_keys(keys, len(ids)))


def _check_keys(keys: Sequence[str], n: int) -> Sequence[str]:
    if len(keys) != n:
        raise DataError(f"{len(keys)} de-duplication keys for {n} prompts")
    return keys


def kfold(n: int, k: int = 5, seed: int = 0, keys: Sequence[str] | None = None) -> list[Fold]:
    """k folds over prompts; with `keys`, over distinct keys, so copies of a prompt share a fold."""
    if k < 2 or k > n:
        raise DataError(f"k-fold needs 2 <= k <= number of prompts ({n}), got k={k}")
    if keys is None:
        group = np.arange(n)
    else:
        _, group = np.unique(np.asarray(_check_keys(keys, n), dtype=object), return_inverse=True)
        if group.max(initial=-1) + 1 < k:
            raise DataError(f"k-fold needs at least k={k} distinct prompts")
    perm = np.random.default_rng(seed).permutation(int(group.max(initial=-1)) + 1)
    fold_of = np.empty(len(perm), dtype=np.int64)
    for i, part in enumerate(np.array_split(perm, k)):
        fold_of[part] = i
    assignment = fold_of[group]
    return [Fold(f"fold{i + 1}", np.flatnonzero(assignment != i), np.flatnonzero(assignment == i)) for i in range(k)]


def group_kfold(groups: Sequence[str], k: int = 5, seed: int = 0, keys: Sequence[str] | None = None) -> list[Fold]:
    """Folds that never split a group; groups are balanced by size (largest first into the emptiest fold).

    `seed` shuffles groups of equal size so different seeds give different, still balanced, folds. With `keys`,
    a training prompt that is a copy of a test prompt (filed under another group) leaves that fold's training side.
    """
    arr = np.asarray(groups, dtype=object)
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) < k or k < 2:
        raise DataError(f"group-held-out needs 2 <= k <= number of groups ({len(uniq)}), got k={k}")
    tiebreak = np.random.default_rng(seed).permutation(len(uniq))
    order = np.lexsort((tiebreak, -counts))
    load = np.zeros(k, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for gi in order:
        f = int(np.argmin(load))
        fold_of[str(uniq[gi])] = f
        load[f] += counts[gi]
    assignment = np.array([fold_of[str(g)] for g in arr])
    folds = [Fold(f"group-fold{f + 1}", np.flatnonzero(assignment != f), np.flatnonzero(assignment == f))
             for f in range(k)]
    if keys is None:
        return folds
    checked = _check_keys(keys, len(arr))
    return [without_shared(f, checked) for f in folds]
