"""The stack router's request path: one prompt scored from arrays laid out for it, without scipy.

A saved stack router holds a vocabulary, coefficients, trees and the OOD reference rows as CSR. Scored from
those, one prompt took ~60 small numpy calls beyond the n-gram counting, each ~1 us, and touched several large
arrays at the prompt's few hundred columns (in a gateway, other request work evicts them between requests,
so every touch is a cache miss). `OnePrompt` derives, once at load, what one prompt needs:

- one row per vocabulary column holding everything the prompt's columns are gathered for (the n-gram
  scale, scale x coefficient, the OOD reference's dense slot and sparse extent), so a prompt does one gather;
- the OOD reference columns most reference rows share, dense (float32), and the rest column-major (CSC, int32
  rows, float32 values) without the dense ones, each dense column marked as an empty sparse one; a prompt's
  dense rows are copied `RefIndex.CHUNK` at a time into one small buffer (copied at once, they were ~45 % of
  the simulated cache misses of a `score`: 250 KB read, 250 KB of fresh buffer written);
- the shape part of the linear model folded into one weight vector and a constant.

Nothing here is saved: it is derived from the saved state, which therefore loads as before. Measured on a
400-prompt GSM8K stack and benchmarks/gateway_overhead.py's prompt: 1.89M -> 1.21M instructions per `score`
(callgrind), ~205 -> ~155 us (old and new alternating in one process); inside the gateway (in-process A/B,
thread CPU time of `score`) ~455 -> ~415 us, the rest being cache misses a micro-benchmark does not see.
The chunked copy (callgrind, 2 MB LL, caches swept between prompts): last-level data misses per `score`
12.5k -> 10.5k (GSM8K stack), 14.5k -> 11.6k (MMLU), for +2-3 % instructions; per gateway request
(`benchmarks/gateway_cpu.py --only stack`) 15.1k -> 12.1k.
Then the Python around it (2026-12-04: canonical text, shape features, ASCII tokens, counting, tree and
reduction calls without their wrappers; every score unchanged to the bit): benchmarks/gateway_overhead.py's
prompt 1.22M -> 0.91M instructions per `score` (MMLU/GSM8K prompts 5.28M -> 4.34M; callgrind, one BLAS
thread), ~295-335 -> ~235-240 us in an in-process A/B; `benchmarks/gateway_cpu.py`, stack minus heuristic
per request, 5 alternating old/new runs: median of paired differences -73 us (412 -> 354 us medians).
Then the OOD step (2026-12-04: one gather of (row, value-bits) int32 pairs per sparse entry, column stops and
entry offsets precomputed, an int64 column table, ufunc/method forms of cumsum/repeat/partition; every score
unchanged to the bit on 1411 prompts): the step alone (table gather to top_mean, benchmark prompt) 348k -> 291k
instructions, a whole `score` 920k -> 865k (MMLU prompts 2.76M -> 2.67M; callgrind, one BLAS thread); in-process
A/B of `score`, 40 alternating rounds, median of paired differences -21 us (benchmark prompt, 246 -> 220 us
medians) and -26 us (MMLU, 423 -> 398 us). Tried and dropped: dense chunks added straight into the sparse
bincount's float64 array (no parts array, no add.reduce): 865k -> 866k instructions, no time gained; sparse
columns pointed at a zero dense row instead of the hot/cold split: the extra row copies cost what the split saved.
"""

from __future__ import annotations

import math

import numpy as np

from gearshift.routers.embedders.tfidf import TfidfEmbedder
from gearshift.routers.trees import TreeEnsemble


