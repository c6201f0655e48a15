from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.eval_synthetic import synthetic


@pytest.fixture
def outcomes_10k() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return synthetic(10_000, seed=1)


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gearshift eval` caches fits under the cache dir: keep tests out of the user's one."""
    monkeypatch.setenv("GEARSHIFT_CACHE_DIR", str(tmp_path / "gearshift-cache"))
