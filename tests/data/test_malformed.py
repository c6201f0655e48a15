from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gearshift.data.records import read_jsonl
from gearshift.data.registry import load_dataset
from gearshift.data.routellm import STRONG, WEAK, load_gsm8k, load_mmlu
from gearshift.errors import DataError


def _mmlu_dir(tmp_path: Path, data_dir: Path, csv_text: str) -> Path:
    d = tmp_path / "routellm" / "mmlu"
    d.mkdir(parents=True)
    shutil.copy(data_dir / "routellm/mmlu/contaminated_prompts.jsonl", d)
    (d / "mmlu_anatomy.csv").write_text(csv_text)
    return d / "mmlu_anatomy.csv"


def test_missing_column_names_file_and_line(tmp_path: Path, data_dir: Path) -> None:
    path = _mmlu_dir(tmp_path, data_dir, f"prompt,{STRONG}\nWhat?,True\n")
    with pytest.raises(DataError) as exc:
        load_mmlu(tmp_path)
    assert f"{path}:1:" in str(exc.value) and WEAK in str(exc.value)


def test_non_boolean_cell_names_its_line(tmp_path: Path, data_dir: Path) -> None:
    text = f'prompt,{WEAK},{STRONG}\n"multi\nline",True,False\nQ2,True,maybe\n'
    path = _mmlu_dir(tmp_path, data_dir, text)
    with pytest.raises(DataError) as exc:
        load_mmlu(tmp_path)
    assert exc.value.line == 4 and exc.value.path == str(path)  # record 2 starts on line 4
    assert "'maybe'" in str(exc.value)


def test_bad_json_line_in_contaminated_file(tmp_path: Path, data_dir: Path) -> None:
    d = tmp_path / "routellm" / "gsm8k"
    d.mkdir(parents=True)
    (d / "contaminated_prompts.jsonl").write_text('{"eval_prompt": "a"}\n{not json\n')
    with pytest.raises(DataError) as exc:
        load_gsm8k(tmp_path)
    assert exc.value.line == 2 and "contaminated_prompts.jsonl" in str(exc.value)


def test_bad_line_in_canonical_jsonl(tmp_path: Path) -> None:
    good = {"id": "a", "prompt": "p", "outcomes": {"m": {"score": 1.0}}}
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "outcomes": {"m": {"score": 2}}}) + "\n")
    with pytest.raises(DataError, match=r"x\.jsonl:2:"):
        read_jsonl(path)
    with pytest.raises(DataError, match=r"x\.jsonl:2:"):
        load_dataset(str(path))


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(DataError) as exc:
        load_dataset("mmlu-pro")
    for name in ("mmlu", "gsm8k", "llmrouter-train", "llmrouter-test", "alpaca-eval"):
        assert name in str(exc.value)
