"""`gearshift train`: targets calibrated out of fold, bad input refused, and the probe gate on `promote`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gearshift.cli import main
from gearshift.config import default_data_dir
from gearshift.data.records import Dataset, ModelInfo, Outcome, PromptRecord, write_jsonl
from gearshift.data.registry import load_dataset
from gearshift.gateway.build import build_gateway
from gearshift.gateway.settings import parse_settings
from gearshift.routers.operating_point import load_operating_point
from gearshift.routers.reference import load_reference
from gearshift.store.versions import SQLiteVersionRegistry

FAST = ["--router", "classifier", "--param", "embedder=hashing:dim=256", "--param", "folds=2", "--folds", "2"]


@pytest.fixture(scope="module")
def gsm8k_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = load_dataset("gsm8k", default_data_dir()).subset(range(300))
    return write_jsonl(ds, tmp_path_factory.mktemp("train") / "gsm.jsonl")


def _history(db: Path) -> list[dict[str, object]]:
    reg = SQLiteVersionRegistry(db)
    try:
        return [{"new": p.new, "note": p.note} for p in reg.history()]
    finally:
        reg.close()


def test_cost_target_is_met_out_of_fold_and_registered(gsm8k_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    ds = load_dataset(str(gsm8k_file))
    all_cheap = float(np.nanmean(ds.costs("mistralai/Mixtral-8x7B-Instruct-v0.1"))) * 1000
    all_strong = float(np.nanmean(ds.costs("gpt-4-1106-preview"))) * 1000
    budget = all_cheap + 0.4 * (all_strong - all_cheap)
    out = tmp_path / "r"
    assert main(["train", "--data", str(gsm8k_file), *FAST, "--target-cost-per-1k", f"{budget:.6f}",
                 "--out", str(out), "--db", str(db), "--name", "gsm", "--no-progress"]) == 0
    point = load_operating_point(out)
    assert point is not None and point.target["kind"] == "cost_per_1k"
    assert point.measured["cost_per_1k"] <= budget + 1e-9
    assert 0.2 < point.measured["strong_share"] < 0.6  # the budget buys roughly 40 % strong, not all or none
    reg = SQLiteVersionRegistry(db)
    try:
        v = reg.get("gsm/1")
    finally:
        reg.close()
    assert v.status == "challenger" and v.thresholds == point.thresholds and Path(v.path) == out.resolve()
    # drift: the out-of-fold scores are saved beside the router as its reference, and a gateway serving the saved
    # router (here under its own tier names) compares its live traffic with them
    ref = load_reference(out)
    assert ref is not None and ref.n == 300 and ref.thresholds == point.thresholds
    assert ref.strong_share == pytest.approx(point.measured["strong_share"], abs=0.02)
    assert ref.quality_loss_rate == point.measured["quality_loss_rate"] and "out-of-fold" in ref.source
    dep = {"provider": "openai", "base_url": "http://127.0.0.1:9", "model": "m"}
    cfg = parse_settings({"tiers": [{"name": "small", "deployments": [{**dep, "name": "s"}]},
                                    {"name": "large", "deployments": [{**dep, "name": "l"}]}],
                          "router": {"path": str(out)}, "store": {"path": str(tmp_path / "serve.sqlite")},
                          "slo": {"enabled": True}}, "test")
    gw = build_gateway(cfg)
    try:
        live = gw.closed_loop.monitor.drift.current_reference()  # type: ignore[union-attr]
    finally:
        gw.closed_loop.store.close()  # type: ignore[union-attr]
        gw.store.close()  # type: ignore[union-attr]
    assert live is not None and live.tiers == ("small", "large") and live.quantiles == ref.quantiles


def test_quality_loss_target_keeps_its_bound_out_of_fold(gsm8k_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["train", "--data", str(gsm8k_file), *FAST, "--max-quality-loss", "0.1", "--confidence", "0.9",
                 "--out", str(out), "--no-register", "--no-progress"]) == 0
    point = load_operating_point(out)
    assert point is not None and point.target == {"kind": "max_quality_loss", "value": 0.1, "confidence": 0.9}
    quality_loss = point.measured["all_strong_quality"] - point.measured["quality"]
    assert quality_loss <= 0.1


@pytest.mark.parametrize(("extra", "message"), [
    (["--target-strong-share", "1.5"], "must lie in [0, 1]"),
    (["--router", "random"], "is not trainable"),
    (["--folds", "1"], "at least 2"),
    (["--weak", "no-such-model"], "not recorded"),
])
def test_bad_training_requests_are_refused_clearly(gsm8k_file: Path, tmp_path: Path, extra: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    fast = ["--folds", "2"] if "--router" in extra else FAST
    args = ["train", "--data", str(gsm8k_file), *fast, "--out", str(tmp_path / "r"), "--no-register",
            "--no-progress", *extra]
    assert main(args) == 1
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not (tmp_path / "r" / "manifest.json").exists()


def test_out_must_not_clobber_a_directory_that_is_not_a_router(gsm8k_file: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    assert main(["train", "--data", str(gsm8k_file), *FAST, "--out", str(tmp_path / "docs"), "--no-register"]) == 1
    assert "not a saved router" in capsys.readouterr().err
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"


def test_retraining_into_a_saved_router_needs_overwrite(gsm8k_file: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A version registered from a directory serves whatever is saved there: replacing it must be asked for."""
    args = ["train", "--data", str(gsm8k_file), *FAST, "--out", str(tmp_path / "r"), "--no-register", "--no-progress"]
    assert main(args) == 0
    first = (tmp_path / "r" / "operating_point.json").read_text()
    assert main([*args, "--target-strong-share", "0.5"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "r" / "operating_point.json").read_text() == first
    assert main([*args, "--target-strong-share", "0.5", "--overwrite"]) == 0
    assert '"value": 0.5' in (tmp_path / "r" / "operating_point.json").read_text()


def _gadget_bait(path: Path) -> Path:
    """240 English prompts whose hard half all end in an appended "think step by step, explain why" line: a router
    trained on them (no augmentation, a hashing embedder) learns boilerplate and one language, so some probe
    family fails (which one depends on the draw: gadget phrases, translation...)."""
    mmlu = load_dataset("mmlu", default_data_dir())
    rng = np.random.default_rng(0)
    picks = rng.choice(len(mmlu), 240, replace=False)
    records = []
    for j, i in enumerate(picks):
        hard = j % 2 == 0
        text = mmlu.prompts[int(i)] + ("\n\nThink step by step and explain why, weighing pros and cons carefully."
                                       if hard else "")
        records.append(PromptRecord(id=f"b{j}", prompt=text, outcomes={
            "strong": Outcome(score=1.0), "weak": Outcome(score=0.0 if hard else 1.0)}))
    ds = Dataset("bait", records, {"weak": ModelInfo(name="weak", tier=0), "strong": ModelInfo(name="strong", tier=1)})
    return write_jsonl(ds, path)


def test_promote_refuses_a_version_that_fails_the_probes(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gw.sqlite"
    bait = _gadget_bait(tmp_path / "bait.jsonl")
    assert main(["train", "--data", str(bait), *FAST, "--param", "augment=0", "--out", str(tmp_path / "b"),
                 "--db", str(db), "--name", "bait", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["promote", "bait/1", "--force", "--db", str(db)]) == 3
    out = capsys.readouterr().out.replace("\n", " ")
    assert "fails the routing probes" in out and "--skip-probes" in out
    reg = SQLiteVersionRegistry(db)
    try:
        assert reg.get("bait/1").status == "challenger"
        probes = reg.get("bait/1").metrics["probes"]
    finally:
        reg.close()
    assert probes["passed"] is False and probes["failed"]
    assert all(f"{family}" in out for family in probes["failed"])
    assert main(["promote", "bait/1", "--force", "--skip-probes", "--db", str(db)]) == 0
    history = _history(db)
    assert "probes FAILED" in json.dumps(history, default=str) and "--skip-probes" in json.dumps(history, default=str)
