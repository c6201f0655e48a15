from __future__ import annotations

import numpy as np
import pytest

from evaluation.eval_synthetic import synthetic


@pytest.fixture
def outcomes_10k() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return synthetic(10_000, seed=1)
