"""Topic clusters for segments: k-means over the router's own prompt embeddings.

Fitted on a sample of prompts, then each request gets the nearest centroid (one small matrix-vector
product). Using the router's embedding space means a topic segment groups prompts the router itself
sees as alike, which is where its errors cluster. State is plain arrays (npz) plus a JSON manifest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np

from gearshift.errors import ConfigError, RouterError
from gearshift.routers.base import Router
from gearshift.routers.embedding import Embedder, l2_normalise

FORMAT = "gearshift-topics"


def router_embedder(router: Router) -> Embedder | None:
    """The fitted embedder of an embedding router (knn, classifier, ...), or None for rule routers."""
    getter = getattr(router, "_embedder", None)
    if getter is None or not callable(getter):
        return None
    emb = getter()
    return emb if isinstance(emb, Embedder) else None


class TopicModel:
    """Spherical k-means (cosine) with k-means++ seeding; labels are "t0".."t{k-1}"."""

    def __init__(self, k: int = 16, sample: int = 5000, iterations: int = 25, seed: int = 0) -> None:
        self.k = k
        self.sample = sample
        self.iterations = iterations
        self.seed = seed

    def fit(self, vectors: np.ndarray) -> Self:
        x = l2_normalise(np.asarray(vectors, dtype=np.float32))
        if x.ndim != 2 or x.shape[0] < self.k or self.k < 1:
            raise ConfigError(f"topic model needs at least k={self.k} vectors, got shape {x.shape}")
        rng = np.random.default_rng(self.seed)
        if x.shape[0] > self.sample:
            x = x[rng.choice(x.shape[0], self.sample, replace=False)]
        centroids = self._seed(x, rng)
        for _ in range(self.iterations):
            labels = np.argmax(x @ centroids.T, axis=1)
            new = np.zeros_like(centroids)
            np.add.at(new, labels, x)
            empty = np.flatnonzero(~new.any(axis=1))
            new[empty] = centroids[empty]  # an emptied cluster keeps its centre
            new = l2_normalise(new)
            if np.allclose(new, centroids, atol=1e-6):
                centroids = new
                break
            centroids = new
        self.centroids_ = centroids
        return self

    def _seed(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = [int(rng.integers(x.shape[0]))]
        dist = 1.0 - x @ x[chosen[0]]
        for _ in range(1, self.k):
            d = np.clip(dist, 0.0, None).astype(np.float64)
            total = d.sum()
            nxt = int(rng.choice(x.shape[0], p=d / total)) if total > 0 else int(rng.integers(x.shape[0]))
            chosen.append(nxt)
            dist = np.minimum(dist, 1.0 - x @ x[nxt])
        out: np.ndarray = x[chosen].copy()
        return out

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid per row (int64)."""
        centroids = getattr(self, "centroids_", None)
        if centroids is None:
            raise RouterError("topic model is not fitted: call fit() or load()")
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        out: np.ndarray = np.argmax(x @ centroids.T, axis=1).astype(np.int64)
        return out

    def label(self, vector: np.ndarray) -> str:
        return f"t{int(self.assign(vector)[0])}"

    def fit_texts(self, texts: Sequence[str], embedder: Embedder) -> Self:
        return self.fit(embedder.embed(list(texts)))

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if getattr(self, "centroids_", None) is None:
            raise RouterError("topic model is not fitted")
        np.savez(d / "topics.npz", centroids=self.centroids_)
        manifest = {"format": FORMAT, "k": self.k, "sample": self.sample, "iterations": self.iterations,
                    "seed": self.seed}
        (d / "topics.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> TopicModel:
        d = Path(directory)
        try:
            manifest = json.loads((d / "topics.json").read_text(encoding="utf-8"))
            with np.load(d / "topics.npz", allow_pickle=False) as npz:
                centroids = np.asarray(npz["centroids"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise RouterError(f"{d}: unreadable topic model ({exc})") from exc
        if manifest.get("format") != FORMAT or centroids.ndim != 2:
            raise RouterError(f"{d}: not a saved gearshift topic model")
        model = cls(k=int(manifest["k"]), sample=int(manifest["sample"]), iterations=int(manifest["iterations"]),
                    seed=int(manifest["seed"]))
        model.centroids_ = centroids
        return model


class TopicSegmenter:
    """A topic model bound to the router's embedder: the `topic` segment the gateway adds per request."""

    def __init__(self, model: TopicModel, embedder: Embedder) -> None:
        self.model = model
        self.embedder = embedder

    def label(self, text: str) -> str:
        return self.model.label(self.embedder.embed([text])[0])

    async def alabel(self, text: str) -> str:
        """Off the event loop: a model embedder takes milliseconds."""
        import asyncio

        return await asyncio.to_thread(self.label, text)


def load_segmenter(directory: str | Path, router: Router) -> TopicSegmenter:
    """`[segments] topics`: the saved model, checked against the router's embedding space."""
    embedder = router_embedder(router)
    if embedder is None:
        raise ConfigError(f"[segments] topics needs an embedding router (knn, classifier, ...), not {router.name!r}")
    model = TopicModel.load(directory)
    dim = int(np.asarray(embedder.embed(["topic"])).shape[-1])
    if model.centroids_.shape[1] != dim:
        raise ConfigError(f"{directory}: topic model has {model.centroids_.shape[1]}-d centroids but the router "
                          f"embeds in {dim} dimensions; refit with `gearshift topics fit --router-dir`")
    return TopicSegmenter(model, embedder)
