"""What embedding routers share: building/fitting/saving the embedder, soft targets, and `ood`.

`ood` is the mean cosine distance from a prompt to its `m` nearest training prompts, divided by the
median of the same quantity measured leave-one-out on the training prompts themselves: ~1 means as
close to the training data as a typical training prompt is, well above 1 means unfamiliar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.base import as_gaps, as_weights, router_text
from gearshift.routers.embedders import make_embedder
from gearshift.routers.embedding import Embedder, FittableEmbedder

_CHUNK = 512
EMB_PREFIX = "emb."


def build_embedder(spec: str, cache_dir: str | None) -> Embedder:
    return make_embedder(spec, cache_dir=cache_dir)


def fit_embed(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Fit the embedder on `texts` if it learns from data, then embed them."""
    if isinstance(embedder, FittableEmbedder):
        embedder.fit(texts)
    return embedder.embed(texts)


def embedder_state(embedder: Embedder) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not isinstance(embedder, FittableEmbedder):
        return {}, {}
    meta, arrays = embedder.get_state()
    return meta, {EMB_PREFIX + k: v for k, v in arrays.items()}


def restore_embedder(embedder: Embedder, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    if isinstance(embedder, FittableEmbedder):
        n = len(EMB_PREFIX)
        embedder.set_state(meta, {k[n:]: v for k, v in arrays.items() if k.startswith(EMB_PREFIX)})


def saved_embedder(embedder: Embedder) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Manifest entries and arrays that let `load_embedder` rebuild this embedder and check it is the same."""
    emeta, earrays = embedder_state(embedder)
    return {"embedder_key": embedder.key, "embedder_state": emeta}, earrays


def load_embedder(spec: str, cache_dir: str | None, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                  owner: str) -> Embedder:
    """Rebuild the embedder a router saved with `saved_embedder`; a different key means different vectors."""
    emb = build_embedder(spec, cache_dir)
    restore_embedder(emb, meta.get("embedder_state", {}), arrays)
    if emb.key != meta.get("embedder_key", emb.key):
        raise RouterError(f"{owner}: embedder {emb.key} differs from the saved {meta.get('embedder_key')}")
    return emb


class SpecEmbedder:
    """Mixin for routers configured with an embedder spec string (`embedder`, `cache_dir`): built on first use."""

    embedder: str
    cache_dir: str | None
    _emb: Embedder | None

    def _embedder(self) -> Embedder:
        if self._emb is None:
            self._emb = build_embedder(self.embedder, self.cache_dir)
        return self._emb


def soft_labels(gaps: np.ndarray, target: str, eps: float) -> np.ndarray:
    """The per-prompt "strong needed" target in [0, 1].

    "hard": 1 when the strong model gained more than `eps`. "soft": (gap + 1) / 2, whose ranking is
    the expected gain, the quantity APGR rewards (a prompt both models fail is not "strong needed").
    """
    if target == "hard":
        return (gaps > eps).astype(np.float64)
    if target == "soft":
        return np.clip((gaps + 1.0) / 2.0, 0.0, 1.0)
    raise RouterError(f"unknown target {target!r} (use 'hard' or 'soft')")


def training_targets(prompts: Sequence[Any], gaps: np.ndarray | Sequence[float],
                     sample_weight: np.ndarray | Sequence[float] | None, target: str, eps: float, *,
                     min_prompts: int, who: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, soft targets, weights) of a router's `fit` arguments, checked: at least `min_prompts`
    prompts and some positive weight, else a RouterError naming `who`."""
    texts = [router_text(p) for p in prompts]
    w = as_weights(sample_weight, len(texts))
    if len(texts) < min_prompts or w.sum() <= 0:
        raise RouterError(f"{who} needs at least {min_prompts} training prompts with positive weight")
    return texts, soft_labels(as_gaps(gaps, len(texts)), target, eps), w


def weighted_log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Mean weighted binary cross-entropy of probabilities `p` (clipped away from 0 and 1) on soft targets `y`."""
    q = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.sum(w * (y * np.log(q) + (1 - y) * np.log(1 - q))) / np.sum(w))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function; clipped so a probability never rounds to exactly 0 or 1."""
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))), dtype=np.float64)


_TIE_DECIMALS = 5


def top_similarities(queries: np.ndarray, refs: np.ndarray, k: int,
                     exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities) of the k most similar reference rows, best first."""
    k = max(1, min(k, refs.shape[0] - int(exclude_self)))
    idx_out = np.empty((queries.shape[0], k), dtype=np.int64)
    sim_out = np.empty((queries.shape[0], k), dtype=np.float32)
    for start in range(0, queries.shape[0], _CHUNK):
        sims = queries[start : start + _CHUNK] @ refs.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf
        # Rounded, and ties broken by row index: a batch and a single query differ in the last float32 bits
        # (BLAS blocking), and canonical text makes exact ties common (prompts differing only in a number).
        key = np.round(sims, _TIE_DECIMALS)
        if k < sims.shape[1]:
            kth = -np.partition(-key, k - 1, axis=1)[:, k - 1]
            part = np.empty((sims.shape[0], k), dtype=np.int64)
            for r in range(sims.shape[0]):
                cand = np.flatnonzero(key[r] >= kth[r])
                part[r] = cand[np.lexsort((cand, -key[r, cand]))[:k]]
        else:
            part = np.tile(np.arange(sims.shape[1]), (sims.shape[0], 1))
            part = np.take_along_axis(part, np.argsort(-key, axis=1, kind="stable"), axis=1)
        idx_out[start : start + _CHUNK] = part
        sim_out[start : start + _CHUNK] = np.take_along_axis(sims, part, axis=1)
    return idx_out, sim_out


def ood_scale(refs: np.ndarray, m: int, sample: int = 2000, seed: int = 0) -> float:
    """Median leave-one-out mean distance to the m nearest training rows (on a sample of rows)."""
    n = refs.shape[0]
    if n < 2:
        return 1.0
    rows = np.random.default_rng(seed).permutation(n)[: min(sample, n)]
    # Put the sampled rows first so exclude_self lines up with their own position.
    order = np.concatenate([rows, np.setdiff1d(np.arange(n), rows)])
    _, sims = top_similarities(refs[order][: len(rows)], refs[order], m, exclude_self=True)
    d = np.median(1.0 - sims.mean(axis=1))
    return float(max(d, 1e-6))


def ood_ratio(sims: np.ndarray, m: int, scale: float) -> np.ndarray:
    return np.asarray((1.0 - sims[:, :m].mean(axis=1)) / scale, dtype=np.float64)
