"""Gradient-boosted trees fitted by scikit-learn, kept and scored as plain arrays (no pickle).

Used on a handful of scalar prompt features, where interactions (e.g. long options *and* many digits)
matter and a linear model cannot see them. A batch walks all trees together, one level per step; one row
(the request path) reads its exit leaves from precomputed leaf bitmasks instead (`predict_one`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
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

    def predict_one(self, x: np.ndarray | Sequence[float]) -> float:
        """`predict` of one row (features,), QuickScorer-style (Lucchese et al., SIGIR 2015): the row's place
        among each used feature's sorted thresholds picks one precomputed row of per-tree leaf bitmasks; their
        AND leaves each tree's exit leaf as its lowest set bit. ~10 numpy calls on (trees,) arrays touching
        ~10 KB (the request path scores one prompt at a time; walking every node touched ~250 KB)."""
        quick = self._quick
        if quick is None:  # a tree with more leaves than a uint64 has bits
            return float(self.predict(np.asarray(x, dtype=np.float64)[None, :])[0])
        feature_of, bounds, first, row_end, table, leaf_value, leaf_base = quick
        # per used feature, how many of its distinct thresholds fail `x <= threshold` (NaN fails them all, as in
        # `predict`): one comparison over the ~600 sorted thresholds, not a bisect per feature over Python floats;
        # counted as (thresholds - passes) from each feature's last table row, which saves negating the comparison
        passes = np.less_equal(np.asarray(x, dtype=np.float64).take(feature_of), bounds)
        rows = row_end - np.add.reduceat(passes, first, dtype=np.intp) if len(first) else first
        mask = np.bitwise_and.reduce(table.take(rows, axis=0), axis=0)
        low = mask - 1
        low ^= mask  # the lowest set bit and every bit below it
        exit_leaf = np.bitwise_count(low)  # 1 + index of the lowest set bit (leaf_base is each tree's first - 1)
        return float(self.baseline + np.add.reduce(leaf_value.take(leaf_base + exit_leaf)))

    @cached_property
    def _quick(self) -> tuple[np.ndarray, ...] | None:
        """(each threshold's feature, the used features' sorted distinct thresholds one feature after another, each
        feature's first threshold, each feature's last table row, table, leaf values, each tree's first leaf
        value's index - 1): leaves are numbered left to right per tree; a node whose test fails rules out
        the leaves of its left subtree, and table row (feature f, k) holds, per tree, the AND of the masks of
        f's nodes with one of f's k smallest thresholds. None when a tree has more leaves than a uint64 has bits."""
        leaves: list[list[int]] = []  # per tree, its leaf nodes left to right
        fails: list[tuple[int, float, int, int]] = []  # (feature, threshold, tree, bits of its left subtree)
        for t, root in enumerate(self.roots.tolist()):
            order: list[int] = []
            stack: list[tuple[int, int]] = [(root, -1)]  # (node, -1) to enter it; (node, first leaf) to close it
            while stack:
                node, first = stack.pop()
                if self.leaf[node]:
                    order.append(node)
                elif first < 0:  # left subtree first: pushed last
                    stack += [(int(self.right[node]), -1), (node, len(order)), (int(self.left[node]), -1)]
                else:  # the left subtree's leaves are order[first:]
                    fails.append((int(self.feature[node]), float(self.threshold[node]), t,
                                  ((1 << len(order)) - 1) ^ ((1 << first) - 1)))
            if len(order) > 64:
                return None
            leaves.append(order)
        width = max(len(o) for o in leaves)
        dtype = next(d for d in (np.uint8, np.uint16, np.uint32, np.uint64) if np.iinfo(d).bits >= width)
        ones = int(np.iinfo(dtype).max)
        feats = sorted({f for f, _, _, _ in fails})
        bounds = [sorted({thr for g, thr, _, _ in fails if g == f}) for f in feats]
        offsets = np.cumsum([0] + [len(b) + 1 for b in bounds]).tolist()
        table = np.full((offsets[-1], len(leaves)), ones, dtype=dtype)
        where = {f: i for i, f in enumerate(feats)}
        for f, thr, t, drop in fails:
            i = where[f]
            table[offsets[i] + 1 + bisect_left(bounds[i], thr), t] &= dtype(ones ^ drop)
        for i in range(len(feats)):  # row k: every node with one of the k smallest thresholds has failed
            np.bitwise_and.accumulate(table[offsets[i]:offsets[i + 1]], axis=0, out=table[offsets[i]:offsets[i + 1]])
        leaf_value = np.zeros((len(leaves), width), dtype=np.float64)
        for t, order in enumerate(leaves):
            leaf_value[t, : len(order)] = self.value[order]
        sizes = [len(b) for b in bounds]
        return (np.repeat(np.asarray(feats, dtype=np.intp), sizes), np.asarray([t for b in bounds for t in b]),
                np.cumsum([0, *sizes[:-1]], dtype=np.intp)[: len(sizes)], np.asarray(offsets[1:], dtype=np.intp) - 1,
                table, leaf_value.ravel(), np.arange(len(leaves), dtype=np.intp) * width - 1)

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
