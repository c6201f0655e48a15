"""Gradient-boosted trees fitted by scikit-learn, kept and scored as plain arrays (no pickle).

Used on a handful of scalar prompt features, where interactions (e.g. long options *and* many digits)
matter and a linear model cannot see them. All trees are walked together, one level per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from gearshift.errors import RouterError

_FIELDS = ("feature", "threshold", "left", "right", "leaf", "value", "roots")


@dataclass(frozen=True)
class TreeEnsemble:
    """Every tree's nodes concatenated; `roots[t]` is tree t's first node; children are absolute indices."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, w: np.ndarray, *, trees: int, learning_rate: float,
            leaves: int, min_leaf: int, seed: int) -> TreeEnsemble:
        """Least-squares boosting on targets in [0, 1] (soft labels), exported to arrays."""
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        model = HistGradientBoostingRegressor(max_iter=trees, learning_rate=learning_rate, max_leaf_nodes=leaves,
                                              min_samples_leaf=min_leaf, l2_regularization=1.0,
                                              early_stopping=False, random_state=seed)
        # One OpenMP thread: on a busy 2-core machine, thread barriers made 200 small trees take 10 s, not 0.4 s.
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(x, y, sample_weight=w)
        return cls.from_sklearn(model)

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        parts: list[np.ndarray] = []
        roots: list[int] = []
        offset = 0
        for (pred,) in model._predictors:
            nodes = pred.nodes
            if np.any(nodes["is_categorical"]):
                raise RouterError("trees: categorical splits are not supported")
            roots.append(offset)
            parts.append(nodes)
            offset += len(nodes)
        if not parts:
            raise RouterError("trees: the model holds no trees")
        nodes = np.concatenate(parts)
        base = np.repeat(np.asarray(roots, dtype=np.int64), [len(p) for p in parts])
        return cls(feature=nodes["feature_idx"].astype(np.int64), threshold=nodes["num_threshold"].astype(np.float64),
                   left=nodes["left"].astype(np.int64) + base, right=nodes["right"].astype(np.int64) + base,
                   leaf=nodes["is_leaf"].astype(bool), value=nodes["value"].astype(np.float64),
                   roots=np.asarray(roots, dtype=np.int64), baseline=float(np.ravel(model._baseline_prediction)[0]))

    @cached_property
    def _max_depth(self) -> int:
        """Levels of the deepest tree (breadth-first over every node)."""
        depth, frontier = 0, self.roots
        while True:
            inner = frontier[~self.leaf[frontier]]
            if not len(inner):
                return depth
            frontier = np.concatenate([self.left[inner], self.right[inner]])
            depth += 1

    def predict_one(self, x: np.ndarray) -> float:
        """`predict` of one row (features,), by pointer doubling: every node's comparison at once, then each
        node's successor composed with itself ceil(log2(depth)) times; ~20x fewer numpy calls than walking
        all trees level by level (the request path scores one prompt at a time)."""
        left, right, hops = self._doubling
        nxt = np.where(np.asarray(x, dtype=np.float64)[self.feature] <= self.threshold, left, right)
        for _ in range(hops):
            nxt = nxt[nxt]
        return float(self.baseline + self.value[nxt[self.roots]].sum())

    @cached_property
    def _doubling(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Children with every leaf its own child (so a leaf stays put), and the hops that reach any leaf."""
        me = np.arange(len(self.leaf), dtype=np.intp)
        left = np.where(self.leaf, me, self.left).astype(np.intp)
        right = np.where(self.leaf, me, self.right).astype(np.intp)
        return left, right, max(1, int(np.ceil(np.log2(self._max_depth + 1))))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Sum of leaf values plus the baseline, for each row of x (n, features)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        node = np.broadcast_to(self.roots, (x.shape[0], len(self.roots))).copy()
        rows = np.arange(x.shape[0])[:, None]
        while True:
            inner = ~self.leaf[node]
            if not inner.any():
                break
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(inner, nxt, node)
        return np.asarray(self.baseline + self.value[node].sum(axis=1), dtype=np.float64)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}{k}": getattr(self, k) for k in _FIELDS}
        out[f"{prefix}baseline"] = np.array([self.baseline])
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> TreeEnsemble:
        try:
            kw = {k: arrays[f"{prefix}{k}"] for k in _FIELDS}
            baseline = float(arrays[f"{prefix}baseline"][0])
        except (KeyError, IndexError) as exc:
            raise RouterError(f"trees: saved state lacks {exc}") from exc
        n = len(kw["feature"])
        if any(len(kw[k]) != n for k in ("threshold", "left", "right", "leaf", "value")) or \
                np.any(kw["left"] >= n) or np.any(kw["right"] >= n):
            raise RouterError("trees: saved arrays are inconsistent")
        return cls(**{k: np.asarray(v) for k, v in kw.items()}, baseline=baseline)
