"""Bootstrap confidence intervals for APGR and CPT, vectorised over resamples.

Each resample draws n prompts with replacement; its curve uses the original tie groups weighted by how
often each prompt was drawn (a prompt drawn m times is m tied prompts), so one `reduceat` per chunk
replaces a sort per resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gearshift.errors import DataError
from gearshift.evaluation.curves import CPT_LEVELS, TieGroups, check_scores, pgr_summaries

_CHUNK_CELLS = 4_000_000  # resamples x prompts per chunk: bounds memory at ~100 MB


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi


@dataclass(frozen=True)
class BootstrapResult:
    level: float
    n_boot: int
    seed: int | None
    intervals: dict[str, Interval]  # keys: "apgr", "cpt50", "cpt80", "cpt95"


def level_key(level: float) -> str:
    return f"cpt{round(level * 100):d}"


def bootstrap_ci(
    p_strong: np.ndarray,
    s_strong: np.ndarray,
    s_weak: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int | None = 0,
    cpt_levels: Sequence[float] = CPT_LEVELS,
) -> BootstrapResult:
    """Percentile intervals over `n_boot` prompt resamples; resamples where PGR is undefined are skipped."""
    n = len(s_strong)
    p = check_scores(p_strong, n)
    if n_boot < 1 or not 0 < level < 1:
        raise DataError("bootstrap needs n_boot >= 1 and 0 < level < 1")
    keys = ["apgr", *(level_key(t) for t in cpt_levels)]
    if n == 0:
        return BootstrapResult(level, n_boot, seed, {k: Interval(float("nan"), float("nan")) for k in keys})
    rng = np.random.default_rng(seed)
    groups = TieGroups.from_scores(p)
    gap = s_strong - s_weak
    chunk = max(1, _CHUNK_CELLS // n)
    stats: list[np.ndarray] = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        apgr, cpt = pgr_summaries(groups.sums(counts), groups.sums(counts * gap), cpt_levels)
        stats.append(np.column_stack([apgr, cpt]))
    table = np.vstack(stats)
    alpha = (1 - level) / 2
    out: dict[str, Interval] = {}
    for i, key in enumerate(keys):
        col = table[:, i]
        col = col[np.isfinite(col)]
        if len(col) == 0:
            out[key] = Interval(float("nan"), float("nan"))
        else:
            lo, hi = np.quantile(col, [alpha, 1 - alpha])
            out[key] = Interval(float(lo), float(hi))
    return BootstrapResult(level=level, n_boot=n_boot, seed=seed, intervals=out)
