"""A static word table distilled from e5 (the model2vec recipe, word-level): microseconds per prompt.

Fitting picks the vocabulary (the most frequent word types of the training prompts), embeds each
word alone with e5 (batched, through the disk cache, so a word is distilled once per machine), then
centres and PCA-reduces the table and scales each row by the word's IDF. A prompt's embedding is the
IDF-weighted mean of its known words' vectors: a dictionary lookup and a small sum, no model.
Words outside the vocabulary are skipped; a prompt with none embeds as the zero vector.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gearshift.errors import NotFittedError, RouterError
from gearshift.routers.embedders.cache import EmbeddingCache
from gearshift.routers.embedders.e5 import E5_DIM, E5Embedder
from gearshift.routers.embedding import Embedder, l2_normalise, tokens

WORD_CACHE_KEY = "e5-small-v1-word"


class StaticE5Embedder:
    def __init__(self, dim: int = 256, vocab_size: int = 20000, min_count: int = 2,
                 cache_root: str | Path | None = None, teacher: Embedder | None = None) -> None:
        self._dim = int(dim)
        self.vocab_size = int(vocab_size)
        self.min_count = int(min_count)
        self.cache_root = cache_root
        self._teacher = teacher
        self._index: dict[str, int] | None = None
        self._words: list[str] = []
        self._table: np.ndarray | None = None
        self._digest = "unfitted"

    @property
    def key(self) -> str:
        return f"e5-static-v1-d{self._dim}-{self._digest}"

    @property
    def dim(self) -> int:
        return self._dim

    def distill(self, words: Sequence[str]) -> np.ndarray:
        """e5 vectors of single words, (len(words), 384), via the disk cache (progress bar when long)."""
        teacher = self._teacher or E5Embedder()
        cache = EmbeddingCache(f"{WORD_CACHE_KEY}-{teacher.key}" if self._teacher else WORD_CACHE_KEY,
                               teacher.dim, self.cache_root)
        try:
            return cache.fetch_or_compute(list(words), teacher.embed, batch_size=128, label="distilling e5-static")
        finally:
            cache.close()

    def fit(self, texts: Sequence[str]) -> StaticE5Embedder:
        df: Counter[str] = Counter()
        tf: Counter[str] = Counter()
        for text in texts:
            toks = tokens(text)
            tf.update(toks)
            df.update(set(toks))
        min_count = self.min_count if len(texts) >= 50 else 1
        words = [w for w, c in tf.most_common(self.vocab_size) if c >= min_count]
        if not words:
            raise RouterError("e5-static: no words to build a vocabulary from")
        raw = self.distill(words).astype(np.float64)
        mean = raw.mean(axis=0)
        centred = raw - mean
        k = min(self._dim, len(words), raw.shape[1])
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        reduced = np.zeros((len(words), self._dim))
        reduced[:, :k] = centred @ vt[:k].T
        n = max(len(texts), 1)
        idf = np.log((1 + n) / (1 + np.array([df[w] for w in words], dtype=np.float64))) + 1.0
        self._set_table(words, (reduced * idf[:, None]).astype(np.float32))
        return self

    def _set_table(self, words: list[str], table: np.ndarray) -> None:
        self._words = list(words)
        self._index = {w: i for i, w in enumerate(self._words)}
        self._table = np.ascontiguousarray(table, dtype=np.float32)
        h = hashlib.sha256(self._table.tobytes())
        h.update("\n".join(self._words).encode("utf-8"))
        self._digest = h.hexdigest()[:12]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._index is None or self._table is None:
            raise NotFittedError("e5-static embedder is not fitted")
        index, table = self._index, self._table
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = [i for i in (index.get(t) for t in tokens(text)) if i is not None]
            if ids:
                out[row] = table[ids].sum(axis=0)
        return l2_normalise(out)

    def coverage(self, texts: Sequence[str]) -> float:
        """Share of word tokens found in the vocabulary: low coverage means the table knows little."""
        if self._index is None:
            raise NotFittedError("e5-static embedder is not fitted")
        toks = [t for text in texts for t in tokens(text)]
        return sum(t in self._index for t in toks) / max(len(toks), 1)

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._table is None:
            raise NotFittedError("e5-static embedder is not fitted")
        return {"dim": self._dim}, {"words": np.array(self._words, dtype=np.str_), "table": self._table}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            words = [str(w) for w in arrays["words"].tolist()]
            table = np.asarray(arrays["table"], dtype=np.float32)
        except KeyError as exc:
            raise RouterError(f"e5-static state does not load: missing {exc}") from exc
        if table.shape != (len(words), self._dim):
            raise RouterError(f"e5-static state: table shape {table.shape} does not match {len(words)} words")
        self._set_table(words, table)


__all__ = ["E5_DIM", "StaticE5Embedder"]
