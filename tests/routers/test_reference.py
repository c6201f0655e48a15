"""A router's score reference: built from calibration scores, saved as JSON beside the router, read back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import RouterError
from gearshift.routers.reference import FILE, QUANTILES, build_reference, load_reference, save_reference


def test_reference_keeps_the_distribution_shares_and_mix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, 5000)
    prompts = ["Bonjour, comment ça va aujourd'hui ?"] * 1000 + ["What is the capital of France?"] * 4000
    ref = build_reference(scores, [0.5], ("cheap", "strong"), prompts=prompts, quality_loss_rate=0.04,
                          source="unit test")
    assert ref.n == 5000 and len(ref.quantiles) == QUANTILES
    assert ref.strong_share == pytest.approx(float(np.mean(scores >= 0.5)), abs=1e-9)
    # the quantile sketch reproduces the empirical CDF to a tenth of a percent
    for x in (0.1, 0.3, 0.5, 0.7):
        assert float(np.mean(ref.sample() <= x)) == pytest.approx(float(np.mean(scores <= x)), abs=2e-3)
    assert ref.segment_mix["language"] == {"en": 0.8, "fr": 0.2}
    assert ref.segment_mix["has_code"] == {"no": 1.0}

    path = save_reference(tmp_path, ref)  # a saved router directory: the file goes beside its manifest
    assert path == tmp_path / FILE
    assert json.loads(path.read_text())["format"] == "gearshift-score-reference"  # JSON, no pickle
    back = load_reference(tmp_path)
    assert back is not None
    assert back.tier_shares == pytest.approx(ref.tier_shares)
    assert back.quantiles == pytest.approx(ref.quantiles, abs=1e-6)
    assert back.segment_mix == ref.segment_mix and back.quality_loss_rate == 0.04 and back.source == "unit test"


def test_missing_and_broken_references(tmp_path: Path) -> None:
    assert load_reference(tmp_path) is None  # a router saved before references existed
    (tmp_path / FILE).write_text('{"format": "gearshift-score-reference", "quantiles": [0.9, 0.1]}')
    with pytest.raises(RouterError, match="unreadable score reference"):
        load_reference(tmp_path)
    with pytest.raises(RouterError, match="threshold"):
        build_reference([0.1, 0.2], [0.3, 0.6], ("cheap", "strong"))
    with pytest.raises(RouterError, match="non-empty"):
        build_reference([], [0.5], ("cheap", "strong"))
