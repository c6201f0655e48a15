from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gearshift.data.routellm import STRONG, WEAK, load_contaminated, load_gsm8k, load_mmlu


def _n_contaminated(data_dir: Path, ds: str) -> int:
    return len(load_contaminated(data_dir / "routellm" / ds / "contaminated_prompts.jsonl"))


def test_mmlu_all_subjects_minus_contaminated(data_dir: Path) -> None:
    ds = load_mmlu(data_dir)
    n_cont = _n_contaminated(data_dir, "mmlu")
    assert n_cont > 0
    assert len(ds) == 14_042 - n_cont
    assert len(set(ds.ids)) == len(ds)
    assert set(ds.segment("dataset")) == {"mmlu"}
    assert len(set(ds.segment("subject"))) == 57
    assert ds.model_names() == [WEAK, STRONG]  # cheapest tier first
    contaminated = load_contaminated(data_dir / "routellm" / "mmlu" / "contaminated_prompts.jsonl")
    assert not contaminated & set(ds.prompts)
    # RouteLLM reports GPT-4 ahead of Mixtral on MMLU; scores are strictly 0/1.
    assert ds.scores(STRONG).mean() > ds.scores(WEAK).mean()
    assert set(np.unique(ds.scores(WEAK))) == {0.0, 1.0}
    assert (ds.costs(WEAK) > 0).all()
    assert (ds.costs(STRONG) > ds.costs(WEAK)).all()
    assert any("costs estimated from text" in n for n in ds.notes)


def test_mmlu_ids_are_stable_file_rows(data_dir: Path) -> None:
    ds = load_mmlu(data_dir)
    rec = next(r for r in ds.records if r.id == "mmlu/anatomy/3")
    assert rec.segments == {"dataset": "mmlu", "subject": "anatomy"}
    assert rec.prompt.startswith("Which of the following structures is derived from ectomesenchyme?")
    assert rec.outcomes[WEAK].score == 0.0 and rec.outcomes[STRONG].score == 1.0


def test_gsm8k_uses_response_lengths(data_dir: Path) -> None:
    ds = load_gsm8k(data_dir)
    assert len(ds) == 1_319 - _n_contaminated(data_dir, "gsm8k")
    assert set(ds.segment("dataset")) == {"gsm8k"}
    first_eval = json.loads((data_dir / "routellm/gsm8k/contaminated_prompts.jsonl").read_text().splitlines()[0])
    assert first_eval["eval_prompt"] not in ds.prompts
    out_tokens = [r.outcomes[WEAK].output_tokens for r in ds.records]
    assert len(set(out_tokens)) > 50  # from real response text, not a constant
    assert (ds.costs(STRONG) > ds.costs(WEAK)).all()
