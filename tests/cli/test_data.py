from __future__ import annotations

from pathlib import Path

import pytest

from gearshift.cli import main
from gearshift.data.records import read_jsonl, write_jsonl
from gearshift.data.registry import DATASETS, load_dataset


def test_export_round_trip(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "gsm8k.jsonl"
    assert main(["data", "export", "--dataset", "gsm8k", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    back = read_jsonl(out)
    orig = load_dataset("gsm8k", data_dir)
    assert back.records == orig.records
    assert back.models == orig.models and back.notes == orig.notes
    assert load_dataset(str(out)).ids == orig.ids


def test_export_failure_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    assert main(["data", "export", "--dataset", "mmlu", "--out", str(out), "--data-dir", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_dataset_gets_the_closest_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "export", "--dataset", "gsm8", "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "unknown dataset 'gsm8'; did you mean 'gsm8k'? known: mmlu, gsm8k" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_list_names_every_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in DATASETS)


def test_every_dataset_loads_and_survives_write(tmp_path: Path, data_dir: Path) -> None:
    for name in DATASETS:
        ds = load_dataset(name, data_dir)
        assert len(ds) > 0 and ds.segment_names()
        cheap, dear = ds.model_names()[0], ds.model_names()[-1]
        assert ds.costs(dear).sum() > ds.costs(cheap).sum() > 0
    small = load_dataset("alpaca-eval", data_dir)
    assert read_jsonl(write_jsonl(small, tmp_path / "a.jsonl")).records == small.records
