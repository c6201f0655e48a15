from __future__ import annotations

from pathlib import Path

from gearshift.data.llmrouter import load_llmrouter, load_models, normalise


def test_train_has_nine_models_and_tasks(data_dir: Path) -> None:
    ds = load_llmrouter(data_dir, "train")
    assert len(ds) == 5_608
    assert len(ds.model_names()) == 9
    tasks = set(ds.segment("task"))
    assert len(tasks) == 14 and "unknown" not in tasks
    assert ds.model_names()[0] == "gemma-2-9b-it"  # the cheapest model sorts first


def test_test_split_drops_questions_seen_in_train(data_dir: Path) -> None:
    train = load_llmrouter(data_dir, "train")
    test = load_llmrouter(data_dir, "test")
    assert len(test) == 500 - 119
    assert not {normalise(p) for p in train.prompts} & {normalise(p) for p in test.prompts}
    assert any("dropped 119" in n for n in test.notes)


def test_tiers_follow_price_and_costs_follow_tiers(data_dir: Path) -> None:
    ds = load_llmrouter(data_dir, "test")
    models = ds.models
    for a in models.values():
        for b in models.values():
            pa = (a.input_price_per_m or 0) + (a.output_price_per_m or 0)
            pb = (b.input_price_per_m or 0) + (b.output_price_per_m or 0)
            assert (a.tier == b.tier) == (pa == pb)
            assert (a.tier or 0) < (b.tier or 0) or pa >= pb
    cheap, dear = ds.model_names()[0], ds.model_names()[-1]
    assert (ds.costs(cheap) > 0).all() and (ds.costs(dear) > ds.costs(cheap)).all()
    assert set(load_models(data_dir)) >= set(models)


def test_string_scores_and_in_file_duplicates(tmp_path: Path, data_dir: Path) -> None:
    import json
    import shutil

    d = tmp_path / "llmrouter"
    d.mkdir()
    for name in ("data_example_data_llm_candidates_default_llm.json",
                 "data_example_data_query_data_default_query_train.jsonl"):
        shutil.copy(data_dir / "llmrouter" / name, d / name)
    real = json.loads((data_dir / "llmrouter/data_dcrouter_preprocessed_train.json").read_text())[:3]
    items = [{"question": real[0]["question"], "scores": str(real[0]["scores"])},  # Python-dict string
             {"question": "  " + real[0]["question"].upper() + " ", "scores": real[0]["scores"]},  # duplicate
             {"question": real[1]["question"], "scores": real[1]["scores"]}]
    (d / "data_dcrouter_preprocessed_train.json").write_text(json.dumps(items))
    ds = load_llmrouter(tmp_path, "train")
    assert ds.ids == ["llmrouter-train/0", "llmrouter-train/2"]
    assert ds.records[0].outcomes["gemma-2-9b-it"].score == real[0]["scores"]["gemma-2-9b-it"]
