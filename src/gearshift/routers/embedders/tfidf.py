"""TF-IDF over word and character n-grams, projected to a dense space by truncated SVD.

``dim=0`` skips the projection: the embedder is then sparse-only (`sparse`, no `embed`), for linear
models that score the sparse rows directly, which is sub-millisecond and keeps saved state small.

Fitted on a router's training prompts. Character n-grams catch notation (``x^2``, ``$``, ``def``)
that word tokens miss. The sparse matrix is available to routers that want it (`sparse`); `embed`
returns the SVD projection so kNN and the classifier share one dense interface. State is saved
without pickle: the vocabularies as string arrays, idf and SVD components as float arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from gearshift.errors import NotFittedError, RouterError
from gearshift.routers.embedding import l2_normalise


class TfidfEmbedder:
    def __init__(self, dim: int = 256, word_features: int = 30000, char_features: int = 30000,
                 min_df: int = 2, seed: int = 0, char_max: int = 4) -> None:
        self._dim = int(dim)
        self.char_max = int(char_max)
        self.word_features = int(word_features)
        self.char_features = int(char_features)
        self.min_df = int(min_df)
        self.seed = int(seed)
        self._vecs: list[Any] | None = None
        self._components: np.ndarray | None = None
        self._projection: np.ndarray | None = None
        self._digest = "unfitted"

    @property
    def key(self) -> str:
        char = "" if self.char_max == 4 else f"-c{self.char_max}"
        return f"tfidf-v1-d{self._dim}{char}-{self._digest}"

    @property
    def dim(self) -> int:
        return self._dim

    def _vectorizers(self, vocabs: Sequence[dict[str, int] | None] = (None, None)) -> list[Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        common: dict[str, Any] = {"sublinear_tf": True, "lowercase": True, "dtype": np.float32}
        word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b",
                               max_features=self.word_features, min_df=self.min_df, vocabulary=vocabs[0], **common)
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, self.char_max), max_features=self.char_features,
                               min_df=self.min_df, vocabulary=vocabs[1], **common)
        return [word, char]

    def fit(self, texts: Sequence[str]) -> TfidfEmbedder:
        from sklearn.decomposition import TruncatedSVD

        texts = list(texts)
        if len(texts) < 2:
            raise RouterError("tfidf needs at least two training texts")
        vecs = self._vectorizers()
        if len(texts) < 50:  # tiny corpora (tests): keep every n-gram
            for v in vecs:
                v.set_params(min_df=1)
        for v in vecs:
            v.fit(texts)
        self._vecs = vecs
        if self._dim == 0:
            self._set_components(np.zeros((0, 0), dtype=np.float32))
            return self
        x = self.sparse(texts)
        k = min(self._dim, x.shape[1] - 1, len(texts) - 1)
        svd = TruncatedSVD(n_components=max(k, 1), algorithm="randomized", n_iter=4, random_state=self.seed)
        svd.fit(x)
        comp = np.zeros((self._dim, x.shape[1]), dtype=np.float32)
        comp[: svd.components_.shape[0]] = svd.components_
        self._set_components(comp)
        return self

    def _set_components(self, comp: np.ndarray) -> None:
        self._components = np.ascontiguousarray(comp, dtype=np.float32)
        # (vocabulary, dim) C-contiguous: sparse @ dense touches only the rows of present n-grams. The
        # transposed view made scipy copy the whole matrix per call (20 ms per prompt, measured).
        self._projection = np.ascontiguousarray(self._components.T)
        h = hashlib.sha256(self._components.tobytes())
        for v in self._vecs or []:
            h.update(np.asarray(v.idf_, dtype=np.float32).tobytes())
        self._digest = h.hexdigest()[:12]

    def sparse(self, texts: Sequence[str]) -> Any:
        """(n, vocabulary) scipy CSR: word and char blocks, each L2-normalised, scaled to unit rows."""
        import scipy.sparse as sp

        if self._vecs is None:
            raise NotFittedError("tfidf embedder is not fitted")
        blocks = [v.transform(list(texts)) for v in self._vecs]
        return sp.hstack(blocks, format="csr", dtype=np.float32) * np.float32(1 / np.sqrt(len(blocks)))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._components is None:
            raise NotFittedError("tfidf embedder is not fitted")
        if self._dim == 0:
            raise RouterError("tfidf:dim=0 is sparse-only: use sparse(), or give dim > 0 for dense embeddings")
        x = self.sparse(texts)
        return l2_normalise(np.asarray(x @ self._projection, dtype=np.float32))

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._vecs is None or self._components is None:
            raise NotFittedError("tfidf embedder is not fitted")
        arrays: dict[str, np.ndarray] = {"components": self._components}
        for name, v in zip(("word", "char"), self._vecs, strict=True):
            terms = np.empty(len(v.vocabulary_), dtype=object)
            for term, i in v.vocabulary_.items():
                terms[i] = term
            arrays[f"{name}_terms"] = np.array(terms.tolist(), dtype=np.str_)
            arrays[f"{name}_idf"] = np.asarray(v.idf_, dtype=np.float64)
        return {"dim": self._dim, "char_max": self.char_max}, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            self.char_max = int(meta.get("char_max", self.char_max))
            vocabs = [{str(t): i for i, t in enumerate(arrays[f"{n}_terms"].tolist())} for n in ("word", "char")]
            vecs = self._vectorizers(vocabs)
            for name, v in zip(("word", "char"), vecs, strict=True):
                v.idf_ = arrays[f"{name}_idf"]
            self._vecs = vecs
            self._set_components(arrays["components"] if self._dim else np.zeros((0, 0), dtype=np.float32))
        except (KeyError, ValueError) as exc:
            raise RouterError(f"tfidf state does not load: {exc}") from exc
