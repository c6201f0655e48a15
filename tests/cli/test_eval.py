from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluation.eval_synthetic import make_dataset
from gearshift.cli import main
from gearshift.data.records import write_jsonl


def _write(tmp_path: Path, n: int = 240) -> Path:
    return write_jsonl(make_dataset(n), tmp_path / "tiny.jsonl")


def test_eval_writes_json_scores_and_report(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = _write(tmp_path)
    out_json, out_scores, out_html = tmp_path / "m.json", tmp_path / "s.jsonl", tmp_path / "r.html"
    rc = main(["eval", "--test", str(data), "--router", "random", "--router", "heuristic", "--json-out", str(out_json),
               "--scores", str(out_scores), "--report", str(out_html), "--n-boot", "100", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "APGR" in printed and "oracle" in printed and "costs are synthetic" in printed
    payload = json.loads(out_json.read_text())
    results = payload["results"]
    assert [r["router"] for r in results] == ["random", "heuristic"]
    assert all(r["protocol"] == "split" and r["strong"] == "big-model" and r["weak"] == "small-model"
               for r in results)
    n_test = results[0]["n_test"]
    assert 30 < n_test < 70  # the fixed 20% part of 240
    lines = [json.loads(x) for x in out_scores.read_text().splitlines()]
    assert len(lines) == 2 * n_test
    assert {"id", "p_strong", "needs_strong"} <= set(lines[0])
    assert out_html.read_text().count("<svg") == 2


def test_split_is_the_same_test_set_on_every_run(tmp_path: Path) -> None:
    data = _write(tmp_path)
    ids = []
    for run in range(2):
        out = tmp_path / f"s{run}.jsonl"
        assert main(["eval", "--test", str(data), "--router", "random", "--scores", str(out), "--n-boot", "0",
                     "--no-progress"]) == 0
        ids.append([json.loads(x)["id"] for x in out.read_text().splitlines()])
    assert ids[0] == ids[1]


def test_trainable_router_with_group_protocol(tmp_path: Path) -> None:
    data = _write(tmp_path)
    out_json = tmp_path / "m.json"
    rc = main(["eval", "--test", str(data), "--router", "knn:embedder=hashing,k=8", "--protocol", "group",
               "--group-by", "subject", "--folds", "2", "--json-out", str(out_json), "--n-boot", "50", "--no-progress"])
    assert rc == 0
    r = json.loads(out_json.read_text())
    assert r["protocol"] == "group:subject" and r["n_test"] == 240
    assert r["router"] == "knn" and r["router_spec"] == "knn:embedder=hashing,k=8"


def test_cross_dataset_and_errors(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    train = write_jsonl(make_dataset(200, seed=1), tmp_path / "train.jsonl")
    test = _write(tmp_path, 100)
    out_json = tmp_path / "m.json"
    assert main(["eval", "--train", str(train), "--test", str(test), "--router", "knn:embedder=hashing",
                 "--json-out", str(out_json), "--n-boot", "0", "--no-progress"]) == 0
    r = json.loads(out_json.read_text())
    assert r["protocol"] == "cross" and r["n_test"] == 100 and r["train"] == "train" and r["ci"] is None
    assert main(["eval", "--test", str(test), "--router", "no-such-router", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "no-such-router" in err and "did you mean" not in err  # nothing close: no guess
    assert main(["eval", "--test", str(test), "--router", "heursitic", "--no-progress"]) == 1
    assert "unknown router 'heursitic'; did you mean 'heuristic'? known: random, heuristic" in capsys.readouterr().err
    assert main(["eval", "--test", str(test), "--strong", "nope", "--router", "random", "--no-progress"]) == 1
    assert "nope" in capsys.readouterr().err


def test_no_arguments_runs_the_demo_and_writes_the_default_report(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from gearshift.cli import eval as commands

    data = _write(tmp_path)
    monkeypatch.setattr(commands, "DEMO_DATASETS", (str(data),))
    monkeypatch.setattr(commands, "DEFAULT_ROUTERS", ("random", "heuristic", "knn:embedder=hashing"))
    monkeypatch.chdir(tmp_path)
    assert main(["eval"]) == 0
    captured = capsys.readouterr()
    assert "APGR" in captured.out  # results on stdout, where the report is written on stderr
    assert f"HTML report: {tmp_path / 'gearshift-report.html'}" in captured.err
    html = (tmp_path / "gearshift-report.html").read_text()
    assert all(name in html for name in ("random", "heuristic", "knn"))


def test_eval_reports_at_a_calibrated_operating_point_not_a_raw_threshold(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Trained routers' p_strong has no common scale: by default the confusion columns are measured where 30 % of
    the test prompts go strong, and the output says so; --threshold still gives a fixed one."""
    from gearshift.data.registry import load_dataset
    from gearshift.evaluation.metrics import MetricSettings
    from gearshift.evaluation.runner import result_from_scores

    data = _write(tmp_path)
    assert main(["eval", "--test", str(data), "--router", "heuristic", "--n-boot", "0", "--no-progress"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "operating point" in printed and "30%" in printed
    assert main(["eval", "--test", str(data), "--router", "heuristic", "--threshold", "0.5", "--n-boot", "0",
                 "--no-progress"]) == 0
    assert "fixed threshold 0.5" in " ".join(capsys.readouterr().out.split())
    ds = load_dataset(str(data))
    p = np.linspace(0.9, 0.99, len(ds))  # every score above 0.5: a raw threshold would send all of them strong
    raw = result_from_scores(p, ds, "big-model", "small-model", router="x", n_boot=0, with_segments=False)
    cal = result_from_scores(p, ds, "big-model", "small-model", router="x", n_boot=0, with_segments=False,
                             settings=MetricSettings(target_strong_share=0.3))
    assert raw.metrics.confusion.strong_share == 1.0
    assert abs(cal.metrics.confusion.strong_share - 0.3) < 0.01
    assert cal.to_json()["operating_point"]["target_strong_share"] == 0.3


def test_an_operating_point_that_ties_kept_off_its_target_says_so(tmp_path: Path) -> None:
    """A router whose scores come in blocks (the heuristic's do) cannot be cut at exactly 30 %: the line says
    where it landed and why, rather than "sends 30%" next to a strong share of 40 %."""
    import io

    from rich.console import Console

    from gearshift.cli.eval import _print_operating_points
    from gearshift.data.registry import load_dataset
    from gearshift.evaluation.metrics import MetricSettings
    from gearshift.evaluation.runner import result_from_scores

    ds = load_dataset(str(_write(tmp_path, 200)))
    settings = MetricSettings(target_strong_share=0.3)
    blocks = np.where(np.arange(len(ds)) < 120, 0.2, 0.8)  # 60 % score 0.2, 40 % score 0.8: no cut gives 30 %
    smooth = np.linspace(0.0, 1.0, len(ds))
    results = [result_from_scores(p, ds, "big-model", "small-model", router=name, n_boot=0, with_segments=False,
                                  settings=settings) for name, p in (("blocky", blocks), ("smooth", smooth))]
    out = io.StringIO()
    _print_operating_points(results, Console(file=out, width=300))
    blocky, smooth_line = out.getvalue().splitlines()
    assert "aimed at 30% of these prompts strong; its scores tie in blocks, so the nearest a threshold gets is" \
           in blocky and "strong share 40.0%" in blocky
    assert "(sends 30% of these prompts strong): strong share 30.0%" in smooth_line
