from __future__ import annotations

from pathlib import Path

import pytest

from gearshift.config import default_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = default_data_dir()
    if not (d / "routellm").is_dir():
        pytest.fail(f"real data not found at {d}; set GEARSHIFT_DATA_DIR or run `gearshift data fetch`")
    return d


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gearshift eval` caches fits under the cache dir: keep tests out of the user's one."""
    monkeypatch.setenv("GEARSHIFT_CACHE_DIR", str(tmp_path / "gearshift-cache"))
