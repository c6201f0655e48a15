"""Evaluation protocols: which prompts a router learns from and which it is judged on.

- ``split``: the fixed 80/20 split by prompt id. A prompt is in the test part iff the SHA-256 of
  ``salt + id`` falls in the lowest 20% of the hash range, so the split is the same on every run and
  machine, stable when records are added or reordered; benchmarks rely on it.
- ``kfold``: k folds over prompts (seeded shuffle); predictions are pooled out-of-fold.
- ``group``: folds over the values of one segment (e.g. MMLU subject), so every test prompt's group
  was never seen in training; predictions are pooled out-of-fold.
- ``cross``: train on one dataset, test on another.
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


def fixed_split(ids: Sequence[str], test_fraction: float = 0.2, salt: str = SPLIT_SALT) -> Fold:
    """The deterministic train/test split by hashed id (see module docstring)."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be within (0, 1), got {test_fraction}")
    is_test = np.array([id_fraction(i, salt) < test_fraction for i in ids], dtype=bool)
    return Fold("split", np.flatnonzero(~is_test), np.flatnonzero(is_test))


def kfold(n: int, k: int = 5, seed: int = 0) -> list[Fold]:
    if k < 2 or k > n:
        raise DataError(f"k-fold needs 2 <= k <= number of prompts ({n}), got k={k}")
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, k)
    return [
        Fold(f"fold{i + 1}", np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])), np.sort(part))
        for i, part in enumerate(parts)
    ]


def group_kfold(groups: Sequence[str], k: int = 5, seed: int = 0) -> list[Fold]:
    """Folds that never split a group; groups are balanced by size (largest first into the emptiest fold).

    `seed` shuffles groups of equal size so different seeds give different, still balanced, folds.
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
    return [
        Fold(f"group-fold{f + 1}", np.flatnonzero(assignment != f), np.flatnonzero(assignment == f))
        for f in range(k)
    ]
