"""Is p_strong a probability? Reliability of a router's score against the hardness label.

`min_confidence` escalation and risk-controlled thresholds read p_strong as the chance that the strong model is
needed; a router whose 0.8 means "needed half the time" makes both wrong. Bins have equal counts (not equal
widths) so a router that only uses part of [0, 1] is still measured with every bin populated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gearshift.errors import DataError


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    n: int
    mean_p: float
    observed: float  # share of the bin's prompts that needed the strong model


def reliability_curve(p_strong: np.ndarray, needs_strong: np.ndarray, bins: int = 10) -> list[ReliabilityBin]:
    p = np.asarray(p_strong, dtype=np.float64)
    y = np.asarray(needs_strong, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise DataError("p_strong and needs_strong must be 1-d arrays of one length")
    if len(p) == 0:
        return []
    order = np.argsort(p, kind="stable")
    out: list[ReliabilityBin] = []
    for part in np.array_split(order, min(bins, len(p))):
        if len(part) == 0:
            continue
        out.append(ReliabilityBin(lo=float(p[part].min()), hi=float(p[part].max()), n=len(part),
                                  mean_p=float(p[part].mean()), observed=float(y[part].mean())))
    return out


def expected_calibration_error(p_strong: np.ndarray, needs_strong: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean |mean p - observed rate| over equal-count bins (0 = perfectly calibrated)."""
    curve = reliability_curve(p_strong, needs_strong, bins)
    n = sum(b.n for b in curve)
    return float(sum(b.n * abs(b.mean_p - b.observed) for b in curve) / n) if n else float("nan")
