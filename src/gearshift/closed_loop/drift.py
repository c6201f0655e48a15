"""Score-distribution drift of p_strong against a reference window: PSI and the two-sample KS test.

PSI uses deciles of the reference (so every reference bin holds ~10%) and a small floor on empty
bins; the usual reading is < 0.1 stable, 0.1-0.25 moderate, > 0.25 major. KS is judged on both its
p-value and its statistic, because with thousands of decisions a negligible shift is "significant".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gearshift.errors import ConfigError

_FLOOR = 1e-4


def psi(reference: np.ndarray | Sequence[float], current: np.ndarray | Sequence[float], bins: int = 10) -> float:
    """Population stability index of `current` against `reference`, on reference-quantile bins."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        raise ConfigError("PSI needs non-empty reference and current samples")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    p, q = np.maximum(p, _FLOOR), np.maximum(q, _FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True, slots=True)
class DriftResult:
    psi: float
    ks_statistic: float
    ks_p_value: float
    n_reference: int
    n_current: int
    psi_drift: bool
    ks_drift: bool

    @property
    def drifted(self) -> bool:
        return self.psi_drift or self.ks_drift


@dataclass(frozen=True)
class DriftConfig:
    """PSI above `psi_threshold`, or KS with p < `ks_alpha` and statistic >= `ks_min_statistic`, is drift."""

    psi_threshold: float = 0.2
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.1
    bins: int = 10


def check_drift(reference: np.ndarray | Sequence[float], current: np.ndarray | Sequence[float],
                config: DriftConfig | None = None) -> DriftResult:
    from scipy.stats import ks_2samp

    cfg = config or DriftConfig()
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    value = psi(ref, cur, cfg.bins)
    ks = ks_2samp(ref, cur)
    stat, pval = float(ks.statistic), float(ks.pvalue)
    return DriftResult(value, stat, pval, int(ref.size), int(cur.size), value > cfg.psi_threshold,
                       pval < cfg.ks_alpha and stat >= cfg.ks_min_statistic)
