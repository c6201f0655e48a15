"""Embedders: deterministic, normalised, cached on disk; e5 and its static distillation on a few texts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.routers.embedders import (
    CachedEmbedder,
    ConcatEmbedder,
    EmbeddingCache,
    StaticE5Embedder,
    TfidfEmbedder,
    make_embedder,
)
from gearshift.routers.embedders.e5 import E5Embedder
from gearshift.routers.embedding import FittableEmbedder, HashingEmbedder

CORPUS = [
    "Compute the integral of x squared from 0 to 1.",
    "What is the capital city of France?",
    "Solve for x: 3x + 5 = 20.",
    "Who wrote the novel Pride and Prejudice?",
    "Find the derivative of sin(x) * cos(x).",
    "Name the largest planet in the solar system.",
    "def add(a, b): return a + b  # what does this function return?",
    "Translate 'good morning' into Spanish.",
]


class CountingEmbedder:
    """A stand-in expensive embedder that counts the texts it was asked to embed."""

    def __init__(self, key: str = "counting-v1", dim: int = 16) -> None:
        self._key, self._dim = key, dim
        self.calls = 0
        self.inner = HashingEmbedder(dim)

    @property
    def key(self) -> str:
        return self._key

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        return self.inner.embed(texts)


def _assert_unit_rows(x: np.ndarray) -> None:
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_spec_parsing_builds_the_named_embedders() -> None:
    assert isinstance(make_embedder("hashing:dim=64"), HashingEmbedder)
    assert make_embedder("hashing:dim=64").dim == 64
    assert isinstance(make_embedder("tfidf:dim=8"), TfidfEmbedder)
    combo = make_embedder("hashing:dim=32+0.5*tfidf:dim=8")
    assert isinstance(combo, ConcatEmbedder) and combo.dim == 40
    assert isinstance(combo, FittableEmbedder)
    assert not isinstance(make_embedder("hashing"), FittableEmbedder)


@pytest.mark.parametrize("spec", ["nope", "hashing:size=3", "hashing:dim=abc", "-1*hashing", ""])
def test_bad_specs_raise_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        make_embedder(spec)


def test_hashing_is_deterministic_and_normalised() -> None:
    e = make_embedder("hashing:dim=128")
    a, b = e.embed(CORPUS), make_embedder("hashing:dim=128").embed(CORPUS)
    np.testing.assert_array_equal(a, b)
    _assert_unit_rows(a)


def test_tfidf_fits_saves_and_reloads_identically() -> None:
    e = TfidfEmbedder(dim=6).fit(CORPUS)
    x = e.embed(CORPUS)
    _assert_unit_rows(x)
    np.testing.assert_array_equal(x, TfidfEmbedder(dim=6).fit(CORPUS).embed(CORPUS))
    meta, arrays = e.get_state()
    assert all(a.dtype != object for a in arrays.values())
    clone = TfidfEmbedder(dim=6)
    clone.set_state(meta, arrays)
    np.testing.assert_allclose(clone.embed([*CORPUS, "unseen words entirely"]),
                               e.embed([*CORPUS, "unseen words entirely"]), atol=1e-6)
    assert clone.key == e.key
    # Word overlap shows up as similarity: two integral questions are closer than integral vs. capital.
    q = e.embed(["integral of x from 0 to 2", "capital city of Spain"])
    assert float(q[0] @ x[0]) > float(q[0] @ x[1])


def test_combo_blocks_are_weighted_and_normalised() -> None:
    combo = make_embedder("hashing:dim=32+3*tfidf:dim=8")
    assert isinstance(combo, ConcatEmbedder)
    combo.fit(CORPUS)
    x = combo.embed(CORPUS)
    _assert_unit_rows(x)
    # The tfidf block holds 3/4 of the squared norm.
    np.testing.assert_allclose(np.sum(x[:, 32:] ** 2, axis=1), 0.75, atol=1e-5)


def test_cache_hit_avoids_recompute_and_survives_a_new_instance(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, root=tmp_path)
    first = cached.embed(CORPUS + CORPUS[:2])
    assert inner.calls == len(CORPUS)  # duplicates are embedded once
    np.testing.assert_array_equal(cached.embed(CORPUS[::-1]), first[: len(CORPUS)][::-1])
    assert inner.calls == len(CORPUS)
    cached.cache.close()

    inner2 = CountingEmbedder()
    again = CachedEmbedder(inner2, root=tmp_path).embed([*CORPUS, "a new text"])
    assert inner2.calls == 1
    np.testing.assert_array_equal(again[: len(CORPUS)], first[: len(CORPUS)])
    assert (tmp_path / "counting-v1" / "vectors.sqlite").is_file()


def test_cache_ignores_entries_of_another_dimension(tmp_path: Path) -> None:
    EmbeddingCache("k", 4, tmp_path).put_many(["x"], np.ones((1, 4), dtype=np.float32))
    vecs, found = EmbeddingCache("k", 8, tmp_path).get_many(["x"])
    assert not found[0] and vecs.shape == (1, 8)


def test_e5_embeds_a_few_texts_normalised_and_cached(tmp_path: Path) -> None:
    e = make_embedder("e5", cache_dir=tmp_path)
    texts = ["how many legs does a cat have", "number of legs of a kitten", "integrate x squared"]
    x = e.embed(texts)
    assert x.shape == (3, 384)
    _assert_unit_rows(x)
    assert float(x[0] @ x[1]) > float(x[0] @ x[2])
    assert isinstance(e, CachedEmbedder) and len(e.cache) == 3
    np.testing.assert_array_equal(make_embedder("e5", cache_dir=tmp_path).embed(texts[:1]), x[:1])


def test_e5_static_distils_a_tiny_vocabulary_once(tmp_path: Path) -> None:
    texts = ["the cat and the dog", "a kitten and a puppy", "integral and derivative of a function"]
    s = StaticE5Embedder(dim=8, cache_root=tmp_path).fit(texts)
    x = s.embed([*texts, "zzzz qqqq"])
    _assert_unit_rows(x[:3])
    assert not x[3].any()  # no known word: zero vector, not noise
    assert float(x[0] @ x[1]) > float(x[0] @ x[2])  # pets are closer to pets than to calculus
    assert s.coverage(["cat unknownword"]) == 0.5

    calls: list[int] = []

    def spy(batch: Sequence[str]) -> np.ndarray:
        calls.append(len(batch))
        return E5Embedder().embed(batch)

    teacher = CountingEmbedder(key="spy", dim=384)
    teacher.embed = spy  # type: ignore[method-assign]
    StaticE5Embedder(dim=8, cache_root=tmp_path, teacher=teacher).fit(texts)
    n_words = len(s.get_state()[1]["words"])
    assert sum(calls) == n_words
    StaticE5Embedder(dim=8, cache_root=tmp_path, teacher=teacher).fit(texts)
    assert sum(calls) == n_words  # second distillation hits the disk cache

    meta, arrays = s.get_state()
    clone = StaticE5Embedder(dim=8)
    clone.set_state(meta, arrays)
    np.testing.assert_array_equal(clone.embed(texts), s.embed(texts))


def test_tfidf_one_text_fast_paths_equal_their_general_forms() -> None:
    """The ASCII tokeniser equals `_TOKEN_PATTERN`'s regex, and `unique_counts` equals np.unique's counts."""
    import random
    import re
    from itertools import pairwise

    from gearshift.routers.embedders.tfidf import _TOKEN_PATTERN, unique_counts, word_ngrams

    pattern, rng = re.compile(_TOKEN_PATTERN), random.Random(5)
    alphabet = [chr(i) for i in range(128)] + ["a"] * 60 + [" "] * 20 + ["é", "Σ", "²"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 50)))
        tokens = pattern.findall(text.lower())
        assert word_ngrams(text, pattern, 1, 2) == tokens + [f"{a} {b}" for a, b in pairwise(tokens)]
    gen = np.random.default_rng(5)
    for n in (0, 1, 2, 5, 400, 3000):
        cols = gen.integers(0, max(n, 1), n)
        want_cols, want_counts = np.unique(cols, return_counts=True)
        got_cols, got_counts = unique_counts(cols.copy())
        np.testing.assert_array_equal(got_cols, want_cols)
        assert got_counts.dtype == np.float64 and np.array_equal(got_counts, want_counts)
