"""TF-IDF over word and character n-grams, projected to a dense space by truncated SVD.

``dim=0`` skips the projection: the embedder is then sparse-only (`sparse`, no `embed`), for linear
models that score the sparse rows directly, which is sub-millisecond and keeps saved state small.

Fitted on a router's training prompts. Character n-grams catch notation (``x^2``, ``$``, ``def``)
that word tokens miss. The sparse matrix is available to routers that want it (`sparse`); `embed`
returns the SVD projection so kNN and the classifier share one dense interface. State is saved
without pickle: the vocabularies as string arrays, idf and SVD components as float arrays.

Request path: scikit-learn's `transform` costs ~1.5 ms of validation and matrix assembly for one prompt,
so `sparse_row` (and `sparse` on a few texts) re-implements its analyzers (lowercase, token_pattern word
n-grams, char_wb n-grams), vocabulary lookup, sublinear tf, idf and l2 norm in plain Python/numpy, with
per-word char n-gram columns memoised. Large batches keep the vectorised scikit-learn path; the two agree
to float64 rounding (values are float64 on both paths for that reason).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from gearshift.data.text import ascii_word_table, ascii_words
from gearshift.errors import NotFittedError, RouterError
from gearshift.routers.embedding import l2_normalise

_TOKEN_PATTERN = r"(?u)\b\w+\b"
#: `sparse_row` counts n-grams of texts up to this long as one flat list of columns (one np.unique); longer
#: texts merge per-word arrays with numpy, counting each distinct word's n-grams once
DICT_MAX_CHARS = 800
#: Texts up to this many go through the pure-Python analyzers instead of scikit-learn's transform.
FAST_MAX_TEXTS = 8
_WORD_CACHE_MAX = 50_000  # memoised words -> char n-gram columns (cleared when full; a few MB)
# ASCII bytes with every non-word byte made a space: on ASCII text, `_TOKEN_PATTERN`'s tokens are the words of the
# text so translated (`\w` there is [A-Za-z0-9_]); 1.5 us where the regex took 9 on a 120-character prompt
_ASCII_WORDS = ascii_word_table("_")


def word_ngrams(text: str, pattern: re.Pattern[str], lo: int, hi: int) -> list[str]:
    """scikit-learn's word analyzer without stop words: tokens of the lowercased text, then n-grams."""
    text = text.lower()
    if text.isascii() and pattern.pattern == _TOKEN_PATTERN:
        tokens = ascii_words(text, _ASCII_WORDS)
    else:
        tokens = pattern.findall(text)
    out = list(tokens) if lo == 1 else []
    if hi >= 2 and lo <= 2:  # bigrams, the common case, without a join per pair
        out += [f"{a} {b}" for a, b in pairwise(tokens)]
    for n in range(max(lo, 3), min(hi, len(tokens)) + 1):
        out.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return out


def char_wb_ngrams(word: str, lo: int, hi: int) -> list[str]:
    """scikit-learn's char_wb n-grams of one (already lowercased) word, padded with a space each side.

    A padded word no longer than n yields itself once and stops, as scikit-learn does.
    """
    w = f" {word} "
    size = len(w)  # one comprehension, not one per n: ~1.5 us a word, not ~3.5 (a new word per request is usual)
    out = [w[i:i + n] for n in range(lo, min(hi, size - 1) + 1) for i in range(size - n + 1)]
    if hi >= size:
        out.append(w)
    return out


