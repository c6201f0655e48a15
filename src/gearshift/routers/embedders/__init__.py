"""Embedders made from spec strings, so routers keep JSON settings and pickle-free state.

Spec grammar: ``block ("+" block)*`` with ``block = [weight "*"] name [":" key=value ("," key=value)*]``.
Names: ``hashing`` (dim), ``tfidf`` (dim, word_features, char_features, min_df), ``e5`` (disk-cached),
``e5-static`` (dim, vocab_size, min_count). Examples: ``"hashing:dim=2048"``,
``"tfidf+e5-static"``, ``"0.5*tfidf:dim=128+e5-static"``. Several blocks are L2-normalised each,
scaled by sqrt(weight share) and concatenated, so their cosine is the weighted mean of block cosines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gearshift.errors import ConfigError, NotFittedError, did_you_mean
from gearshift.routers.embedders.cache import CachedEmbedder, EmbeddingCache, text_hash
from gearshift.routers.embedders.e5 import E5Embedder
from gearshift.routers.embedders.static import StaticE5Embedder
from gearshift.routers.embedders.tfidf import TfidfEmbedder
from gearshift.routers.embedding import Embedder, FittableEmbedder, HashingEmbedder, l2_normalise

__all__ = [
    "CachedEmbedder",
    "ConcatEmbedder",
    "E5Embedder",
    "EmbeddingCache",
    "StaticE5Embedder",
    "TfidfEmbedder",
    "make_embedder",
    "text_hash",
]

_PARAMS: dict[str, dict[str, type]] = {
    "hashing": {"dim": int},
    "tfidf": {"dim": int, "word_features": int, "char_features": int, "min_df": int},
    "e5": {},
    "e5-static": {"dim": int, "vocab_size": int, "min_count": int},
}


class ConcatEmbedder:
    """Weighted concatenation of blocks; fittable blocks are fitted and saved through it."""

    def __init__(self, blocks: Sequence[Embedder], weights: Sequence[float]) -> None:
        self.blocks = list(blocks)
        total = float(sum(weights))
        self.scales = [float(np.sqrt(w / total)) for w in weights]

    @property
    def key(self) -> str:
        return "+".join(f"{s * s:.3g}*{b.key}" for b, s in zip(self.blocks, self.scales, strict=True))

    @property
    def dim(self) -> int:
        return sum(b.dim for b in self.blocks)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        parts = [b.embed(texts) * np.float32(s) for b, s in zip(self.blocks, self.scales, strict=True)]
        return l2_normalise(np.concatenate(parts, axis=1))

    def fit(self, texts: Sequence[str]) -> ConcatEmbedder:
        for b in self.blocks:
            if isinstance(b, FittableEmbedder):
                b.fit(texts)
        return self

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for i, b in enumerate(self.blocks):
            if isinstance(b, FittableEmbedder):
                m, a = b.get_state()
                meta[str(i)] = m
                arrays.update({f"{i}.{k}": v for k, v in a.items()})
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for i, b in enumerate(self.blocks):
            if isinstance(b, FittableEmbedder):
                if str(i) not in meta:
                    raise NotFittedError(f"saved state has no block {i} ({b.key})")
                prefix = f"{i}."
                b.set_state(meta[str(i)], {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})


def _parse_block(block: str) -> tuple[float, str, dict[str, Any]]:
    weight = 1.0
    if "*" in block:
        w, block = block.split("*", 1)
        try:
            weight = float(w)
        except ValueError:
            raise ConfigError(f"embedder spec: bad weight {w!r}") from None
        if not weight > 0:
            raise ConfigError(f"embedder spec: weight must be positive, got {weight}")
    name, _, rest = block.strip().partition(":")
    name = name.strip()
    if name not in _PARAMS:
        raise ConfigError(f"unknown embedder {name!r} ({did_you_mean(name, _PARAMS)}known: {', '.join(_PARAMS)})")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = item.partition("=")
        if not eq or k.strip() not in _PARAMS[name]:
            raise ConfigError(f"embedder {name!r}: bad parameter {item!r} (takes {sorted(_PARAMS[name])})")
        try:
            params[k.strip()] = _PARAMS[name][k.strip()](v.strip())
        except ValueError:
            raise ConfigError(f"embedder {name!r}: {k.strip()}={v.strip()!r} is not a number") from None
    return weight, name, params


def _make_one(name: str, params: dict[str, Any], cache_dir: str | Path | None) -> Embedder:
    if name == "hashing":
        return HashingEmbedder(**params)
    if name == "tfidf":
        return TfidfEmbedder(**params)
    if name == "e5":
        return CachedEmbedder(E5Embedder(), root=cache_dir)
    return StaticE5Embedder(cache_root=cache_dir, **params)


def make_embedder(spec: str, cache_dir: str | Path | None = None) -> Embedder:
    """Build an embedder from its spec; `cache_dir` overrides the embeddings cache root (tests)."""
    blocks = [b for b in (s.strip() for s in spec.split("+")) if b]
    if not blocks:
        raise ConfigError("empty embedder spec")
    parsed = [_parse_block(b) for b in blocks]
    made = [_make_one(name, params, cache_dir) for _, name, params in parsed]
    if len(made) == 1 and parsed[0][0] == 1.0:
        return made[0]
    return ConcatEmbedder(made, [w for w, _, _ in parsed])
