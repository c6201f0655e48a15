"""What `gearshift eval` shows a person: in a narrow and a wide terminal, and piped into a file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from evaluation.eval_synthetic import make_dataset
from gearshift.data.records import write_jsonl
from support.cli_run import run_cli

ROUTERS = ["--router", "random", "--router", "heuristic"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(make_dataset(240), tmp_path / "tiny.jsonl")


def _env(tmp_path: Path) -> dict[str, str]:
    return {"GEARSHIFT_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}


def test_piped_output_is_results_only_with_every_column_and_a_legend(tmp_path: Path, data: Path) -> None:
    report = tmp_path / "a-rather-long-directory-name-for-the-report" / "report.html"
    run = run_cli(["eval", "--test", str(data), *ROUTERS, "--n-boot", "50", "--report", str(report)],
                  cwd=tmp_path, env=_env(tmp_path))
    assert run.rc == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("tiny: big-model vs small-model")  # no blank lines left where a spinner was
    assert "\x1b" not in run.out and "\x1b" not in run.err  # no escape codes in a file
    header = next(line for line in lines if "APGR" in line)
    for col in ("router", "95% CI", "CPT50", "CPT80", "CPT95", "AIQ", "strong", "q-loss"):
        assert col in header
    assert "(all-cheap)" in run.out and "(all-strong)" in run.out and "(oracle)" in run.out
    # every column is explained, including why the oracle can beat 1
    for term in ("APGR:", "CPT50/80/95:", "AIQ:", "q-loss:", "oracle can exceed 1"):
        assert term in run.out
    # info lines go to stderr, whole: the path is one copyable line even though it is longer than 80 columns
    assert "HTML report" not in run.out
    assert f"HTML report: {report}" in run.err.splitlines()
    # the report is readable by others, like any file the user writes
    assert stat.S_IMODE(report.stat().st_mode) & 0o044 == 0o044


@pytest.mark.parametrize("columns", [50, 160])
def test_terminal_table_fits_the_width_without_cutting_names(tmp_path: Path, data: Path, columns: int) -> None:
    run = run_cli(["eval", "--test", str(data), *ROUTERS, "--n-boot", "50"], columns=columns, tty=True,
                  cwd=tmp_path, env=_env(tmp_path))
    assert run.rc == 0, run.out
    table = [line for line in run.out.splitlines() if line.lstrip().startswith(("router", "heuristic", "("))]
    assert any("heuristic" in line for line in table) and any("(all-strong)" in line for line in table)
    assert "…" not in "\n".join(table)  # columns are dropped whole, never cut to three characters
    assert all(len(line.rstrip()) <= columns for line in table)
    if columns < 80:
        assert "not shown at this width:" in run.out and "CPT95" not in "\n".join(table)
    else:
        assert "CPT95" in table[0] and "not shown" not in run.out


def test_json_means_stdout_and_json_out_a_file(tmp_path: Path, data: Path) -> None:
    run = run_cli(["eval", "--test", str(data), "--router", "random", "--n-boot", "0", "--json"], cwd=tmp_path,
                  env=_env(tmp_path))
    assert run.rc == 0, run.err
    assert json.loads(run.out)["router"] == "random"  # stdout is exactly the JSON, nothing else
    out = tmp_path / "m.json"
    run = run_cli(["eval", "--test", str(data), "--router", "random", "--n-boot", "0", "--json-out", str(out)],
                  cwd=tmp_path, env=_env(tmp_path))
    assert run.rc == 0 and "APGR" in run.out and json.loads(out.read_text())["router"] == "random"
    old = tmp_path / "old.json"  # the old spelling still works, and says what to use instead
    run = run_cli(["eval", "--test", str(data), "--router", "random", "--n-boot", "0", "--json", str(old)],
                  cwd=tmp_path, env=_env(tmp_path))
    assert run.rc == 0 and json.loads(old.read_text())["router"] == "random"
    assert f"use `--json-out {old}`" in run.err


def test_eval_outside_the_repo_names_the_fix(tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    run = run_cli(["eval", "--router", "random"], cwd=elsewhere, env=_env(tmp_path))
    assert run.rc == 1
    error = next(line for line in run.err.splitlines() if line.startswith("error:"))
    assert "gearshift data fetch" in error and "--data-dir" in error  # one line: the path is not broken
    assert f"not found in {tmp_path / 'cache' / 'data'} " in error