class RefIndex:
    """The OOD reference rows (unit CSR, float32) for one-prompt similarities: columns present in at least
    `DENSE_DF` rows dense, the rest CSC; `sims` of a row with 222 columns, 154 of them dense, on 400 reference
    rows: ~20 numpy calls, ~30 us, half of it copying the 154 dense rows (DENSE_DF 100 copies less but costs
    more instructions: callgrind with a 2 MB cache, evicted between prompts). Built with numpy alone.
    A CSC of every column instead of the dense rows would read about as many bytes (8 per entry, and these
    columns are in ~40 % of the rows) and write several times that in temporaries, at ~20x the instructions."""

    DENSE_DF = 32  # a column present in at least this many reference rows is held dense
    CHUNK = 64  # dense rows copied at a time: a 100 KB buffer at 400 reference rows (32: -5 % misses, +4 % instr.)
    MATVEC_NNZ = 2500  # longer rows: one pass over all reference rows (~0.7 ms flat) beats gathering
    STEPS = 4096  # sparse entries a prompt gathers with the precomputed offsets (32 KB); more make an np.arange

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]) -> None:
        n, n_cols = shape
        self.n = n
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        self.csr_rows, self.csr_cols, self.csr_data = rows, np.asarray(indices, dtype=np.int64), data
        df = np.bincount(self.csr_cols, minlength=n_cols)
        frequent = np.flatnonzero(df >= self.DENSE_DF)
        self.n_frequent = len(frequent)
        # slot: the column's dense row; len(frequent) for a sparse column
        self.slot = np.full(n_cols, len(frequent), dtype=np.int64)
        self.slot[frequent] = np.arange(len(frequent))
        self.dense = np.zeros((len(frequent), n), dtype=np.float32)
        hot = self.slot[self.csr_cols] < len(frequent)
        self.dense[self.slot[self.csr_cols[hot]], rows[hot]] = data[hot]
        # CSC of the sparse columns alone (entries by column, rows ascending); a dense column has length 0
        cold = ~hot
        order = np.argsort(self.csr_cols[cold], kind="stable")
        self.length = np.where(df >= self.DENSE_DF, 0, df).astype(np.int64)
        self.stop = np.cumsum(self.length)  # the column's sparse entries are [stop - length, stop)
        # one (row, value) pair of int32 per entry, the float32 value as its bits: one gather fetches both, and
        # bincount and the float64 product widen them exactly
        values = np.asarray(data[cold][order], dtype=np.float32)
        self.entries = np.column_stack([rows[cold][order].astype(np.int32), values.view(np.int32)])
        self.steps = np.arange(self.STEPS, dtype=np.int64)  # a prompt's entry offsets without an np.arange

    def columns(self) -> np.ndarray:
        """(vocabulary, 3) int64: each column's dense slot, sparse stop and sparse length."""
        return np.column_stack([self.slot, self.stop, self.length])

    def sims(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Dot products of one sparse row (cols, vals) with every reference row, as float64 (n,)."""
        if len(cols) > self.MATVEC_NNZ:
            return self.matvec(cols, vals)
        return self.gathered(vals, self.slot[cols], self.stop[cols], self.length[cols])

    def matvec(self, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        q = np.zeros(len(self.slot), dtype=np.float64)
        q[cols] = vals
        return np.bincount(self.csr_rows, weights=self.csr_data.astype(np.float64) * q[self.csr_cols],
                           minlength=self.n)

    def dense_sims(self, vals: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """vals @ dense[slots] as float64 (n,), the rows copied `CHUNK` at a time into one small buffer: a prompt's
        ~150 dense rows are ~250 KB, and copying them at once wrote as many fresh bytes as it read."""
        c, m = self.CHUNK, len(slots)
        v32 = vals.astype(np.float32)
        if m <= c:
            return np.asarray(v32 @ self.dense[slots], dtype=np.float64)
        parts = np.empty((-(-m // c), self.n), dtype=np.float32)
        buf = np.empty((c, self.n), dtype=np.float32)
        for i, a in enumerate(range(0, m, c)):
            rows = buf if a + c <= m else buf[: m - a]
            self.dense.take(slots[a:a + c], axis=0, out=rows, mode="clip")  # "raise" would buffer the copy
            np.dot(v32[a:a + c], rows, out=parts[i])  # np.dot: less dispatch than np.matmul, the same sgemv
        total: np.ndarray = np.add.reduce(parts, axis=0, dtype=np.float64)  # parts.sum without its Python layer
        return total

    def gathered(self, vals: np.ndarray, slot: np.ndarray, stop: np.ndarray, length: np.ndarray) -> np.ndarray:
        """`sims` from the row's columns' slots and sparse extents (as `columns` lays them out)."""
        hot = slot < self.n_frequent
        out = self.dense_sims(vals[hot], slot[hot])
        ends = np.add.accumulate(length)  # np.cumsum without its Python layer
        total = int(ends[-1]) if len(ends) else 0
        if not total:
            return out
        pos = (stop - ends).repeat(length)  # each entry's column start minus its offset in the row's entries
        pos += self.steps[:total] if total <= len(self.steps) else np.arange(total)
        e = self.entries.take(pos, axis=0)
        out += np.bincount(e[:, 0], weights=e[:, 1].view(np.float32) * vals.repeat(length), minlength=self.n)
        return out


class OnePrompt:
    """(n-gram logit, tree output, mean of the k largest reference similarities) of one canonical prompt,
    equal to the batch path's to float64 rounding (the dense similarities are float32 on both paths)."""

    def __init__(self, vec: TfidfEmbedder, coef: np.ndarray, intercept: float, shape_mean: np.ndarray,
                 shape_scale: np.ndarray, shape_weight: float, trees: TreeEnsemble, ref: RefIndex, k: int) -> None:
        self.vec, self.trees, self.ref, self.k = vec, trees, ref, k
        self.params: tuple[float, int] = (shape_weight, k)  # the router parameters folded in (the router sets it)
        n_shape = len(shape_mean)
        self.coef = coef[:-n_shape]
        # z = (s - mean) / scale * weight; z @ coef_s + intercept == s @ w_shape + constant, to float64 rounding
        w = np.asarray(coef[-n_shape:] / shape_scale * shape_weight, dtype=np.float64)
        self.w_shape = w
        self.constant = float(intercept) - float(shape_mean @ w)
        scale = vec.column_scale()
        # (vocabulary, 5) int64: n-gram scale and scale x coefficient (float64 bits), dense slot, sparse stop and
        # length; one gather, and no conversion of the integers
        self.table = None if scale is None else np.column_stack(
            [np.column_stack([scale, scale * self.coef]).astype(np.float64).view(np.int64), ref.columns()])

    def parts(self, text: str, shape: np.ndarray) -> tuple[float, float, float]:
        counted = self.vec.counted_row(text) if self.table is not None else None
        if counted is not None and self.table is not None and len(counted[0]) <= self.ref.MATVEC_NNZ:
            cols, tf = counted
            g = self.table.take(cols, axis=0)  # take: the same gather as table[cols], less index parsing
            f = g.view(np.float64)
            factor = np.log(tf, out=tf)  # in place: `counted_row` made tf for this call
            factor += 1.0
            lin = float(factor @ f[:, 1])
            vals = factor * f[:, 0]
            norm = math.sqrt(float(vals @ vals))
            if norm > 0:
                vals /= norm
            sims = self.ref.gathered(vals, g[:, 2], g[:, 3], g[:, 4])
        else:
            cols, vals = self.vec.sparse_row(text)
            lin = float(vals @ self.coef[cols])
            norm = math.sqrt(float(vals @ vals))
            sims = self.ref.sims(cols, vals / norm if norm > 0 else vals)
        lin += float(shape @ self.w_shape) + self.constant
        return lin, self.trees.predict_one(shape), top_mean(sims, self.k)


def top_mean(sims: np.ndarray, k: int) -> float:
    """Mean of the k largest of `sims` (all of them when there are no more than k); partitions `sims` in place."""
    n = len(sims)  # sum / k is what ndarray.mean computes; np.add.reduce is ndarray.sum without its Python layer
    if k < n:
        sims.partition(n - k)  # np.partition's selection without its copy
        return float(np.add.reduce(sims[n - k:])) / k
    return float(sims.sum()) / max(n, 1)
