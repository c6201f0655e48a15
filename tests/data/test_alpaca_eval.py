from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gearshift.data.alpaca_eval import DEFAULT_WEAK, REFERENCE, load_alpaca_eval, load_preferences
from gearshift.errors import DataError


def _leaderboard_win_rate(data_dir: Path, model: str) -> float:
    with (data_dir / "alpaca_eval/ae2_leaderboard.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row[""] == model:
                return float(row["win_rate"]) / 100
    raise AssertionError(model)


def test_default_pair_reproduces_leaderboard_win_rate(data_dir: Path) -> None:
    ds = load_alpaca_eval(data_dir)
    assert len(ds) == 805
    assert ds.model_names() == [DEFAULT_WEAK, REFERENCE]
    # preference 2 = the compared model wins: its mean score is the published win rate.
    assert ds.scores(DEFAULT_WEAK).mean() == pytest.approx(_leaderboard_win_rate(data_dir, DEFAULT_WEAK), abs=1e-4)
    assert ds.scores(DEFAULT_WEAK) + ds.scores(REFERENCE) == pytest.approx(1.0)
    assert ds.costs(REFERENCE).sum() > 10 * ds.costs(DEFAULT_WEAK).sum()
    assert len(set(ds.segment("source"))) > 1


def test_other_weak_model_and_gaming_rows_excluded(data_dir: Path) -> None:
    prefs = load_preferences(data_dir)
    assert not {p.model for p in prefs} & {"NullModel", "gpt4_gamed", REFERENCE}
    ds = load_alpaca_eval(data_dir, weak_model="phi-2")
    assert len(ds) == 803  # phi-2 has two unjudged instructions
    assert any("assumed" in n for n in ds.notes)  # no published price: the note says so
    with pytest.raises(DataError, match="NullModel"):
        load_alpaca_eval(data_dir, weak_model="NullModel")
