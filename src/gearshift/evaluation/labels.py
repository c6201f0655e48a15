"""Hardness labels: a prompt needs the strong model when the strong model does clearly better on it.

The tolerance `eps` keeps judge noise on graded (non 0/1) scores from counting as "needs strong".
"""

from __future__ import annotations

import numpy as np

from gearshift.data.records import Dataset
from gearshift.errors import DataError


def outcome_gaps(dataset: Dataset, strong: str, weak: str) -> np.ndarray:
    """score(strong) - score(weak) per record, in [-1, 1]."""
    out: np.ndarray = dataset.scores(strong) - dataset.scores(weak)
    return out


def needs_strong(gaps: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """True where the strong model is needed: gap > eps."""
    if not np.isfinite(eps) or eps < 0:
        raise DataError(f"tolerance eps must be a finite number >= 0, got {eps}")
    return np.asarray(gaps, dtype=np.float64) > eps


def default_pair(dataset: Dataset) -> tuple[str, str]:
    """(strong, weak): highest- and lowest-tier models with an outcome on every record.

    Falls back to the models table order (then name order) where tiers are missing.
    """
    names = dataset.model_names()  # cheapest tier first
    if len(names) < 2:
        raise DataError(f"dataset {dataset.name!r} needs outcomes for at least two models, has {names}")
    return names[-1], names[0]


def check_pair(dataset: Dataset, strong: str, weak: str) -> None:
    """Fail early, naming the available models, when a requested model is not in every record."""
    names = dataset.model_names()
    for role, model in (("strong", strong), ("weak", weak)):
        if model not in names:
            raise DataError(f"{role} model {model!r} not recorded for every prompt of {dataset.name!r}; "
                            f"available: {', '.join(names) or 'none'}")
    if strong == weak:
        raise DataError(f"strong and weak model are the same ({strong!r})")
