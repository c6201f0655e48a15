"""The stack router's one-prompt OOD similarities (`stack_one.RefIndex`) against a plain float64 product."""

from __future__ import annotations

import numpy as np
import pytest

from gearshift.routers.stack_one import RefIndex

N_REF, N_COLS, N_DENSE = 60, 50, 23  # columns 0..22 in most reference rows (dense), the rest in a few (sparse)


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]]:
    """(the reference as a dense float32 array, its CSR arrays) with unit rows, as a saved stack holds them."""
    rng = np.random.default_rng(7)
    dense = np.zeros((N_REF, N_COLS), dtype=np.float32)
    present = np.concatenate([rng.random((N_REF, N_DENSE)) < 0.8, rng.random((N_REF, N_COLS - N_DENSE)) < 0.1],
                             axis=1)
    present[:, -3:] = False  # columns no reference row holds
    dense[present] = rng.random(int(present.sum())).astype(np.float32) + 0.01
    dense /= np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
    rows, cols = np.nonzero(dense)
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=N_REF))]
    return dense, (dense[rows, cols], cols.astype(np.int32), indptr, (N_REF, N_COLS))


@pytest.mark.parametrize("steps", [8, 4096])  # sparse entry offsets precomputed, or too few of them (np.arange)
@pytest.mark.parametrize("chunk", [4, 64])
@pytest.mark.parametrize("which", ["dense-only", "dense-multiple-of-chunk", "sparse-only", "unseen-only", "mixed",
                                   "mixed-with-unseen", "empty"])
def test_one_row_similarities_equal_the_full_product(
        reference: tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]], which: str,
        chunk: int, steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way `RefIndex` gets one row's similarities (dense rows copied `CHUNK` at a time, the column-major
    rest, the whole-reference pass for long rows) equals the float64 product, whichever columns the row has."""
    monkeypatch.setattr(RefIndex, "DENSE_DF", 20)
    monkeypatch.setattr(RefIndex, "CHUNK", chunk)
    monkeypatch.setattr(RefIndex, "STEPS", steps)
    dense, csr = reference
    ref = RefIndex(*csr)
    assert ref.n_frequent == N_DENSE  # the fixture's split held
    cols = {"dense-only": np.arange(N_DENSE), "dense-multiple-of-chunk": np.arange(8),
            "sparse-only": np.arange(N_DENSE, N_COLS - 3), "unseen-only": np.arange(N_COLS - 3, N_COLS),
            "mixed": np.arange(0, N_COLS - 3, 2), "mixed-with-unseen": np.arange(1, N_COLS, 3),
            "empty": np.zeros(0, dtype=np.int64)}[which]
    vals = np.random.default_rng(len(cols)).random(len(cols)) - 0.3
    want = dense[:, cols].astype(np.float64) @ vals
    layout = ref.columns()[cols].astype(np.int64)
    got = {"gathered": ref.gathered(vals, layout[:, 0], layout[:, 1], layout[:, 2]), "sims": ref.sims(cols, vals),
           "matvec": ref.matvec(cols, vals)}
    for name, sims in got.items():
        assert sims.dtype == np.float64 and sims.shape == (N_REF,), name
        np.testing.assert_allclose(sims, want, rtol=0, atol=1e-6, err_msg=name)  # dense products are float32