def unique_counts(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(cols, return_counts=True), the counts as float64: sorted in place and counted from the run
    starts; ~10 us where np.unique's Python layers took ~15 (400 columns; half a Counter's cost either way)."""
    n = len(cols)
    cols.sort()
    start = np.empty(n + 1, dtype=bool)
    start[0] = start[n] = True
    np.not_equal(cols[1:], cols[:-1], out=start[1:n])
    at = start.nonzero()[0]
    return cols.take(at[:-1]), np.subtract(at[1:], at[:-1], dtype=np.float64)


def _vocabulary(vec: Any) -> dict[str, int]:
    """Fitted vocabulary, or the one given at construction (a loaded state, before any transform)."""
    vocab = getattr(vec, "vocabulary_", None)
    return vec.vocabulary if vocab is None else vocab  # type: ignore[no-any-return]


class _Block:
    """One fitted vectoriser reduced to what scoring needs: analyzer settings, vocabulary, idf."""

    def __init__(self, analyzer: str, ngram_range: tuple[int, int], token_pattern: str, sublinear: bool,
                 vocab: dict[str, int], idf: np.ndarray, offset: int, scale: float | None = None) -> None:
        self.analyzer = analyzer
        self.scale = scale  # None: each row L2-normalised; else every row divided by this one fitted constant
        self.lo, self.hi = ngram_range
        self.pattern = re.compile(token_pattern)
        self.sublinear = sublinear
        self.vocab = vocab
        self.idf = np.asarray(idf, dtype=np.float64)
        self.offset = offset
        self._words: dict[str, np.ndarray] = {}
        self._word_global: dict[str, np.ndarray] = {}  # word -> its char n-gram columns + offset

    @classmethod
    def of(cls, vec: Any, offset: int, scale: float | None = None) -> _Block:
        if vec.analyzer not in ("word", "char_wb") or not vec.lowercase or vec.strip_accents or vec.stop_words \
                or vec.preprocessor or vec.tokenizer or vec.norm not in ("l2", None) or not vec.use_idf \
                or (vec.norm is None) != (scale is not None):
            raise RouterError("tfidf fast path: vectoriser settings it does not reproduce")
        return cls(vec.analyzer, vec.ngram_range, vec.token_pattern, bool(vec.sublinear_tf), _vocabulary(vec),
                   vec.idf_, offset, scale)

    def _word_cols(self, word: str) -> np.ndarray:
        cols = self._words.get(word)
        if cols is None:
            get = self.vocab.get
            found = [c for c in map(get, char_wb_ngrams(word, self.lo, self.hi)) if c is not None]
            cols = np.asarray(found, dtype=np.int64)
            if len(self._words) >= _WORD_CACHE_MAX:
                self._words = {}
            self._words[word] = cols
        return cols

    def counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted columns, counts) of the in-vocabulary n-grams of one text."""
        if self.analyzer == "word":
            get = self.vocab.get
            found = [c for c in map(get, word_ngrams(text, self.pattern, self.lo, self.hi)) if c is not None]
            cols, reps = np.asarray(found, dtype=np.int64), None
        else:
            words = Counter(text.lower().split())
            parts = [self._word_cols(w) for w in words]
            cols = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            reps = np.repeat(np.fromiter(words.values(), dtype=np.float64, count=len(words)),
                             [len(p) for p in parts])
        if not len(cols):
            return cols, np.zeros(0)
        uniq, inv = np.unique(cols, return_inverse=True)
        return uniq, np.bincount(inv, weights=reps, minlength=len(uniq)).astype(np.float64)

    def add_columns(self, text: str, out: list[np.ndarray]) -> None:
        """Append arrays of the global column of every in-vocabulary n-gram occurrence of one text to `out`.

        One np.unique over their concatenation then counts them: a short prompt has a few hundred n-gram
        occurrences, where a dozen small numpy calls per block (unique, bincount, repeat) cost more. A word's
        char n-gram columns are memoised as one int64 array, not a tuple of Python ints: on a request path whose
        other work evicts the caches, every scattered int object read was a cache miss."""
        off = self.offset
        if self.analyzer == "word":
            get = self.vocab.get
            found = [c for c in map(get, word_ngrams(text, self.pattern, self.lo, self.hi)) if c is not None]
            words = np.array(found, dtype=np.int64)
            out.append(words + off if off else words)
            return
        memo = self._word_global
        for word in text.lower().split():
            cols = memo.get(word)
            if cols is None:
                get = self.vocab.get
                cols = np.array([c + off for c in map(get, char_wb_ngrams(word, self.lo, self.hi)) if c is not None],
                                dtype=np.int64)
                if len(memo) >= _WORD_CACHE_MAX:
                    memo.clear()
                memo[word] = cols
            out.append(cols)

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """TfidfVectorizer.transform of one text as (columns + offset, values)."""
        cols, tf = self.counts(text)
        if self.sublinear:
            tf = np.log(tf) + 1.0
        v = tf * self.idf[cols]
        if self.scale is not None:
            return cols + self.offset, v / self.scale
        norm = float(np.sqrt(v @ v))
        return cols + self.offset, (v / norm if norm > 0 else v)


