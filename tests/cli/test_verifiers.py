"""`gearshift verifiers`: the recorded GSM8K slice, and clear errors for stores and data it cannot read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gearshift.cascade.factory import DEFAULT_VERIFIERS
from gearshift.cascade.math_verifiers import ArithmeticVerifier, FinalAnswerVerifier
from gearshift.cascade.quality import GSM8K_CHEAP_MODEL, load_gsm8k_answers, verifier_quality
from gearshift.cli import main
from gearshift.config import default_data_dir


def test_recorded_gsm8k_slice_prints_every_verifier_and_writes_json(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gsm8k.json"
    assert main(["verifiers", "--data", "gsm8k", "--limit", "60", "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    names = [*DEFAULT_VERIFIERS, "final_answer", "arithmetic", "combined"]
    assert all(name in printed for name in names)
    assert "60 answers" in printed
    report = json.loads(out.read_text())
    rows = {r["verifier"]: r for r in report["rows"]}
    assert list(rows) == names and report["source"] == f"gsm8k:{GSM8K_CHEAP_MODEL}"
    # the same numbers as cascade/quality.py computes on the same slice
    direct = verifier_quality([FinalAnswerVerifier()], load_gsm8k_answers(
        default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv", limit=60))
    fa = rows["final_answer"]
    assert (fa["true_accept"], fa["false_accept"], fa["false_reject"], fa["true_reject"]) == (
        direct.true_accept, direct.false_accept, direct.false_reject, direct.true_reject)
    assert report["correct"] == direct.true_accept + direct.false_reject
    # shape accepts every recorded answer: its precision is the base accuracy, its false-accept rate 1
    assert rows["shape"]["precision"]["value"] == pytest.approx(report["correct"] / 60, abs=1e-6)
    assert rows["shape"]["false_accept_rate"]["value"] == 1.0
    assert rows["combined"]["accept_rate"]["k"] <= rows["final_answer"]["accept_rate"]["k"]
    lo, hi = fa["precision"]["low"], fa["precision"]["high"]
    assert lo < fa["precision"]["value"] < hi


def test_strong_models_answers_are_more_often_correct(tmp_path: Path) -> None:
    cheap, strong = tmp_path / "c.json", tmp_path / "s.json"
    assert main(["verifiers", "--data", "gsm8k", "--limit", "80", "--json-out", str(cheap)]) == 0
    assert main(["verifiers", "--data", "gsm8k", "--model", "strong", "--limit", "80", "--json", str(strong)]) == 0
    c, s = json.loads(cheap.read_text()), json.loads(strong.read_text())
    assert s["source"].endswith("gpt-4-1106-preview") and s["correct"] > c["correct"]


@pytest.mark.parametrize("argv, message", [
    (["--db", "{tmp}/missing.sqlite"], "no gateway store"),
    (["--store-url", "mysql://somewhere/db"], "unknown scheme"),
    (["--db", "{tmp}/not-a-db.sqlite"], "label store"),
    (["--data", "{tmp}/missing.csv"], "no GSM8K responses file"),
    (["--data", "gsm8k", "--limit", "0"], "--limit"),
    (["--since", "yesterday", "--db", "{tmp}/not-a-db.sqlite"], "--since"),
])
def test_bad_sources_are_clear_errors(argv: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not-a-db.sqlite").write_bytes(b"this is not a database file at all" * 100)
    assert main(["verifiers", *(a.replace("{tmp}", str(tmp_path)) for a in argv)]) == 1
    assert message in capsys.readouterr().err


def test_json_alone_prints_only_the_report_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verifiers", "--data", "gsm8k", "--limit", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # nothing but the JSON: pipe it into jq
    assert report["n"] == 20 or len(report["rows"]) > 0


def test_agreement_verifier_per_family_on_llmrouter(capsys: pytest.CaptureFixture[str]) -> None:
    """`--data llmrouter`: a second cheap model must agree. The counts are checked against the raw scores, and the
    ends of the unobserved case (both wrong: same answer or not) bracket every figure that depends on it."""
    import numpy as np

    from gearshift.data.registry import load_dataset

    assert main(["verifiers", "--data", "llmrouter", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["first"], report["second"]) == ("gemma-2-9b-it", "qwen2.5-7b-instruct")
    rows = {r["family"]: r for r in report["rows"]}
    data = [load_dataset(n) for n in ("llmrouter-train", "llmrouter-test")]
    tasks = np.concatenate([np.array(d.segment("task")) for d in data])
    a = np.concatenate([d.scores("gemma-2-9b-it") for d in data])[tasks == "gsm8k"] > 0.5
    b = np.concatenate([d.scores("qwen2.5-7b-instruct") for d in data])[tasks == "gsm8k"] > 0.5
    g = rows["gsm8k"]
    assert g["n"] == a.size and g["base_accuracy"]["k"] == int(a.sum())
    assert g["ship_rate"]["never"]["k"] == int((a & b).sum())  # both right: they agree
    assert g["ship_rate"]["always"]["k"] == int((a & b).sum() + (~a & ~b).sum())  # + every shared wrong answer
    assert g["false_accept"]["always"]["k"] == int((~a & ~b).sum()) and g["false_accept"]["never"]["k"] == 0
    assert g["recall"]["value"] == pytest.approx((a & b).sum() / a.sum())
    for r in report["rows"]:
        for key in ("ship_rate", "precision", "false_accept"):
            for end in ("never", "always"):
                iv = r[key][end]
                assert iv["value"] is None or iv["low"] <= iv["value"] <= iv["high"]  # Wilson, around the value
    assert rows["all"]["n"] == sum(r["n"] for f, r in rows.items() if f != "all")


def test_agreement_verifier_names_an_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verifiers", "--data", "llmrouter", "--second", "no-such-model"]) != 0
    assert "no model 'no-such-model'" in capsys.readouterr().err


def test_fit_the_answer_model_then_measure_it_on_answers_it_never_saw(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`--fit-answer-model` on the first 700 recorded answers, then `--config` with that model on the next 400:
    held out, it lets through a much smaller share of the wrong answers than the rule checks do."""
    model = tmp_path / "answer-model.json"
    assert main(["verifiers", "--data", "gsm8k", "--limit", "700", "--fit-answer-model", str(model)]) == 0
    fitted = capsys.readouterr().out
    assert "out of fold: ships" in fitted and "false-accept rate" in fitted and model.is_file()
    config = tmp_path / "gearshift.toml"
    config.write_text("\n".join([
        *(f'[[tiers]]\nname = "{t}"\n[[tiers.deployments]]\nname = "{t}-d"\nprovider = "openai"\nmodel = "m"\n'
          f'base_url = "http://127.0.0.1:9/v1"' for t in ("cheap", "strong")),
        '[cascade]\nenabled = true\nverifiers = ["final_answer", "arithmetic", "answer_model"]',
        f'answer_model_path = "{model}"']))
    out = tmp_path / "held-out.json"
    assert main(["verifiers", "--config", str(config), "--data", "gsm8k", "--offset", "700", "--limit", "400",
                 "--json-out", str(out)]) == 0
    rows = {r["verifier"]: r for r in json.loads(out.read_text())["rows"]}
    rules = verifier_quality([FinalAnswerVerifier(), ArithmeticVerifier()], load_gsm8k_answers(
        default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv", limit=400, offset=700))
    assert 0.4 <= rows["answer_model"]["accept_rate"]["value"] <= 0.7  # 0.575 here
    assert rows["answer_model"]["false_accept_rate"]["value"] < rules.false_accept_rate - 0.2  # 0.31 vs 0.6


def test_fit_answer_model_needs_recorded_answers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["verifiers", "--fit-answer-model", str(tmp_path / "m.json")]) == 1
    assert "needs --data gsm8k" in capsys.readouterr().err
