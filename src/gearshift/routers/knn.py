"""k-nearest-neighbour router: a prompt needs the strong model as much as its closest training prompts did.

Interpretable (the reason names how many neighbours needed the strong model) and needs no training
beyond embedding, but keeps every training embedding in its state and pays a matrix-vector product
per prompt (~11k x 256 floats: well under a millisecond).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.base import PromptLike, RoutingScore, TrainableRouter, router_text
from gearshift.routers.embedders.space import (
    SpecEmbedder,
    build_embedder,
    fit_embed,
    load_embedder,
    ood_ratio,
    ood_scale,
    saved_embedder,
    top_similarities,
    training_targets,
)
from gearshift.routers.embedding import Embedder


class KNNRouter(SpecEmbedder, TrainableRouter):
    """`weighting`: "distance" (1 / (cosine distance + 0.05)) or "uniform". `prior_strength` shrinks
    p_strong toward the training base rate by that many average neighbours. `ood_neighbours` is the
    m of the `ood` ratio.
    """

    name = "knn"
    version = "2"  # reads canonical text (data.text.canonical)

    def __init__(self, embedder: str = "e5-static", k: int = 32, weighting: str = "distance",
                 target: str = "soft", eps: float = 0.0, prior_strength: float = 1.0,
                 ood_neighbours: int = 5, cache_dir: str | None = None) -> None:
        self.embedder = embedder
        self.k = k
        self.weighting = weighting
        self.target = target
        self.eps = eps
        self.prior_strength = prior_strength
        self.ood_neighbours = ood_neighbours
        self.cache_dir = cache_dir
        self._emb: Embedder | None = None

    def fit(self, prompts: Sequence[PromptLike], gaps: np.ndarray | Sequence[float],
            sample_weight: np.ndarray | Sequence[float] | None = None) -> Self:
        if self.weighting not in ("distance", "uniform"):
            raise RouterError(f"knn: unknown weighting {self.weighting!r}")
        if self.k < 1:
            raise RouterError("knn: k must be at least 1")
        texts, self.y_, w = training_targets(prompts, gaps, sample_weight, self.target, self.eps,
                                             min_prompts=2, who="knn")
        self._emb = build_embedder(self.embedder, self.cache_dir)
        self.X_ = np.ascontiguousarray(fit_embed(self._emb, texts), dtype=np.float32)
        self.w_ = w
        self.prior_ = float(np.average(self.y_, weights=w))
        self.ood_scale_ = ood_scale(self.X_, self.ood_neighbours)
        return self

    def score_batch(self, prompts: Sequence[PromptLike]) -> list[RoutingScore]:
        self._check_fitted()
        if not prompts:
            return []
        q = self._embedder().embed([router_text(p) for p in prompts])
        idx, sims = top_similarities(q, self.X_, max(self.k, self.ood_neighbours))
        idx, ksims = idx[:, : self.k], sims[:, : self.k]
        dist = np.clip(1.0 - ksims.astype(np.float64), 0.0, 2.0)
        wk = self.w_[idx] * (1.0 / (dist + 0.05) if self.weighting == "distance" else 1.0)
        yk = self.y_[idx]
        alpha = self.prior_strength * wk.mean(axis=1)
        mass = wk.sum(axis=1)
        hits = np.sum(wk * yk, axis=1)
        p = (hits + alpha * self.prior_) / np.maximum(mass + alpha, 1e-12)
        raw = hits / np.maximum(mass, 1e-12)
        agree = np.maximum(raw, 1.0 - raw)
        ood = ood_ratio(sims, self.ood_neighbours, self.ood_scale_)
        out = []
        for i in range(len(prompts)):
            out.append(RoutingScore(
                p_strong=float(p[i]),
                confidence=float(agree[i]),
                reason=f"knn: {raw[i]:.0%} of {idx.shape[1]} nearest training prompts (weighted) needed strong",
                features={"neighbour_mean": float(raw[i]), "nearest_similarity": float(sims[i, 0])},
                ood=float(ood[i]),
            ))
        return out

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        emeta, earrays = saved_embedder(self._embedder())
        meta = {"prior": self.prior_, "ood_scale": self.ood_scale_, **emeta}
        return meta, {"X": self.X_, "y": self.y_, "w": self.w_, **earrays}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            emb = load_embedder(self.embedder, self.cache_dir, meta, arrays, "knn")
            self._emb = emb
            self.X_ = np.ascontiguousarray(arrays["X"], dtype=np.float32)
            self.y_ = np.asarray(arrays["y"], dtype=np.float64)
            self.w_ = np.asarray(arrays["w"], dtype=np.float64)
            self.prior_ = float(meta["prior"])
            self.ood_scale_ = float(meta["ood_scale"])
        except KeyError as exc:
            raise RouterError(f"knn: saved state lacks {exc}") from exc
        if self.X_.shape != (len(self.y_), emb.dim):
            raise RouterError(f"knn: saved embeddings have shape {self.X_.shape}, expected (n, {emb.dim})")
