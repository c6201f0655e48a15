"""`gearshift decisions` as a user sees it: in a narrow and a wide terminal and piped, with hostile client text."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gearshift.records.record import DecisionRecord
from gearshift.store.sqlite import SQLiteDecisionStore
from support.cli_run import run_cli

EVIL_MODEL = "[bold red]pwn[/]\x1b[2J\x1b]0;owned\x07"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "d.sqlite"
    store = SQLiteDecisionStore(str(path))
    now = time.time()
    rows = [DecisionRecord(request_id=f"req-{i:04d}", time=now - i, route="router", router="heuristic",
                           score=0.2 + 0.6 * (i % 2), tier="strong" if i % 2 else "cheap",
                           deployment="llama-3.1-70b-instruct-turbo" if i % 2 else "llama-3.1-8b-instruct-turbo",
                           requested_model=EVIL_MODEL if i == 0 else "gearshift/auto", tokens_in=120, tokens_out=40,
                           cost_usd=0.0012, latency_ms=350.0).to_row() for i in range(6)]
    store.append_many(rows)
    store.close()
    return path


@pytest.mark.parametrize(("columns", "tty"), [(60, True), (100, True), (220, True), (None, False)])
def test_decisions_table_fits_the_width_and_keeps_deployments_apart(db: Path, columns: int | None, tty: bool) -> None:
    run = run_cli(["decisions", "--db", str(db)], columns=columns, tty=tty)
    assert run.rc == 0, run.out + run.err
    lines = run.out.splitlines()
    # deployments that share a long prefix stay whole, so cheap and strong rows can be told apart
    assert any("llama-3.1-70b-instruct-turbo" in line for line in lines)
    assert any("llama-3.1-8b-instruct-turbo" in line for line in lines)
    header = next(line for line in lines if "tier" in line and "deployment" in line)
    assert "…" not in run.out
    if columns is not None:
        assert all(len(line) <= columns for line in lines)
    if columns is None or columns >= 200:  # piped or wide: every column
        for col in ("request", "model", "router", "score", "tokens", "cost $", "ms"):
            assert col in header
    if columns == 60:
        assert "request" not in header and "router" not in header


def test_client_text_cannot_drive_the_terminal(db: Path) -> None:
    run = run_cli(["decisions", "--db", str(db)], columns=220, tty=True)
    assert run.rc == 0
    assert "\x1b[2J" not in run.raw and "\x1b]0;" not in run.raw  # no clear-screen, no title change
    assert "[bold red]pwn[/]" in run.out and "\\x1b[2J" in run.out  # shown as the text it is
    piped = run_cli(["decisions", "--db", str(db), "--json"])
    assert json.loads(piped.out.splitlines()[0])["requested_model"] == EVIL_MODEL  # JSON keeps the exact value


def test_triage_list_shows_client_prompts_inert(tmp_path: Path) -> None:
    from gearshift.store.labels import SQLiteLabelStore

    db = tmp_path / "t.sqlite"
    store = SQLiteLabelStore(db)
    store.add_triage("r1", time.time(), 0.8, {"prompt": EVIL_MODEL, "routing": {"tier": "cheap"}})
    store.close()
    run = run_cli(["triage", "list", "--db", str(db)], columns=200, tty=True)
    assert run.rc == 0, run.out
    assert "\x1b[2J" not in run.raw and "\x1b]0;" not in run.raw
    assert "[bold red]pwn[/]" in run.out