class TfidfEmbedder:
    def __init__(self, dim: int = 256, word_features: int = 30000, char_features: int = 30000,
                 min_df: int = 2, seed: int = 0, char_max: int = 4, row_norm: bool = True) -> None:
        """`row_norm=False` divides every row by one constant per block (the median training-row norm) instead of
        its own norm: words added to a prompt then leave the weight of its other n-grams unchanged, so neutral
        additions (boilerplate a router learned to ignore) cannot dilute what the prompt is about."""
        self._dim = int(dim)
        self.row_norm = bool(row_norm)
        self._scales: list[float] | None = None
        self.char_max = int(char_max)
        self.word_features = int(word_features)
        self.char_features = int(char_features)
        self.min_df = int(min_df)
        self.seed = int(seed)
        self._vecs: list[Any] | None = None
        # a loaded state: (vocabulary, idf) per block; scikit-learn's vectorisers are built from it only when a
        # batch needs them, so serving one prompt at a time never imports scikit-learn (~50 MB of RSS)
        self._loaded: list[tuple[dict[str, int], np.ndarray]] | None = None
        self._components: np.ndarray | None = None
        self._projection: np.ndarray | None = None
        self._blocks: list[_Block] | None = None
        self._colscale: np.ndarray | None = None
        self._digest = "unfitted"

    @property
    def key(self) -> str:
        char = "" if self.char_max == 4 else f"-c{self.char_max}"
        norm = "" if self.row_norm else "-g"
        return f"tfidf-v1-d{self._dim}{char}{norm}-{self._digest}"

    @property
    def dim(self) -> int:
        return self._dim

    def _vectorizers(self, vocabs: Sequence[dict[str, int] | None] = (None, None)) -> list[Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        common: dict[str, Any] = {"sublinear_tf": True, "lowercase": True, "dtype": np.float64,
                                  "norm": "l2" if self.row_norm else None}
        word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=_TOKEN_PATTERN,
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
        self._loaded = None
        self._scales = None
        if not self.row_norm:
            from scipy.sparse.linalg import norm as row_norms

            sample = texts[:: max(len(texts) // 2000, 1)]
            norms = [row_norms(v.transform(sample), axis=1) for v in vecs]
            self._scales = [float(np.median(n[n > 0])) if np.any(n > 0) else 1.0 for n in norms]
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
        for _, idf in self._vocab_idf():
            h.update(np.asarray(idf, dtype=np.float32).tobytes())
        self._digest = h.hexdigest()[:12]
        self._blocks = None
        self._colscale = None

    def _vocab_idf(self) -> list[tuple[dict[str, int], np.ndarray]]:
        if self._vecs is not None:
            return [(_vocabulary(v), np.asarray(v.idf_, dtype=np.float64)) for v in self._vecs]
        if self._loaded is not None:
            return self._loaded
        raise NotFittedError("tfidf embedder is not fitted")

    def _sk(self) -> list[Any]:
        """The scikit-learn vectorisers (built from a loaded state on first use)."""
        if self._vecs is None:
            if self._loaded is None:
                raise NotFittedError("tfidf embedder is not fitted")
            vecs = self._vectorizers([vocab for vocab, _ in self._loaded])
            for v, (_, idf) in zip(vecs, self._loaded, strict=True):
                v.idf_ = idf
            self._vecs = vecs
        return self._vecs

    @property
    def n_features(self) -> int:
        """Columns of `sparse`: the word vocabulary, then the char vocabulary."""
        return sum(len(b.vocab) for b in self._fast_blocks())

    def _fast_blocks(self) -> list[_Block]:
        if self._blocks is None:
            parts = self._vocab_idf()
            blocks, offset = [], 0
            scales: list[float | None] = [*self._scales] if self._scales else [None] * len(parts)
            if self._vecs is not None:
                for v, scale in zip(self._vecs, scales, strict=True):
                    blocks.append(_Block.of(v, offset, scale))
                    offset += len(blocks[-1].vocab)
            else:
                specs = [("word", (1, 2)), ("char_wb", (2, self.char_max))]
                for (analyzer, ngrams), (vocab, idf), scale in zip(specs, parts, scales, strict=True):
                    blocks.append(_Block(analyzer, ngrams, _TOKEN_PATTERN, True, vocab, idf, offset, scale))
                    offset += len(vocab)
            self._blocks = blocks
            if all(b.scale is not None and b.sublinear for b in blocks):
                # global scaling: a column's value is (1 + log tf) times this constant, precomputed once
                k = 1 / np.sqrt(len(blocks))
                self._colscale = np.concatenate([b.idf / float(b.scale or 1.0) * k for b in blocks])
        return self._blocks

    def column_scale(self) -> np.ndarray | None:
        """With global scaling, each column's constant: a row's value there is (1 + log tf) times it (`sparse_row`
        on texts `counted_row` takes); None with per-row norms."""
        self._fast_blocks()
        return self._colscale

    def counted_row(self, text: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(ascending columns, float64 term counts) of one text's in-vocabulary n-grams, when the scaling is global
        and the text short enough to count its flat list of n-gram columns; else None (use `sparse_row`)."""
        blocks = self._fast_blocks()
        if self._colscale is None or len(text) > DICT_MAX_CHARS:
            return None
        found: list[np.ndarray] = []
        for b in blocks:
            b.add_columns(text, found)
        return unique_counts(np.concatenate(found))

    def sparse_row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One text's row of `sparse` as (column indices, float64 values), without scikit-learn; the columns
        ascending (both ways of counting sort them)."""
        blocks = self._fast_blocks()
        counted = self.counted_row(text)
        if counted is not None and self._colscale is not None:
            cols, tf = counted
            return cols, (np.log(tf) + 1.0) * self._colscale[cols]
        rows = [b.row(text) for b in blocks]
        scale = 1 / np.sqrt(len(blocks))
        return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]) * scale

    def sparse(self, texts: Sequence[str]) -> Any:
        """(n, vocabulary) float64 scipy CSR: word and char blocks, each L2-normalised, scaled to unit rows."""
        import scipy.sparse as sp

        if self._vecs is None and self._loaded is None:
            raise NotFittedError("tfidf embedder is not fitted")
        if len(texts) <= FAST_MAX_TEXTS:
            rows = [self.sparse_row(t) for t in texts]
            indptr = np.r_[0, np.cumsum([len(r[0]) for r in rows], dtype=np.int64)]
            data = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
            idx = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, dtype=np.int64)
            return sp.csr_matrix((data, idx, indptr), shape=(len(rows), self.n_features))
        blocks = [v.transform(list(texts)) for v in self._sk()]
        if self._scales is not None:
            blocks = [b * (1.0 / scale) for b, scale in zip(blocks, self._scales, strict=True)]
        return sp.hstack(blocks, format="csr", dtype=np.float64) * (1 / np.sqrt(len(blocks)))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._components is None:
            raise NotFittedError("tfidf embedder is not fitted")
        if self._dim == 0:
            raise RouterError("tfidf:dim=0 is sparse-only: use sparse(), or give dim > 0 for dense embeddings")
        x = self.sparse(texts)
        return l2_normalise(np.asarray(x @ self._projection, dtype=np.float32))

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._components is None:
            raise NotFittedError("tfidf embedder is not fitted")
        arrays: dict[str, np.ndarray] = {"components": self._components}
        for name, (vocab, idf) in zip(("word", "char"), self._vocab_idf(), strict=True):
            terms = np.empty(len(vocab), dtype=object)
            for term, i in vocab.items():
                terms[i] = term
            arrays[f"{name}_terms"] = np.array(terms.tolist(), dtype=np.str_)
            arrays[f"{name}_idf"] = np.asarray(idf, dtype=np.float64)
        meta: dict[str, Any] = {"dim": self._dim, "char_max": self.char_max}
        if self._scales is not None:
            meta["block_scales"] = list(self._scales)
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            self.char_max = int(meta.get("char_max", self.char_max))
            scales = meta.get("block_scales")
            self.row_norm = scales is None
            self._scales = [float(x) for x in scales] if scales is not None else None
            vocabs = [{str(t): i for i, t in enumerate(arrays[f"{n}_terms"].tolist())} for n in ("word", "char")]
            idfs = [np.asarray(arrays[f"{n}_idf"], dtype=np.float64) for n in ("word", "char")]
            if any(len(idf) != len(vocab) for vocab, idf in zip(vocabs, idfs, strict=True)):
                raise ValueError("idf and vocabulary sizes differ")
            self._loaded = list(zip(vocabs, idfs, strict=True))
            self._vecs = None
            self._set_components(arrays["components"] if self._dim else np.zeros((0, 0), dtype=np.float32))
        except (KeyError, ValueError) as exc:
            raise RouterError(f"tfidf state does not load: {exc}") from exc
